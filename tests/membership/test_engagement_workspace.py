"""The engagement manager's workspace: the at-risk queue and its follow-ups, the dashboard and the weekly digest."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from membership import at_risk
from membership.activity import record_activity
from membership.engagement import recompute_scores
from membership.engagement_dashboard import engagement_figures, queue_weekly_digest
from membership.models import (
    ActivityKind,
    EngagementBand,
    EngagementDigest,
    EngagementSettings,
    FollowUp,
    Subscription,
    Tier,
)
from membership.permissions import grant_engagement_permissions, grant_membership_team_permissions
from tests import factories

pytestmark = pytest.mark.django_db

QUEUE = "/admin/engagement/at-risk/"
WORKSPACE = "/admin/engagement/"
Status = Subscription.Status


@pytest.fixture
def team(staff_user):
    """The engagement manager with the CRM and the engagement workspace."""
    group = Group.objects.get(name="Membership team")
    grant_membership_team_permissions(group)
    grant_engagement_permissions(group)
    return staff_user


@pytest.fixture
def manager(client, team):
    client.force_login(team)
    return client


@pytest.fixture
def growth(db) -> Tier:
    return Tier.objects.create(name="Growth", slug="growth")


def member(name: str, tier: Tier, *, renews_in: int, status=Status.ACTIVE, joined_days_ago: int = 400, **fields):
    now = timezone.now()
    organisation = factories.make_organisation(name, created_at=now - timedelta(days=joined_days_ago), **fields)
    Subscription.objects.create(
        organisation=organisation,
        tier=tier,
        status=status,
        amount_pence=90_000,
        current_period_start=now + timedelta(days=renews_in - 365),
        current_period_end=now + timedelta(days=renews_in),
    )
    return organisation


def activity(organisation, kind, days_ago: float, times: int = 1) -> None:
    # Counted back on the local clock: days are calendar days in the site's time zone, and across a change to or from
    # summer time an hour's difference would otherwise move a late evening onto another date.
    now = timezone.localtime()
    for n in range(times):
        record_activity(
            organisation,
            kind,
            key=f"{organisation.pk}:{kind}:{days_ago}:{n}",
            occurred_at=now - timedelta(days=days_ago, minutes=n),
        )


@pytest.fixture
def world(growth, team):
    """Members in every situation the queue must tell apart (default settings: 60-day window, 30% fall, 60 quiet)."""
    w = {}
    w["dormant"] = member("Dormant Renewing", growth, renews_in=20, joined_days_ago=30)  # new, silent, renewing
    w["thriving"] = member("Thriving Renewing", growth, renews_in=25)
    activity(w["thriving"], ActivityKind.EVENT_ATTENDED, 5, times=6)
    w["falling"] = member("Falling Renewing", growth, renews_in=40, account_manager=team)
    activity(w["falling"], ActivityKind.EVENT_ATTENDED, 120, times=10)  # the previous 90 days: 80 points
    activity(w["falling"], ActivityKind.EVENT_ATTENDED, 10, times=5)  # the last 90: 40 points
    w["quiet"] = member("Quiet Member", growth, renews_in=200)
    activity(w["quiet"], ActivityKind.LOGIN, 100)
    w["busy"] = member("Busy Member", growth, renews_in=200)
    activity(w["busy"], ActivityKind.LOGIN, 2, times=3)
    w["lapsed"] = member("Lapsed Former", growth, renews_in=-50, status=Status.LAPSED)
    w["overdue"] = member("Overdue Payer", growth, renews_in=-3, status=Status.PAST_DUE)
    activity(w["overdue"], ActivityKind.LOGIN, 3, times=4)  # at risk: 4 points
    return w


def test_the_queue_holds_renewals_with_low_or_falling_scores_and_members_gone_quiet(world):
    queue = at_risk.at_risk_queue()

    assert [item.name for item in queue] == ["Overdue Payer", "Dormant Renewing", "Falling Renewing", "Quiet Member"]
    reasons = {item.name: item.reasons for item in queue}
    assert reasons == {
        "Overdue Payer": [at_risk.RENEWAL_LOW],
        "Dormant Renewing": [at_risk.RENEWAL_LOW],
        "Falling Renewing": [at_risk.RENEWAL_FALLING],
        "Quiet Member": [at_risk.QUIET],
    }
    bands = {item.name: item.band for item in queue}
    assert bands["Falling Renewing"] == EngagementBand.THRIVING  # high, but half what it was
    assert bands["Overdue Payer"] == EngagementBand.AT_RISK


def test_the_rules_follow_the_settings(world):
    config = EngagementSettings.load()
    config.renewal_window_days = 30  # Falling Renewing (40 days away) is no longer near
    config.quiet_days = 120  # nor is Quiet Member (100 days) quiet
    config.save()

    assert [item.name for item in at_risk.at_risk_queue()] == ["Overdue Payer", "Dormant Renewing"]


def test_each_entry_says_why_and_what_to_do_next(world):
    items = {item.name: item for item in at_risk.explain(at_risk.at_risk_queue())}

    dormant = items["Dormant Renewing"]
    assert dormant.why == [f"It renews on {timezone.localdate(dormant.renews_at):%-d %b %Y} and its score is dormant."]
    assert dormant.suggestion.text.startswith(
        f"Call before it renews on {timezone.localdate(dormant.renews_at):%-d %b %Y}"
    )
    assert "the events programme and the perks" in dormant.suggestion.text
    # It joined 30 days ago and nobody has signed in yet: not started, rather than gone quiet.
    assert (
        dormant.suggestion.title
        == f"Renewal call: not started yet, renews {timezone.localdate(dormant.renews_at):%-d %b %Y}"
    )
    assert (
        "nobody has been active since it came onto the platform 30 days ago. Check that the right colleagues"
        in dormant.suggestion.text
    )
    falling = items["Falling Renewing"]
    assert "activity is falling: down 50% on the previous 90 days" in falling.why[0]
    assert falling.summary.in_words == "5 events attended in 90 days, no perks used"
    assert falling.suggestion.title == (
        f"Renewal check-in: activity falling, renews {timezone.localdate(falling.renews_at):%-d %b %Y}"
    )
    overdue = items["Overdue Payer"]
    assert overdue.why == ["It has its renewal payment overdue and its score is at risk."]
    assert "Book a renewal conversation now, while its renewal payment is overdue" in overdue.suggestion.text
    quiet = items["Quiet Member"]
    assert quiet.why == ["No activity for 100 days."]
    assert quiet.suggestion.text.startswith("No activity for 100 days. Send a personal invitation")


def test_a_renewing_organisation_active_lately_is_not_said_to_have_gone_quiet(growth):
    busy = member("Busy Renewing", growth, renews_in=20)
    activity(busy, ActivityKind.LOGIN, 0.1)  # one log-in today: dormant on points alone

    [item] = at_risk.explain(at_risk.at_risk_queue())

    assert item.band == EngagementBand.DORMANT and item.reasons == [at_risk.RENEWAL_LOW]
    assert item.suggestion.title.startswith("Renewal conversation: low engagement")
    assert "nobody has been active" not in item.suggestion.text


def test_a_renewing_organisation_silent_for_the_quiet_days_has_gone_quiet(growth):
    silent = member("Silent Renewing", growth, renews_in=20)
    activity(silent, ActivityKind.LOGIN, 100)
    member("Never Renewing", growth, renews_in=30, joined_days_ago=400)

    items = {item.name: item for item in at_risk.explain(at_risk.at_risk_queue())}

    assert items["Silent Renewing"].suggestion.title.startswith("Renewal call: gone quiet, renews ")
    assert "nobody has been active for 100 days" in items["Silent Renewing"].suggestion.text
    assert items["Never Renewing"].suggestion.title.startswith("Renewal call: gone quiet, renews ")
    assert items["Never Renewing"].why[-1] == "No activity since it came onto the platform 400 days ago."


def test_an_organisation_with_no_account_manager_shows_none(manager, growth):
    member("Unmanaged Ltd", growth, renews_in=20)

    html = manager.get(QUEUE).content.decode()

    assert "Unmanaged Ltd" in html and "None None" not in html


def test_one_click_makes_the_suggestion_a_follow_up_and_a_second_click_finds_it(manager, world, team):
    falling = world["falling"]

    response = manager.post(f"{QUEUE}{falling.pk}/follow-up/", {"next": QUEUE + "?p=1"})
    again = manager.post(f"{QUEUE}{falling.pk}/follow-up/")

    assert response.status_code == 302 and response["Location"] == QUEUE + "?p=1"
    assert again.status_code == 302
    follow_up = FollowUp.objects.get(organisation=falling)
    assert follow_up.title.startswith("Renewal check-in: activity falling")
    assert follow_up.assignee == team  # its account manager
    assert follow_up.due_date > timezone.localdate()
    page = manager.get(QUEUE).content.decode()
    assert f'Open: <a href="/admin/membership/organisation/{falling.pk}/record/#follow-ups-section">' in page


def test_an_organisation_out_of_the_queue_gets_no_follow_up(manager, world):
    response = manager.post(f"{QUEUE}{world['busy'].pk}/follow-up/", follow=True)

    assert "is not in the at-risk queue any more" in response.content.decode()
    assert not FollowUp.objects.exists()


def test_the_queue_and_its_button_need_their_permissions(client, world):
    outsider = factories.make_staff("finance@netech.example")
    outsider.groups.set([Group.objects.create(name="Finance")])  # staff, but without the engagement workspace
    outsider.user_permissions.add(Permission.objects.get(codename="access_admin"))
    client.force_login(outsider)

    # The back office answers a refusal by sending them to its home page.
    for response in (
        client.get(QUEUE),
        client.post(f"{QUEUE}{world['falling'].pk}/follow-up/"),
        client.get(WORKSPACE),
    ):
        assert response.status_code == 302 and response["Location"] == "/admin/"
    assert not FollowUp.objects.exists()


@pytest.mark.parametrize("codename", ["add_followup", "view_followup"])
def test_the_queue_shows_open_follow_ups_only_to_staff_who_may_view_them(client, world, team, codename):
    """The queue's button needs ``add_followup``; the follow-ups it lists need ``view_followup``."""
    at_risk.create_follow_up(world["falling"], team)
    reader = factories.make_staff("reader@netech.example")
    reader.groups.clear()
    reader.user_permissions.add(
        *Permission.objects.filter(codename__in=["access_admin", "view_engagementscore", codename])
    )
    client.force_login(reader)

    page = client.get(QUEUE).content.decode()
    clicked = client.post(f"{QUEUE}{world['quiet'].pk}/follow-up/")

    can_view, can_add = codename == "view_followup", codename == "add_followup"
    assert ("Renewal check-in: activity falling" in page) is can_view
    assert ('Create follow-up<span class="w-sr-only"> for Quiet Member</span>' in page) is can_add
    assert clicked.status_code == 302
    assert FollowUp.objects.filter(organisation=world["quiet"]).exists() is can_add


