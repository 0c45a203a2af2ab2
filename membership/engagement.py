"""Engagement scores: how much value each organisation is getting from its membership, in a number and in words.

An organisation's score is the sum, over its activity, of the kind's weight halved for every half-life of age:
``sum(weight * 0.5 ** (age_days / half_life))``. Weights and the half-life are staff's to edit
(``EngagementSettings``).

What is stored (``EngagementScore.level``) is the sum *without* decay, in log form: each occasion counts
``weight * 2 ** (t / half_life)`` where t is its time in days since 2000-01-01, and level is log2 of the total.
The score at any moment then comes from the level alone (``2 ** (level - now / half_life)``), so:

- adding an occasion (``add_to_scores``, called by ``record_activity`` in the same transaction) adds its term to
  the level, without reading any other activity;
- the nightly full recomputation (``recompute_scores``) sums every occasion again and stores the same level;
- both agree at every instant, because neither depends on when it ran; and the score decays on reading.

The trend (points in the last 90 days against the 90 before) and the breakdown in words are read from the
activity ledger when a page needs them, in one grouped query for all the organisations it shows.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Count, F, FloatField, Func, Max, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Cast
from django.utils import timezone

from config.db import execute_with_binary_parameters
from membership.models import (
    ActivityEvent,
    ActivityKind,
    EngagementBand,
    EngagementScore,
    EngagementSettings,
    Organisation,
)

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
SECONDS_A_DAY = 86_400
WINDOW = timedelta(days=90)  # the breakdown's and the trend's period
_EVENT_FIELDS = attrgetter("organisation_id", "kind", "occurred_at")
# A scaled sum below this may have lost precision to underflow (floats keep their full precision down to 2 ** -1022).
_SMALLEST_EXACT_SUM = 2.0**-960


def days_since_epoch(moment: datetime) -> float:
    return (moment - EPOCH).total_seconds() / SECONDS_A_DAY


def _log2_sum(a: float | None, b: float | None) -> float | None:
    """log2(2**a + 2**b) without overflow; None stands for an empty sum."""
    if a is None:
        return b
    if b is None:
        return a
    high, low = max(a, b), min(a, b)
    return high + math.log2(1 + 2 ** (low - high))


@dataclass(frozen=True)
class Scoring:
    """The settings a score is computed with, read once per job or page."""

    weights: dict[str, float]
    half_life: float
    thriving_from: float
    steady_from: float
    at_risk_from: float

    @classmethod
    def load(cls, row: EngagementSettings | None = None) -> Scoring:
        row = row or EngagementSettings.load()
        return cls(
            weights={kind: row.weight(kind) for kind in ActivityKind.values},
            half_life=float(row.half_life_days),
            thriving_from=row.thriving_from,
            steady_from=row.steady_from,
            at_risk_from=row.at_risk_from,
        )

    def terms(self, events: Iterable[ActivityEvent]) -> tuple[dict[int, float], dict[int, datetime]]:
        """For each organisation: its occasions' share of the level together (log2 of the sum of their
        ``weight * 2 ** (t / half-life)``), and its latest occasion.

        The sum is taken in floating point scaled to the present (each term times ``2 ** (-now / half-life)``),
        where recent occasions count about their weight: one pass, with no list of terms per organisation. An
        organisation whose occasions all lie so far back that the scaled sum leaves the range of a float (a
        thousand half-lives: three years at the shortest half-life) is summed again in log form
        (``_exact_terms``). Occasions are never dated ahead of the moment they are recorded.
        """
        weights = {kind: weight for kind, weight in self.weights.items() if weight > 0}
        per_second = 1.0 / (self.half_life * SECONDS_A_DAY)
        reference = time.time()
        sums: dict[int, float] = {}
        latest: dict[int, datetime] = {}
        sums_get, latest_get, weight_of = sums.get, latest.get, weights.get
        events = events if isinstance(events, list | tuple) else list(events)
        for org_id, kind, moment in map(_EVENT_FIELDS, events):
            weight = weight_of(kind)
            if weight is not None:
                sums[org_id] = sums_get(org_id, 0.0) + weight * 2.0 ** ((moment.timestamp() - reference) * per_second)
            known = latest_get(org_id)
            if known is None or moment > known:
                latest[org_id] = moment
        offset = (reference - EPOCH.timestamp()) * per_second
        log2 = math.log2
        terms = {org_id: log2(total) + offset for org_id, total in sums.items() if total >= _SMALLEST_EXACT_SUM}
        if len(terms) < len(sums):  # every occasion about a thousand half-lives old: too small to sum scaled
            terms.update(self._exact_terms(events, sums.keys() - terms.keys()))
        return terms, latest

    def _exact_terms(self, events: list[ActivityEvent], organisations: set[int]) -> dict[int, float]:
        """``terms`` for ``organisations``, summed in log form, which no age can take out of a float's range."""
        log_weights = {kind: math.log2(weight) for kind, weight in self.weights.items() if weight > 0}
        seconds, epoch = self.half_life * SECONDS_A_DAY, EPOCH.timestamp()
        exponents: dict[int, list[float]] = defaultdict(list)
        for event in events:
            log_weight = log_weights.get(event.kind)
            if log_weight is not None and event.organisation_id in organisations:
                exponents[event.organisation_id].append(log_weight + (event.occurred_at.timestamp() - epoch) / seconds)
        terms = {}
        for org_id, values in exponents.items():
            high = max(values)  # log2 of a sum of powers of two, without overflow
            terms[org_id] = high + math.log2(sum([2 ** (value - high) for value in values]))
        return terms

    def level_from_score(self, score: float, moment: datetime) -> float | None:
        """The level whose score at ``moment`` is ``score``."""
        if score <= 0:
            return None
        return math.log2(score) + days_since_epoch(moment) / self.half_life

    def score(self, level: float | None, moment: datetime) -> float:
        """The score at ``moment``: the decay is applied here, on reading."""
        if level is None:
            return 0.0
        return 2 ** (level - days_since_epoch(moment) / self.half_life)

    def band(self, score: float) -> EngagementBand:
        if score >= self.thriving_from:
            return EngagementBand.THRIVING
        if score >= self.steady_from:
            return EngagementBand.STEADY
        if score >= self.at_risk_from:
            return EngagementBand.AT_RISK
        return EngagementBand.DORMANT

    def band_q(self, band: str, moment: datetime, prefix: str = "") -> Q:
        """A filter for organisations (or rows reaching them through ``prefix``) in ``band`` at ``moment``."""
        level = f"{prefix}level"
        floors = {
            EngagementBand.THRIVING: (self.thriving_from, None),
            EngagementBand.STEADY: (self.steady_from, self.thriving_from),
            EngagementBand.AT_RISK: (self.at_risk_from, self.steady_from),
            EngagementBand.DORMANT: (None, self.at_risk_from),
        }
        low, high = floors[EngagementBand(band)]
        query = Q()
        if low:  # an organisation with no activity scores 0, below any positive floor
            query &= Q(**{f"{level}__gte": self.level_from_score(low, moment)})
        if high is not None:
            if high > 0:
                query &= Q(**{f"{level}__lt": self.level_from_score(high, moment)}) | Q(**{f"{level}__isnull": True})
            else:
                query &= Q(pk__in=[])  # nothing scores below 0
        return query

    def band_case(self, moment: datetime, prefix: str = "") -> Case:
        """The band as an SQL expression, for grouping."""
        return Case(
            *[When(self.band_q(band, moment, prefix), then=Value(band.value)) for band in EngagementBand],
            default=Value(EngagementBand.DORMANT.value),
        )

    def weight_case(self, kind_field: str = "kind") -> Case:
        # Each weight cast to a float in the SQL: a bare 1.0 is a NUMERIC literal on PostgreSQL, and the sum would
        # then convert every row's weight from NUMERIC to a float, which costs as much as the rest of the row.
        return Case(
            *[
                When(**{kind_field: kind}, then=Cast(Value(weight), FloatField()))
                for kind, weight in self.weights.items()
                if weight > 0
            ],
            default=Cast(Value(0.0), FloatField()),
            output_field=FloatField(),
        )


