"""Engagement scores: weighted, decaying, explained in words, and the same whether updated as activity arrives or
summed again at night."""

import math
import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from membership import engagement, tasks
from membership.activity import record_activity
from membership.admin_forms import EngagementSettingsForm
from membership.engagement import Scoring, breakdown_in_words, recompute_scores, score_of, summaries
from membership.models import (
    ActivityEvent,
    ActivityKind,
    AuditEntry,
    EngagementBand,
    EngagementScore,
    EngagementSettings,
    Organisation,
)
from tests import factories
from tests.conftest import require

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
Kind = ActivityKind


def use_settings(half_life: int = 30, **weights) -> EngagementSettings:
    row = EngagementSettings.load()
    row.half_life_days = half_life
    row.weights = {kind: weights.get(kind, 0) for kind in ActivityKind.values}
    row.save()
    return row


def record(organisation, kind, days_ago: float, key: str, now=NOW):
    return record_activity(organisation, kind, key=key, occurred_at=now - timedelta(days=days_ago))


def levels() -> dict[int, tuple]:
    return {s.pk: (s.level, s.last_activity_at) for s in EngagementScore.objects.all()}


def test_a_score_matches_a_worked_example_computed_by_hand():
    # Half-life 30 days; an event attended is worth 8 points, a perk 5, a log-in and a page read 1 each.
    use_settings(30, event_attended=8, perk_redeemed=5, login=1, page_read=1)
    wear = factories.make_organisation("Wear Robotics")
    record(wear, Kind.EVENT_ATTENDED, 30, "summit")  # 8 x 0.5^(30/30) = 4
    record(wear, Kind.LOGIN, 0, "today")  # 1 x 0.5^0 = 1
    record(wear, Kind.PERK_REDEEMED, 60, "cloud-credits")  # 5 x 0.5^2 = 1.25
    record(wear, Kind.PAGE_READ, 90, "briefing")  # 1 x 0.5^3 = 0.125
    # By hand: 4 + 1 + 1.25 + 0.125 = 6.375 points today, "at risk" (3 to 10).

    assert score_of(wear, NOW) == pytest.approx(6.375, rel=1e-9)
    scoring = Scoring.load()
    assert scoring.band(score_of(wear, NOW)) == EngagementBand.AT_RISK

    recompute_scores(NOW)
    assert score_of(wear, NOW) == pytest.approx(6.375, rel=1e-9)


def test_every_kind_is_weighed_by_its_own_weight_in_the_nightly_sum():
    # A different weight for every kind (powers of ten) and a different number of occasions (the n-th kind n + 1
    # times): a kind weighed by another kind's weight shows in the total.
    weights = {kind: 10.0**n for n, kind in enumerate(ActivityKind.values)}
    use_settings(10, **weights)
    wear = factories.make_organisation("Wear Robotics")
    for n, kind in enumerate(ActivityKind.values):
        for time in range(n + 1):
            ActivityEvent.objects.create(organisation=wear, kind=kind, key=f"{kind}:{time}", occurred_at=NOW)

    numbers = dict(ActivityEvent.objects.values_list("kind", "kind_number").distinct())
    recompute_scores(NOW)

    assert numbers == {kind: n + 1 for n, kind in enumerate(ActivityKind.values)}
    expected = sum((n + 1) * weights[kind] for n, kind in enumerate(ActivityKind.values))
    assert score_of(wear, NOW) == pytest.approx(expected, rel=1e-12)


def test_the_score_halves_every_half_life_without_being_stored_again():
    use_settings(30, event_attended=8)
    wear = factories.make_organisation("Wear Robotics")
    record(wear, Kind.EVENT_ATTENDED, 0, "summit")
    stored = levels()

    assert score_of(wear, NOW) == pytest.approx(8)
    assert score_of(wear, NOW + timedelta(days=30)) == pytest.approx(4)
    assert score_of(wear, NOW + timedelta(days=75)) == pytest.approx(8 * 0.5**2.5)
    assert levels() == stored  # the decay happens on reading