def test_members_never_reach_the_workspace(client, member_user):
    client.force_login(member_user)

    assert client.get(QUEUE).status_code == 302  # to the log-in: the back office is for staff
    assert client.get(WORKSPACE).status_code == 302


@pytest.fixture
def member_user(member):
    return member


def test_the_queue_page_lists_why_and_the_suggestion(manager, world):
    page = manager.get(QUEUE).content.decode()

    assert "4</strong> organisations to talk to" in page
    assert "Renewal payment overdue" in page
    assert 'Create follow-up<span class="w-sr-only"> for Quiet Member</span>' in page
    assert "Thriving Renewing" not in page and "Busy Member" not in page


def test_the_workspace_draws_its_charts(manager, world):
    page = manager.get(WORKSPACE).content.decode()

    assert "Activity, week by week (last 12 weeks)" in page
    assert "Members by engagement band" in page
    assert "Renewals pipeline, next six months, by band" in page
    assert "<svg" in page and "engagement-fill--dormant" in page
    assert "Thriving Renewing" in page  # among the most engaged
    assert "<script" not in page.split('<div class="nice-padding">', 1)[1].split("</main>")[0]


def test_the_figures_count_members_by_band_and_the_pipeline_by_month(world):
    figures = engagement_figures()

    bands = {bar.label: bar.value for bar in figures["bands"]}
    # Members are live subscriptions: the lapsed organisation is not counted.
    assert bands == {"Thriving": 2, "Steady": 0, "At risk": 1, "Dormant": 3}
    assert figures["at_risk_count"] == 4
    assert sum(bar.total for bar in figures["pipeline"]) == 3  # renewing in the next six months
    assert sum(column.value for column in figures["weekly_activity"]) == 6 + 5 + 3 + 4
    assert [row["name"] for row in figures["most_engaged"][:2]] == ["Falling Renewing", "Thriving Renewing"]


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def _more_members(growth, start: int, count: int, assignee) -> None:
    for n in range(start, start + count):
        organisation = member(f"Member {n}", growth, renews_in=10 + n % 50, joined_days_ago=300)
        activity(organisation, ActivityKind.LOGIN, n % 120, times=1 + n % 3)
        if n % 4 == 0:
            FollowUp.objects.create(
                organisation=organisation, title="Call", due_date=timezone.localdate(), assignee=assignee
            )