# Summing in the database --------------------------------------------------------------------------------------


class _Decay(Func):
    """``2 ** ((occurred_at - now) / half-life)`` for each row: the factor an occasion counts by at ``now``."""

    output_field = FloatField()

    def __init__(self, moment: datetime, half_life_days: float):
        self.moment, self.half_life = moment, half_life_days
        super().__init__(F("occurred_at"))

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        # date_part (not EXTRACT, which answers in slow numeric) gives seconds as a double. PostgreSQL refuses a
        # power that underflows, so an occasion over a thousand half-lives old counts 2 ** -1000 of its weight,
        # which is nothing in any sum (at the shortest half-life, a day, that is three years back).
        sql = f"POWER(2.0::float8, GREATEST((date_part('epoch', {column}) - %s::float8) / %s::float8, -1000.0::float8))"
        return sql, [*params, self.moment.timestamp(), self.half_life * SECONDS_A_DAY]

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        sql = f"POWER(2.0, (julianday({column}) - julianday(%s)) / %s)"
        return sql, [*params, self.moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"), self.half_life]

    def as_sql(self, compiler, connection, **extra):  # other databases: not supported
        raise NotImplementedError(f"Engagement scores are summed on PostgreSQL or SQLite, not {connection.vendor}")


class _Weight(Func):
    """Each row's weight: on PostgreSQL looked up by the kind's number in an array of the weights (see
    ``ActivityEvent.kind_number``); elsewhere a ``CASE`` on the kind."""

    output_field = FloatField()

    def __init__(self, weights: tuple[float, ...], case: Case):
        self.weights = weights  # in the order of the kinds' numbers
        super().__init__(F("kind_number"), case)

    @classmethod
    def of(cls, scoring: Scoring) -> _Weight:
        weights = tuple(float(max(scoring.weights.get(kind, 0), 0)) for kind in ActivityKind.values)
        return cls(weights, scoring.weight_case())

    def as_postgresql(self, compiler, connection, **extra):
        number, params = compiler.compile(self.source_expressions[0])
        return f"(%s::float8[])[{number}]", [list(self.weights), *params]

    def as_sql(self, compiler, connection, **extra):
        return compiler.compile(self.source_expressions[1])


def _decayed_sums_query(events: QuerySet[ActivityEvent], scoring: Scoring, moment: datetime) -> QuerySet:
    """Rows of (organisation id, its score at ``moment``, its latest activity): one grouped query."""
    return (
        events.order_by()
        .values("organisation_id")
        .annotate(total=Sum(_Weight.of(scoring) * _Decay(moment, scoring.half_life)), last=Max("occurred_at"))
        .values_list("organisation_id", "total", "last")
    )


def _decayed_sums(events: QuerySet[ActivityEvent], scoring: Scoring, moment: datetime) -> dict[int, tuple]:
    """For each organisation: (its score at ``moment``, its latest activity)."""
    return {org_id: (total or 0.0, last) for org_id, total, last in _decayed_sums_query(events, scoring, moment)}


def _lock_scores() -> None:
    """Hold off incremental updates while a full recomputation reads and writes, so none is lost or doubled.

    An update waiting on the lock finds the new row afterwards and adds its occasion, which the recomputation
    (reading before that occasion was committed) did not count. Plain reads carry on. SQLite writes one at a time
    anyway.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f'LOCK TABLE "{EngagementScore._meta.db_table}" IN EXCLUSIVE MODE')


@transaction.atomic
def recompute_scores(now: datetime | None = None) -> int:
    """Sum every organisation's activity again and store its level; returns how many organisations were scored.

    The nightly job. Gives the same levels as the incremental updates made since the last run. One grouped query
    reads the ledger (PostgreSQL sums it in parallel, which it would not do inside an INSERT); on PostgreSQL one
    more statement stores every organisation's level.
    """
    now = now or timezone.now()
    scoring = Scoring.load()
    _lock_scores()
    sums = _decayed_sums(ActivityEvent.objects.all(), scoring, now)
    levels = {org_id: (scoring.level_from_score(total, now), last) for org_id, (total, last) in sums.items()}
    if connection.vendor == "postgresql":
        return _store_levels_postgresql(levels, now)
    rows = [
        EngagementScore(organisation_id=org_id, level=level, last_activity_at=last, recomputed_at=now)
        for org_id in Organisation.objects.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=5000)
        for level, last in [levels.get(org_id, (None, None))]
    ]
    EngagementScore.objects.bulk_create(
        rows,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["organisation"],
        update_fields=["level", "last_activity_at", "recomputed_at"],
    )
    return len(rows)


_STORE_LEVELS = """
    WITH summed AS (
        SELECT organisation.id AS organisation_id, summed.level, summed.last_activity_at
        FROM {organisations} AS organisation
        LEFT JOIN unnest(%s::bigint[], %s::double precision[], %s::timestamptz[])
            AS summed (organisation_id, level, last_activity_at) ON summed.organisation_id = organisation.id
    ), changed AS (  -- run to the end though nothing reads it, as every data-changing WITH is
        -- Only rows the incremental updates left different: in the steady state, next to none are written, and
        -- (unlike an upsert, which locks every row it meets) none of the others is touched.
        UPDATE {scores} AS score
        SET level = summed.level, last_activity_at = summed.last_activity_at, recomputed_at = %s
        FROM summed
        WHERE score.organisation_id = summed.organisation_id
          AND ((score.level IS NULL) <> (summed.level IS NULL)
               OR abs(score.level - summed.level) > {tolerance}
               OR score.last_activity_at IS DISTINCT FROM summed.last_activity_at)
    )
    -- Organisations without a row yet. The statement sees the table as it was before it began, so these are
    -- exactly the rows the UPDATE above could not find; the recomputation holds the table's lock meanwhile.
    INSERT INTO {scores} (organisation_id, level, last_activity_at, recomputed_at)
    SELECT summed.organisation_id, summed.level, summed.last_activity_at, %s
    FROM summed
    WHERE NOT EXISTS (SELECT 1 FROM {scores} AS score WHERE score.organisation_id = summed.organisation_id)
"""
# Levels the incremental updates and the full sum give differ by rounding alone (a relative 1e-12 of the score);
# a level that differs by less than this is left as it is.
LEVEL_TOLERANCE = 1e-9


def _store_levels_postgresql(levels: dict[int, tuple], now: datetime) -> int:
    """Every organisation's level in one statement; those without activity get none. Returns how many
    organisations were scored (every one), though only those whose level changed are written."""
    sql = _STORE_LEVELS.format(
        scores=connection.ops.quote_name(EngagementScore._meta.db_table),
        organisations=connection.ops.quote_name(Organisation._meta.db_table),
        tolerance=repr(LEVEL_TOLERANCE),
    )
    ids = list(levels)
    execute_with_binary_parameters(sql, [ids, [levels[i][0] for i in ids], [levels[i][1] for i in ids], now, now])
    return Organisation.objects.count()


def add_to_scores(events: Iterable[ActivityEvent], scoring: Scoring | None = None) -> None:
    """Add newly recorded occasions to their organisations' scores: the incremental update.

    Call it in the transaction that recorded them (``record_activity`` does). Each score row is locked while it
    changes (on PostgreSQL, one UPDATE computes the new level from the row as it stands); an organisation without
    a row yet gets one summed from all its activity, these occasions included.
    """
    scoring = scoring or Scoring.load()
    terms, latest = scoring.terms(events)
    if not latest:
        return
    with transaction.atomic(savepoint=False):  # all of it or none, with the caller's transaction if there is one
        if connection.vendor == "postgresql":
            updated = _add_terms_postgresql(terms, latest)
        else:
            updated = _add_terms(terms, latest)
        for org_id in sorted(latest.keys() - updated):  # organisations scored for the first time
            _create_score(org_id, terms.get(org_id), latest[org_id], scoring)


def _add_terms(terms: dict[int, float], latest: dict[int, datetime]) -> set[int]:
    """Through the ORM: lock the rows (in id order, so two batches cannot deadlock), add, write back."""
    changed = []
    ids = sorted(latest)
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        for score in EngagementScore.objects.select_for_update().filter(pk__in=chunk).order_by("pk"):
            score.level = _log2_sum(score.level, terms.get(score.pk))
            last = latest[score.pk]
            if score.last_activity_at is None or last > score.last_activity_at:
                score.last_activity_at = last
            changed.append(score)
    EngagementScore.objects.bulk_create(
        changed,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["organisation"],
        update_fields=["level", "last_activity_at"],
    )
    return {score.pk for score in changed}


# A batch takes the table's lock rather than each row's: one batch at a time, and single occasions wait for it (it
# takes a tenth of a second for every organisation at once). Row locks taken one by one (in id order, so that two
# batches could not deadlock) cost a write for every row before the update wrote it again.
_LOCK_FOR_BATCH = "LOCK TABLE {scores} IN SHARE ROW EXCLUSIVE MODE"
# log2(2**level + 2**term) = max + log2(1 + 2**-|level - term|), as _log2_sum does it. PostgreSQL refuses a power
# that underflows: a difference over 1000 (a term 2**1000 times smaller) adds nothing a float can hold anyway.
_ADD_TERMS = """
    UPDATE {scores} AS score SET
        level = CASE
            WHEN added.term IS NULL THEN score.level
            WHEN score.level IS NULL THEN added.term
            ELSE GREATEST(score.level, added.term)
                 + ln(1 + power(2::double precision, -LEAST(abs(score.level - added.term), 1000)))
                   / ln(2::double precision)
        END,
        last_activity_at = GREATEST(score.last_activity_at, added.last_activity_at)
    FROM unnest(%s::bigint[], %s::double precision[], %s::timestamptz[])
        AS added (organisation_id, term, last_activity_at)
    WHERE score.organisation_id = added.organisation_id
"""


def _add_terms_postgresql(terms: dict[int, float], latest: dict[int, datetime]) -> set[int]:
    scores = connection.ops.quote_name(EngagementScore._meta.db_table)
    ids = list(latest)  # in no order: a batch holds the table's lock, so two cannot deadlock over its rows
    params = [ids, [terms.get(i) for i in ids], list(latest.values())]
    if len(ids) == 1:  # one occasion, as record_activity adds it: an ordinary statement
        with connection.cursor() as cursor:
            cursor.execute(_ADD_TERMS.format(scores=scores) + " RETURNING score.organisation_id", params)
            return {row[0] for row in cursor.fetchall()}
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_FOR_BATCH.format(scores=scores))
    # A batch (an import, a day's log-ins): its arrays go in binary, and the ids come back only when some were
    # missing, which they seldom are.
    if execute_with_binary_parameters(_ADD_TERMS.format(scores=scores), params) == len(ids):
        return set(ids)
    return set(EngagementScore.objects.filter(pk__in=ids).values_list("pk", flat=True))


def _create_score(org_id: int, term: float | None, last: datetime, scoring: Scoring) -> None:
    now = timezone.now()
    total, latest = _decayed_sums(ActivityEvent.objects.filter(organisation_id=org_id), scoring, now).get(
        org_id, (0.0, None)
    )
    try:
        with transaction.atomic():
            EngagementScore.objects.create(
                organisation_id=org_id, level=scoring.level_from_score(total, now), last_activity_at=latest
            )
    except IntegrityError:
        # Another transaction created the row first; it could not see these occasions, so add them to it.
        score = EngagementScore.objects.select_for_update().get(pk=org_id)
        score.level = _log2_sum(score.level, term)
        score.last_activity_at = max(filter(None, [score.last_activity_at, last]))
        score.save(update_fields=["level", "last_activity_at"])


def score_of(organisation: Organisation, now: datetime | None = None, scoring: Scoring | None = None) -> float:
    """The organisation's score now, from its stored level."""
    scoring = scoring or Scoring.load()
    level = EngagementScore.objects.filter(pk=organisation.pk).values_list("level", flat=True).first()
    return scoring.score(level, now or timezone.now())


# Explaining a score ---------------------------------------------------------------------------------------------

# How each kind is counted in words, in the order a breakdown lists them.
KIND_WORDS = {
    ActivityKind.EVENT_ATTENDED: ("event attended", "events attended"),
    ActivityKind.EVENT_REGISTERED: ("event registration", "event registrations"),
    ActivityKind.PERK_REDEEMED: ("perk used", "perks used"),
    ActivityKind.STORY_PUBLISHED: ("success story published", "success stories published"),
    ActivityKind.COLLEAGUE_JOINED: ("colleague joined", "colleagues joined"),
    ActivityKind.LOGIN: ("log-in", "log-ins"),
    ActivityKind.PAGE_READ: ("members' page read", "members' pages read"),
    ActivityKind.PROFILE_UPDATED: ("profile update", "profile updates"),
    ActivityKind.INVOICE_PAID: ("invoice paid", "invoices paid"),
    ActivityKind.STAFF_INTERACTION: ("contact with the team", "contacts with the team"),
}


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def breakdown_in_words(counts: Counter | dict[str, int]) -> str:
    """What an organisation did in the last 90 days, e.g. "3 events attended and 12 log-ins in 90 days, no perks
    used"; what it has not done that matters most is said too."""
    parts = [
        f"{counts[kind]} {singular if counts[kind] == 1 else plural}"
        for kind, (singular, plural) in KIND_WORDS.items()
        if counts.get(kind)
    ]
    if not parts:
        return "No activity in 90 days"
    missing = []
    if not counts.get(ActivityKind.EVENT_ATTENDED) and not counts.get(ActivityKind.EVENT_REGISTERED):
        missing.append("events")
    if not counts.get(ActivityKind.PERK_REDEEMED):
        missing.append("perks used")
    text = f"{_and(parts)} in 90 days"
    if missing:
        text += ", no " + " or ".join(missing)
    return text


@dataclass
class Trend:
    recent: float  # points in the last 90 days
    previous: float  # points in the 90 days before

    @property
    def change_percent(self) -> int | None:
        if not self.previous:
            return None
        return round(100 * (self.recent - self.previous) / self.previous)

    def is_falling(self, percent: int) -> bool:
        return self.previous > 0 and self.recent <= self.previous * (1 - percent / 100)

    @property
    def direction(self) -> str:
        change = self.change_percent
        if change is None:
            return "new" if self.recent else "none"
        return "up" if change > 0 else "down" if change < 0 else "level"

    def __str__(self) -> str:
        change = self.change_percent
        if change is None:
            return "New activity; none in the 90 days before" if self.recent else "No activity in 180 days"
        if change == 0:
            return "Level with the previous 90 days"
        return f"{'Up' if change > 0 else 'Down'} {abs(change)}% on the previous 90 days"


@dataclass
class Summary:
    counts: Counter = field(default_factory=Counter)  # by kind, in the last 90 days
    trend: Trend = field(default_factory=lambda: Trend(0.0, 0.0))

    @property
    def in_words(self) -> str:
        return breakdown_in_words(self.counts)


def summaries(organisations: QuerySet | list[int], now: datetime, scoring: Scoring) -> dict[int, Summary]:
    """Breakdown and trend for each organisation, in one query: ``organisations`` is a queryset or a short list
    of ids."""
    start, middle = now - 2 * WINDOW, now - WINDOW
    rows = (
        ActivityEvent.objects.filter(organisation__in=organisations, occurred_at__gte=start, occurred_at__lte=now)
        .order_by()
        .values("organisation_id", "kind")
        .annotate(
            recent=Count("pk", filter=Q(occurred_at__gte=middle)),
            previous=Count("pk", filter=Q(occurred_at__lt=middle)),
        )
        .values_list("organisation_id", "kind", "recent", "previous")
    )
    result: dict[int, Summary] = defaultdict(Summary)
    for org_id, kind, recent, previous in rows:
        summary = result[org_id]
        if recent:
            summary.counts[kind] += recent
        weight = scoring.weights.get(kind, 0)
        summary.trend.recent += weight * recent
        summary.trend.previous += weight * previous
    return result


# Weeks, for the digest ------------------------------------------------------------------------------------------


def week_starting(day: date) -> date:
    return day - timedelta(days=day.weekday())


# Settings -------------------------------------------------------------------------------------------------------

SETTINGS_FIELDS = [
    "weights",
    "half_life_days",
    "thriving_from",
    "steady_from",
    "at_risk_from",
    "renewal_window_days",
    "falling_percent",
    "quiet_days",
    "digest_recipients",
]


@transaction.atomic
def update_settings(form, actor) -> EngagementSettings:
    """Save the engagement settings from their validated form and audit what changed. New weights or a new
    half-life change every score, so a full recomputation is queued."""
    from config.celery import queue_on_commit
    from membership import tasks
    from membership.services import diff, record_audit

    before = EngagementSettings.objects.select_for_update().get(pk=form.instance.pk)
    after = form.save()
    changes = diff(before, after, SETTINGS_FIELDS)
    if changes:
        record_audit(
            "membership.engagement.settings_changed",
            f"{actor} changed the engagement settings: {', '.join(name.replace('_', ' ') for name in changes)}",
            actor=actor,
            changes=changes,
        )
    if "weights" in changes or "half_life_days" in changes:
        queue_on_commit(tasks.recompute_engagement_scores)
    return after
