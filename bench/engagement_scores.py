"""Engagement scores over 5,000,000 activity rows across 20,000 organisations, on PostgreSQL.

Figures, measured side by side in one run, round by round:
- the nightly full recomputation (``recompute_scores``: lock, one grouped sum of every row with its weight and
  decay, and an upsert of the scores that changed) against a bare ``GROUP BY organisation_id`` counting the same
  rows: at most 2;
- the incremental update for 1% new rows (50,000 occasions arriving in a batch, ``add_to_scores``) against the full
  recomputation: at most 0.1;
- for information: the full recomputation against the bare count made to read the table (see ``bare_group_by``) and
  against a grouping that reads each row's kind and time; the largest relative difference between the levels the
  incremental updates leave and those the next full recomputation stores (they must agree); and the cost of one
  occasion's update on its own, as ``record_activity`` makes it.
"""

import statistics
import time

from bench.harness import Bench, Figure, report

ROWS = 5_000_000
ORGANISATIONS = 20_000
NEW = ROWS // 100
ROUNDS = 5
SINGLE = 500
# Occasions numbered n: spread over the organisations, the kinds (log-ins most often) and the last 400 days.
INSERT = """
    INSERT INTO membership_activityevent (organisation_id, person_id, kind, occurred_at, key, detail)
    SELECT ids.a[1 + mod(n * 7, ids.c)], NULL,
           (ARRAY['login', 'login', 'login', 'page_read', 'page_read', 'event_registered', 'event_attended',
                  'perk_redeemed', 'staff_interaction', 'profile_updated'])[1 + mod(n * 13, 10)],
           now() - make_interval(secs => mod(n * 7919, 34560000)), 'bench:' || n, ''
    FROM (SELECT array_agg(id ORDER BY id) AS a, count(*) AS c FROM membership_organisation) AS ids,
         generate_series(%s::bigint, %s::bigint) AS n
"""
INSERT_RETURNING = INSERT + " RETURNING organisation_id, kind, occurred_at"


def _insert(cursor, first: int, last: int, *, returning: bool = False) -> list:
    cursor.execute(INSERT_RETURNING if returning else INSERT, [first, last])
    return cursor.fetchall() if returning else []


def load(bench: Bench) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        # Occasions numbered from 10,000,000 are a previous run's new rows: start again without them.
        cursor.execute("DELETE FROM membership_activityevent WHERE key LIKE 'bench:%' AND length(key) >= 14")
        cursor.execute("SELECT count(*) FROM membership_activityevent WHERE key LIKE 'bench:%'")
        have = cursor.fetchone()[0]
        for start in range(have + 1, ROWS + 1, 1_000_000):
            _insert(cursor, start, min(start + 999_999, ROWS))
            print(f"  {min(start + 999_999, ROWS):,} activity rows", flush=True)
        cursor.execute("VACUUM ANALYZE membership_activityevent")
        cursor.execute("SELECT count(*) FROM membership_activityevent")
        return cursor.fetchone()[0]


BARE = "SELECT organisation_id, count(*) FROM membership_activityevent GROUP BY organisation_id"
# The same grouping reading the same columns the score needs (each row's kind and time), with no arithmetic.
SAME_COLUMNS = (
    "SELECT organisation_id, count(kind), max(occurred_at) FROM membership_activityevent GROUP BY organisation_id"
)


def bare_group_by(sql: str = BARE, *, reading_the_table: bool = False) -> float:
    """Seconds for ``sql``. ``reading_the_table``: with PostgreSQL's index-only scans off, so that the count reads
    the table's rows, as the recomputation must, rather than only the organisation index (43 MB against the table's
    459 MB), which PostgreSQL does once a VACUUM has marked the table's pages all-visible."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        if reading_the_table:
            cursor.execute("SET LOCAL enable_indexonlyscan = off")
        started = time.perf_counter()
        cursor.execute(sql)
        cursor.fetchall()
        return time.perf_counter() - started


def vacuum() -> None:
    """Mark the table's pages all-visible again after a round's new rows (not timed): without it, each round's
    bare count has more rows to check in the table than the last, and the ratios drift from round to round."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM membership_activityevent")


def full() -> float:
    from membership.engagement import recompute_scores

    started = time.perf_counter()
    recompute_scores()
    return time.perf_counter() - started