def _generate(seed: int, organisations: list[Organisation], count: int) -> list[tuple]:
    rng = random.Random(seed)
    kinds = ActivityKind.values
    return [(rng.choice(organisations), rng.choice(kinds), rng.uniform(0, 400), f"{seed}:{n}") for n in range(count)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_updates_and_the_full_recomputation_agree_on_generated_data(seed):
    use_settings(45, **{kind: points for kind, points in zip(ActivityKind.values, range(0, 20, 2), strict=True)})
    organisations = [factories.make_organisation(f"Organisation {n}") for n in range(8)]
    events = _generate(seed, organisations, 300)
    for organisation, kind, days_ago, key in events:  # in random order of time, each added as it arrives
        record(organisation, kind, days_ago, key)
    incremental = levels()

    recompute_scores(NOW)
    full = levels()

    assert set(incremental) == {o.pk for o in organisations}
    for org_id, (level, last) in full.items():
        assert incremental[org_id][0] == pytest.approx(level, rel=1e-12, abs=1e-9)
        assert incremental[org_id][1] == last
    # And both equal the formula summed directly over the ledger.
    scoring = Scoring.load()
    for organisation in organisations:
        by_hand = sum(
            scoring.weights[e.kind] * 0.5 ** ((NOW - e.occurred_at).total_seconds() / 86400 / 45)
            for e in ActivityEvent.objects.filter(organisation=organisation)
        )
        assert score_of(organisation, NOW) == pytest.approx(by_hand, rel=1e-9)


def test_a_batch_added_at_once_agrees_with_the_full_recomputation():
    use_settings(20, login=1, event_attended=8, perk_redeemed=5)
    organisations = [factories.make_organisation(f"Organisation {n}") for n in range(5)]
    rng = random.Random(7)
    # The ledger already holds history, summed by last night's job; then a batch arrives.
    for n in range(100):
        record(rng.choice(organisations), rng.choice(["login", "event_attended"]), rng.uniform(1, 300), f"old:{n}")
    recompute_scores(NOW)
    batch = ActivityEvent.objects.bulk_create(
        ActivityEvent(
            organisation=rng.choice(organisations),
            kind=rng.choice(["login", "perk_redeemed"]),
            key=f"new:{n}",
            occurred_at=NOW - timedelta(days=rng.uniform(0, 5)),
        )
        for n in range(40)
    )
    engagement.add_to_scores(batch)
    incremental = levels()

    recompute_scores(NOW)

    for org_id, (level, last) in levels().items():
        assert incremental[org_id][0] == pytest.approx(level, rel=1e-12)
        assert incremental[org_id][1] == last


def test_a_batch_reaching_organisations_without_a_score_yet_scores_them_from_all_their_activity():
    use_settings(20, login=1, event_attended=8)
    scored = [factories.make_organisation(f"Scored {n}") for n in range(3)]
    for n, organisation in enumerate(scored):
        record(organisation, Kind.EVENT_ATTENDED, 10 + n, f"scored:{n}")
    newcomers = [factories.make_organisation(f"Newcomer {n}") for n in range(2)]
    # Their history reached the ledger without a score (an import before scores existed, say).
    for n, organisation in enumerate(newcomers):
        ActivityEvent.objects.create(
            organisation=organisation, kind="event_attended", key=f"old:{n}", occurred_at=NOW - timedelta(days=40)
        )
    assert EngagementScore.objects.filter(pk__in=[o.pk for o in newcomers]).count() == 0
    batch = ActivityEvent.objects.bulk_create(
        ActivityEvent(organisation=organisation, kind="login", key=f"batch:{n}", occurred_at=NOW - timedelta(days=1))
        for n, organisation in enumerate(scored + newcomers)
    )

    engagement.add_to_scores(batch)

    incremental = levels()
    assert set(incremental) == {o.pk for o in scored + newcomers}
    recompute_scores(NOW)
    for org_id, (level, last) in levels().items():
        assert incremental[org_id][0] == pytest.approx(level, rel=1e-12)
        assert incremental[org_id][1] == last
    assert score_of(newcomers[0], NOW) == pytest.approx(8 * 0.5 ** (40 / 20) + 0.5 ** (1 / 20))


def test_occasions_a_thousand_half_lives_apart_are_recorded_and_summed_without_failing():
    # A half-life of one day (the least staff may set): three years is more than a thousand half-lives, where
    # 2 ** -age leaves a float's range. Nothing may fail for it, neither recording nor the nightly job.
    use_settings(1, login=1, event_attended=8)
    returning, ancient = factories.make_organisation("Returning"), factories.make_organisation("Ancient")
    recompute_scores(NOW)  # every organisation has its row, without a level
    record(returning, Kind.EVENT_ATTENDED, 1200, "long-ago")
    record(returning, Kind.LOGIN, 0, "today")  # adds 2 ** 1200 times the level it joins
    batch = ActivityEvent.objects.bulk_create(
        [
            ActivityEvent(organisation=ancient, kind="login", key="a:1", occurred_at=NOW - timedelta(days=1100)),
            ActivityEvent(
                organisation=ancient, kind="event_attended", key="a:2", occurred_at=NOW - timedelta(days=1101)
            ),
            ActivityEvent(organisation=returning, kind="login", key="r:1", occurred_at=NOW - timedelta(days=2)),
        ]
    )
    engagement.add_to_scores(batch)  # a batch whose only occasions, for one organisation, are that old
    incremental = levels()

    recompute_scores(NOW)

    full = levels()
    # Today's log-in and the one two days ago are all that count for the returning organisation. (With a one-day
    # half-life a level is about 9,500, so its last bit is a relative 1e-12 of the score.)
    assert score_of(returning, NOW) == pytest.approx(1 + 0.5**2, rel=1e-9)
    assert full[returning.pk][0] == pytest.approx(incremental[returning.pk][0], rel=1e-12)
    # Three years back, nothing measurable is left. The incremental sum keeps the ancient organisation's level
    # exact, log2(2 ** -1100 + 8 * 2 ** -1101) from today; the nightly sum counts each occasion 2 ** -1000 at most.
    assert incremental[ancient.pk][0] == pytest.approx(
        engagement.days_since_epoch(NOW) - 1100 + math.log2(1 + 8 * 0.5), rel=1e-12
    )
    assert score_of(ancient, NOW) == pytest.approx(0, abs=1e-299)
    assert full[ancient.pk][1] == incremental[ancient.pk][1] == NOW - timedelta(days=1100)


def test_an_organisation_scored_for_the_first_time_takes_in_its_earlier_activity():
    use_settings(30, login=1, event_attended=8)
    wear = factories.make_organisation("Wear Robotics")
    # History that reached the ledger without a score (before scores existed, say).
    ActivityEvent.objects.create(
        organisation=wear, kind="event_attended", key="old", occurred_at=NOW - timedelta(days=30)
    )
    assert not EngagementScore.objects.exists()

    record(wear, Kind.LOGIN, 0, "today")

    assert score_of(wear, NOW) == pytest.approx(4 + 1)


def test_activity_that_weighs_nothing_moves_only_the_last_activity():
    use_settings(30, event_attended=8)
    wear = factories.make_organisation("Wear Robotics")
    record(wear, Kind.EVENT_ATTENDED, 10, "summit")
    record(wear, Kind.INVOICE_PAID, 1, "invoice")

    score = EngagementScore.objects.get(pk=wear.pk)
    assert score.last_activity_at == NOW - timedelta(days=1)
    assert score_of(wear, NOW) == pytest.approx(8 * 0.5 ** (10 / 30))


def test_an_organisation_with_no_activity_scores_nothing_and_is_dormant():
    quiet = factories.make_organisation("Quiet Ltd")
    recompute_scores(NOW)

    assert EngagementScore.objects.get(pk=quiet.pk).level is None
    assert score_of(quiet, NOW) == 0
    assert Scoring.load().band(0) == EngagementBand.DORMANT


def test_the_bands_follow_their_documented_thresholds_in_python_and_in_the_database():
    use_settings(30, login=1)  # bands by default: thriving from 30, steady from 10, at risk from 3
    scoring = Scoring.load()
    expected = {
        0: "dormant",
        2.9: "dormant",
        3: "at_risk",
        9.99: "at_risk",
        10: "steady",
        29.9: "steady",
        30: "thriving",
        120: "thriving",
    }
    for number, score in enumerate(expected):
        organisation = factories.make_organisation(f"Scored {number}")
        EngagementScore.objects.create(organisation=organisation, level=scoring.level_from_score(score, NOW))

    assert {score: scoring.band(score) for score in expected} == expected
    for band in EngagementBand:
        in_database = Organisation.objects.filter(scoring.band_q(band, NOW, "engagement__"))
        names = {int(o.name.split()[1]) for o in in_database}
        assert names == {n for n, score in enumerate(expected) if expected[score] == band}, band


def test_the_breakdown_says_what_happened_in_words():
    assert (
        breakdown_in_words(Counter({"event_attended": 3, "login": 12}))
        == "3 events attended and 12 log-ins in 90 days, no perks used"
    )
    assert (
        breakdown_in_words(Counter({"perk_redeemed": 1, "login": 1, "page_read": 2}))
        == "1 perk used, 1 log-in and 2 members' pages read in 90 days, no events"
    )
    assert breakdown_in_words(Counter({"login": 4})) == "4 log-ins in 90 days, no events or perks used"
    assert breakdown_in_words(Counter()) == "No activity in 90 days"


def test_the_breakdown_and_the_trend_are_read_from_the_ledger(django_assert_num_queries):
    use_settings(30, login=1, event_attended=8)
    wear = factories.make_organisation("Wear Robotics")
    durham = factories.make_organisation("Durham Data")
    for n in range(12):
        record(wear, Kind.LOGIN, n * 7, f"w-login-{n}", now=NOW)
    for n in range(3):
        record(wear, Kind.EVENT_ATTENDED, 10 + n * 20, f"w-event-{n}")
    record(wear, Kind.EVENT_ATTENDED, 120, "w-old-event")  # the previous 90 days
    for n in range(5):
        record(durham, Kind.EVENT_ATTENDED, 100 + n, f"d-event-{n}")  # all before the last 90 days
    record(durham, Kind.LOGIN, 5, "d-login")

    scoring = Scoring.load()
    with django_assert_num_queries(1):
        found = summaries([wear.pk, durham.pk], NOW, scoring)

    assert found[wear.pk].in_words == "3 events attended and 12 log-ins in 90 days, no perks used"
    assert (found[wear.pk].trend.recent, found[wear.pk].trend.previous) == (12 + 24, 8)
    assert str(found[wear.pk].trend) == "Up 350% on the previous 90 days"
    assert str(found[durham.pk].trend) == "Down 98% on the previous 90 days"
    assert found[durham.pk].trend.is_falling(30)
    assert not found[wear.pk].trend.is_falling(30)


def test_changing_the_weights_audits_the_change_and_recomputes_every_score(
    staff_user, django_capture_on_commit_callbacks
):
    use_settings(30, login=1)
    wear = factories.make_organisation("Wear Robotics")
    record(wear, Kind.LOGIN, 0, "today", now=datetime.now(UTC))
    assert score_of(wear) == pytest.approx(1, rel=1e-6)
    data = {f"weight_{kind}": 0 for kind in ActivityKind.values} | {
        "weight_login": 3,
        "half_life_days": 30,
        "thriving_from": 30,
        "steady_from": 10,
        "at_risk_from": 3,
        "renewal_window_days": 60,
        "falling_percent": 30,
        "quiet_days": 60,
        "digest_recipients": "engagement@netech.example",
    }
    form = EngagementSettingsForm(data, instance=EngagementSettings.load())
    assert form.is_valid(), form.errors

    with django_capture_on_commit_callbacks(execute=True):
        engagement.update_settings(form, staff_user)

    assert score_of(wear) == pytest.approx(3, rel=1e-6)
    entry = AuditEntry.objects.get(action="membership.engagement.settings_changed")
    assert set(entry.changes) == {"weights", "digest_recipients"}


def test_bands_must_go_down():
    data = {f"weight_{kind}": 1 for kind in ActivityKind.values} | {
        "half_life_days": 30,
        "thriving_from": 10,
        "steady_from": 20,
        "at_risk_from": 3,
        "renewal_window_days": 60,
        "falling_percent": 30,
        "quiet_days": 60,
        "digest_recipients": "not an address",
    }
    form = EngagementSettingsForm(data, instance=EngagementSettings.load())

    assert not form.is_valid()
    assert "The bands must go down" in str(form.non_field_errors())
    assert "not an e-mail address" in str(form.errors["digest_recipients"])


def test_the_nightly_job_scores_every_organisation():
    for n in range(3):
        factories.make_organisation(f"Organisation {n}")

    assert tasks.recompute_engagement_scores.delay().get() == 3
    assert EngagementScore.objects.count() == 3


def test_an_occasion_recorded_while_the_full_recomputation_runs_is_counted_once(transactional_db, monkeypatch):
    require(connection.vendor == "postgresql", "PostgreSQL (set DATABASE_URL) to record and recompute at once")
    use_settings(30, login=1, event_attended=8)
    wear = factories.make_organisation("Wear Robotics")
    now = datetime.now(UTC)
    record(wear, Kind.EVENT_ATTENDED, 0, "summit", now=now)
    summed, go_on = threading.Event(), threading.Event()
    sums = engagement._decayed_sums

    def sum_then_wait(*args):
        result = sums(*args)
        if not summed.is_set():  # the recomputation has read the ledger and holds its lock
            summed.set()
            go_on.wait(timeout=10)
        return result

    monkeypatch.setattr(engagement, "_decayed_sums", sum_then_wait)

    def in_thread(work):
        def run():
            try:
                work()
            finally:
                connection.close()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    recomputing = in_thread(lambda: recompute_scores(now))
    assert summed.wait(timeout=10)
    recording = in_thread(lambda: record(wear, Kind.LOGIN, 0, "login", now=now))
    recording.join(timeout=1)
    assert recording.is_alive()  # waits for the recomputation to finish
    go_on.set()
    recomputing.join(timeout=10)
    recording.join(timeout=10)

    assert score_of(wear, now) == pytest.approx(8 + 1)
    recompute_scores(now)
    assert score_of(wear, now) == pytest.approx(8 + 1)