def test_the_workspace_queue_and_home_take_the_same_queries_as_members_grow(manager, growth, world, team):
    _more_members(growth, 0, 5, team)
    few = [_queries(manager, url) for url in (WORKSPACE, QUEUE, "/admin/")]

    _more_members(growth, 5, 50, team)
    recompute_scores()
    many = [_queries(manager, url) for url in (WORKSPACE, QUEUE, "/admin/")]

    assert few == many


def test_the_admin_home_shows_the_engagement_panel_to_the_team(manager, world):
    page = manager.get("/admin/").content.decode()

    assert "in the at-risk queue" in page
    assert "Most engaged" in page


# The weekly digest ----------------------------------------------------------------------------------------------


def test_the_digest_goes_once_a_week_however_often_it_is_asked(world, mailoutbox, django_capture_on_commit_callbacks):
    config = EngagementSettings.load()
    config.digest_recipients = "engagement@netech.example, director@netech.example"
    config.save()
    monday = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        first = queue_weekly_digest(monday)
        second = queue_weekly_digest(monday + timedelta(hours=3))
    with django_capture_on_commit_callbacks(execute=True):
        next_week = queue_weekly_digest(monday + timedelta(days=7))

    assert (first, second, next_week) == (True, False, True)
    assert len(mailoutbox) == 2
    message = mailoutbox[0]
    assert message.to == ["engagement@netech.example", "director@netech.example"]
    assert message.subject == "Engagement this week: 4 organisations in the at-risk queue"
    assert "Dormant Renewing" in message.body and "Call before it renews on" in message.body
    assert "/admin/membership/organisation/" in message.alternatives[0][0]
    assert EngagementDigest.objects.filter(sent_at__isnull=False).count() == 2