def new_batch(round_number: int) -> list:
    """1% new rows, recorded (not timed); returns them as the code that recorded them holds them."""
    from django.db import connection, transaction

    from membership.models import ActivityEvent

    first = 10_000_000 + round_number * NEW
    with transaction.atomic(), connection.cursor() as cursor:
        rows = _insert(cursor, first, first + NEW - 1, returning=True)
    return [ActivityEvent(organisation_id=org, kind=kind, occurred_at=at) for org, kind, at in rows]


def incremental(events: list) -> float:
    from django.db import transaction

    from membership.engagement import add_to_scores

    started = time.perf_counter()
    with transaction.atomic():
        add_to_scores(events)
    return time.perf_counter() - started


def one_at_a_time(events: list) -> float:
    """Seconds per occasion when each comes on its own, in its own transaction, as record_activity adds it."""
    from django.db import transaction

    from membership.engagement import add_to_scores

    started = time.perf_counter()
    for event in events:
        with transaction.atomic():
            add_to_scores([event])
    return (time.perf_counter() - started) / len(events)


def levels() -> dict:
    from membership.models import EngagementScore

    return dict(EngagementScore.objects.values_list("pk", "level"))


def largest_difference(a: dict, b: dict) -> float:
    worst = 0.0
    for pk, level in a.items():
        other = b.get(pk)
        if level is None or other is None:
            assert level == other, (pk, level, other)
            continue
        # Levels are logs: a difference d in level is a relative difference 2**d - 1 in the score.
        worst = max(worst, abs(2 ** (level - other) - 1))
    return worst


def run() -> list[Figure]:
    with Bench("engagement") as bench:
        bench.create_database()
        bench.seed(ORGANISATIONS, "--without-contacts")
        bench.use_here()
        total = load(bench)
        bare_group_by(), full()  # warm up

        ratios_full, ratios_incremental, differences, bares, fulls, incrementals = [], [], [], [], [], []
        ratios_same, ratios_table = [], []
        for number in range(ROUNDS):
            bare = bare_group_by()
            same = bare_group_by(SAME_COLUMNS)
            table = bare_group_by(reading_the_table=True)
            whole = full()
            ratios_same.append(whole / same)
            ratios_table.append(whole / table)
            events = new_batch(number)
            added = incremental(events)
            after_incremental = levels()
            check = full()  # the next night's job: it must store the same levels
            differences.append(largest_difference(after_incremental, levels()))
            vacuum()  # so that every round's bare count reads the index alone, as the first round's does
            bares.append(bare)
            fulls.append(whole)
            incrementals.append(added)
            ratios_full.append(whole / bare)
            ratios_incremental.append(added / whole)
            del check
        single = one_at_a_time(new_batch(ROUNDS)[:SINGLE])

    full_ratio, incremental_ratio = statistics.median(ratios_full), statistics.median(ratios_incremental)
    timings = {
        "activity_rows": total,
        "bare_group_by_seconds": [round(s, 2) for s in bares],
        "full_seconds": [round(s, 2) for s in fulls],
        "incremental_seconds": [round(s, 3) for s in incrementals],
    }
    return [
        Figure("full recomputation / bare GROUP BY", full_ratio, "<= 2", full_ratio <= 2, timings),
        Figure(
            "incremental for 1% new rows / full recomputation",
            incremental_ratio,
            "<= 0.1",
            incremental_ratio <= 0.1,
            {"new_rows": NEW, "ratios": [round(r, 4) for r in ratios_incremental]},
        ),
        Figure(
            "full recomputation / GROUP BY reading kind and time too (information)",
            statistics.median(ratios_same),
            "none",
            True,
            {"ratios": [round(r, 3) for r in ratios_same]},
        ),
        Figure(
            "full recomputation / bare GROUP BY reading the table (information)",
            statistics.median(ratios_table),
            "none",
            True,
            {"ratios": [round(r, 3) for r in ratios_table]},
        ),
        Figure(
            "largest relative score difference, incremental vs full (information)",
            max(differences),
            "~0",
            max(differences) < 1e-9,
            {"per_round": differences},
        ),
        Figure(
            "one occasion on its own, ms (information)",
            single * 1000,
            "none",
            True,
            {"occasions": SINGLE, "median_full_seconds": statistics.median(fulls)},
        ),
    ]


if __name__ == "__main__":
    report("Engagement scores", run())