def test_a_digest_queued_twice_is_sent_once(world, mailoutbox):
    from membership import tasks

    config = EngagementSettings.load()
    config.digest_recipients = "engagement@netech.example"
    config.save()
    digest = EngagementDigest.objects.create(week_starting=timezone.localdate(), recipients=config.digest_recipients)

    tasks.send_engagement_digest.delay(digest.pk)
    tasks.send_engagement_digest.delay(digest.pk)  # a redelivered task

    assert len(mailoutbox) == 1


def test_no_one_named_no_digest(world, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert queue_weekly_digest() is False
    assert mailoutbox == []


# The scoring settings -------------------------------------------------------------------------------------------

SETTINGS = "/admin/engagement/settings/"


def _settings_form(**changes) -> dict:
    data = {f"weight_{kind}": 1 for kind in ActivityKind.values} | {
        "half_life_days": 45,
        "thriving_from": 30,
        "steady_from": 10,
        "at_risk_from": 3,
        "renewal_window_days": 60,
        "falling_percent": 30,
        "quiet_days": 60,
        "digest_recipients": "",
    }
    return data | changes


def test_staff_change_the_scoring_in_the_back_office(manager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = manager.post(SETTINGS, _settings_form(weight_event_attended=12, quiet_days=45))

    assert response.status_code == 302
    config = EngagementSettings.load()
    assert (config.weight("event_attended"), config.quiet_days) == (12, 45)


def test_a_settings_error_keeps_what_was_typed(manager):
    response = manager.post(SETTINGS, _settings_form(half_life_days=0, weight_login=7))

    page = response.content.decode()
    assert response.status_code == 400
    assert "Ensure this value is greater than or equal to 1." in page
    assert 'name="weight_login" value="7"' in page
    assert EngagementSettings.load().half_life_days == 45


def test_only_staff_allowed_to_change_the_scoring_see_its_settings(client, world):
    reader = factories.make_staff("reader@netech.example")
    reader.groups.clear()  # not in the team: the workspace, but not its settings
    reader.user_permissions.add(*Permission.objects.filter(codename__in=["access_admin", "view_engagementscore"]))
    client.force_login(reader)

    assert client.get(WORKSPACE).status_code == 200
    assert client.post(SETTINGS, _settings_form(weight_login=50)).status_code == 302
    assert EngagementSettings.load().weight("login") == 1


# Who counts as a member -----------------------------------------------------------------------------------------


@pytest.fixture
def pending(growth):
    """Two organisations waiting for their first payment: an abandoned card checkout, quiet since it signed up, and
    an unpaid invoice with a period already set and plenty of activity. Neither is a member yet."""
    abandoned = factories.make_organisation("Abandoned Checkout", created_at=timezone.now() - timedelta(days=400))
    Subscription.objects.create(organisation=abandoned, tier=growth, status=Status.PENDING, amount_pence=90_000)
    unpaid = member("Unpaid Invoice", growth, renews_in=30, status=Status.PENDING)
    Subscription.objects.filter(organisation=unpaid).update(payment_method=Subscription.PaymentMethod.INVOICE)
    activity(unpaid, ActivityKind.EVENT_ATTENDED, 3, times=10)
    return {"abandoned": abandoned, "unpaid": unpaid}


def test_the_figures_and_the_queue_leave_out_subscriptions_waiting_for_payment(world, pending):
    figures = engagement_figures()
    queue = at_risk.at_risk_queue()

    bands = {bar.label: bar.value for bar in figures["bands"]}
    assert bands == {"Thriving": 2, "Steady": 0, "At risk": 1, "Dormant": 3}  # as without them
    assert figures["members"] == 6
    assert figures["at_risk_count"] == 4
    assert sum(bar.total for bar in figures["pipeline"]) == 3
    assert "Unpaid Invoice" not in [row["name"] for row in figures["most_engaged"]]
    assert [item.name for item in queue] == ["Overdue Payer", "Dormant Renewing", "Falling Renewing", "Quiet Member"]
    assert at_risk.at_risk_queue(organisation=pending["abandoned"]) == []


def test_the_workspace_the_queue_and_the_home_panel_show_no_pending_organisation(manager, world, pending):
    pages = [manager.get(url).content.decode() for url in (WORKSPACE, QUEUE, "/admin/")]

    for page in pages:
        assert "Abandoned Checkout" not in page and "Unpaid Invoice" not in page
    assert "4</strong> organisations to talk to" in pages[1]


def test_a_pending_organisation_gets_no_follow_up_from_the_queue(manager, world, pending):
    response = manager.post(f"{QUEUE}{pending['abandoned'].pk}/follow-up/", follow=True)

    assert "is not in the at-risk queue any more" in response.content.decode()
    assert not FollowUp.objects.exists()


def test_the_digest_counts_no_pending_organisation(world, pending):
    from membership.engagement_dashboard import digest_context

    context = digest_context(timezone.now())

    assert dict(context["bands"]) == {"Thriving": 2, "Steady": 0, "At risk": 1, "Dormant": 3}
    assert context["at_risk_count"] == 4
    assert "Unpaid Invoice" not in [row["name"] for row in context["most_engaged"]]
