"""The at-risk queue: member organisations the engagement manager should talk to now, and what to say.

An organisation is in the queue when it is a member (``Subscription.objects.entitled``: its membership active, its
payment being retried, or in its grace period; not still waiting for its first payment) and either
- its renewal is near (the period ends within the settings' window, or a renewal payment is overdue) and its
  score is low (at risk or dormant) or falling (points in the last 90 days down by the settings' percentage on
  the 90 days before); or
- it has gone quiet: no activity for the settings' number of days (or none since it came onto the platform that
  long ago).

The queue is worked out in two queries however many organisations there are; a page of it needs two more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateformat import format as date_format

from accounts.models import User
from membership import services
from membership.engagement import Scoring, Summary, summaries
from membership.models import EngagementBand, EngagementSettings, FollowUp, Organisation, Subscription

RENEWAL_LOW = "renewal_low"
RENEWAL_FALLING = "renewal_falling"
QUIET = "quiet"
FOLLOW_UP_DAYS = 2  # working days to act on a suggestion


def _day(moment: datetime | date) -> str:
    day = timezone.localdate(moment) if isinstance(moment, datetime) else moment
    return date_format(day, "j M Y")


@dataclass
class Suggestion:
    title: str  # the follow-up task's title: the same from day to day, so a second click finds the first task
    text: str  # the next action, in words


@dataclass
class AtRiskItem:
    organisation_id: int
    name: str
    status: str
    renews_at: datetime | None
    cancelling: bool
    tier: str
    score: float
    band: EngagementBand
    last_activity_at: datetime | None
    joined_at: datetime
    account_manager: str
    reasons: list[str]
    now: datetime
    summary: Summary | None = None
    open_follow_ups: list[FollowUp] = field(default_factory=list)

    @property
    def renewing(self) -> bool:
        return RENEWAL_LOW in self.reasons or RENEWAL_FALLING in self.reasons

    @property
    def overdue(self) -> bool:
        return self.status in (Subscription.Status.PAST_DUE, Subscription.Status.GRACE)

    @property
    def days_to_renewal(self) -> int | None:
        if self.renews_at is None:
            return None
        return (timezone.localdate(self.renews_at) - timezone.localdate(self.now)).days

    @property
    def days_quiet(self) -> int:
        since = self.last_activity_at or self.joined_at
        return max(0, (timezone.localdate(self.now) - timezone.localdate(since)).days)

    @property
    def renewal_in_words(self) -> str:
        """What its renewal is doing, to follow "It": "renews on 2 Dec 2026"."""
        if self.overdue:
            return "has its renewal payment overdue"
        if self.renews_at is None:
            return "has no renewal date"
        return f"{'ends' if self.cancelling else 'renews'} on {_day(self.renews_at)}"

    @property
    def deadline(self) -> str:
        """When to act: "before it renews on 2 Dec 2026", or "now, while its renewal payment is overdue"."""
        return "now, while its renewal payment is overdue" if self.overdue else f"before it {self.renewal_in_words}"

    @property
    def renewal_note(self) -> str:
        """The renewal in a few words, for a task's title."""
        if self.overdue:
            return "renewal payment overdue"
        return self.renewal_in_words.replace(" on ", " ")

    @property
    def why(self) -> list[str]:
        """Why the organisation is in the queue, one sentence per reason."""
        reasons = []
        if RENEWAL_LOW in self.reasons:
            reasons.append(f"It {self.renewal_in_words} and its score is {self.band.label.lower()}.")
        if RENEWAL_FALLING in self.reasons and self.summary:
            reasons.append(
                f"It {self.renewal_in_words} and its activity is falling: {str(self.summary.trend).lower()}."
            )
        if QUIET in self.reasons:
            reasons.append(
                f"No activity for {self.days_quiet} days."
                if self.last_activity_at
                else f"No activity since it came onto the platform {self.days_quiet} days ago."
            )
        return reasons

    @property
    def suggestion(self) -> Suggestion:
        return suggest(self)

    @property
    def suggestion_is_open(self) -> bool:
        """Whether the suggested follow-up has been created already and is still open."""
        title = self.suggestion.title[:200]
        return any(follow_up.title == title for follow_up in self.open_follow_ups)


def _unused(summary: Summary | None) -> str:
    counts = summary.counts if summary else {}
    unused = []
    if not counts.get("event_attended") and not counts.get("event_registered"):
        unused.append("the events programme")
    if not counts.get("perk_redeemed"):
        unused.append("the perks")
    return " and ".join(unused) or "the member directory and the members' briefing"


def suggest(item: AtRiskItem) -> Suggestion:
    """The next action for an organisation in the queue, in words, from why it is there."""
    # Gone quiet: quiet for the set number of days. Never active at all, since joining less than that ago (often
    # a member just imported, its people not yet signed in): not started yet. Dormant but active lately is only
    # little used, which is said below.
    if (
        item.renewing
        and QUIET not in item.reasons
        and not item.last_activity_at
        and item.band == EngagementBand.DORMANT
    ):
        return Suggestion(
            title=f"Renewal call: not started yet, {item.renewal_note}",
            text=(
                f"Call {item.deadline}: nobody has been active since it came onto the platform {item.days_quiet} days "
                "ago. Check that "
                f"the right colleagues have their log-ins, and offer a welcome session on {_unused(item.summary)}."
            ),
        )
    if item.renewing and QUIET in item.reasons:
        return Suggestion(
            title=f"Renewal call: gone quiet, {item.renewal_note}",
            text=(
                f"Call {item.deadline}: nobody has been active for {item.days_quiet} days. Ask what would make the "
                f"membership worth keeping, and offer a welcome-back session on {_unused(item.summary)}."
            ),
        )
    if RENEWAL_FALLING in item.reasons:
        trend = str(item.summary.trend).lower() if item.summary else "falling"
        return Suggestion(
            title=f"Renewal check-in: activity falling, {item.renewal_note}",
            text=(
                f"Activity is {trend}. Ask what has changed for them, and invite the people who used to take part "
                f"to the next event, {item.deadline}."
            ),
        )
    if item.renewing:
        return Suggestion(
            title=f"Renewal conversation: low engagement, {item.renewal_note}",
            text=(
                f"Book a renewal conversation {item.deadline}, and show them what they have not used yet: "
                f"{_unused(item.summary)}."
            ),
        )
    since = f"since {_day(item.last_activity_at)}" if item.last_activity_at else "on the platform yet"
    return Suggestion(
        title=f"Re-engage: no activity {since}",
        text=(
            f"No activity for {item.days_quiet} days. Send a personal invitation to the next event and point them at "
            f"{_unused(item.summary)}; check that the right colleagues have their log-ins."
        ),
    )


def _sort_key(item: AtRiskItem) -> tuple:
    # Renewals first, soonest (and overdue) first; then the longest quiet.
    if item.renewing:
        return (0, item.renews_at.timestamp() if item.renews_at and not item.overdue else 0.0, item.name)
    return (1, -item.days_quiet, item.name)


def at_risk_queue(now: datetime | None = None, *, organisation: Organisation | None = None) -> list[AtRiskItem]:
    """Every organisation in the queue, most urgent first (or just ``organisation``'s entry, if it has one)."""
    now = now or timezone.now()
    config = EngagementSettings.load()
    scoring = Scoring.load(config)
    steady_level = scoring.level_from_score(scoring.steady_from, now)
    cutoff = now - timedelta(days=config.quiet_days)

    renewing = Q(current_period_end__gte=now, current_period_end__lt=now + timedelta(days=config.renewal_window_days))
    renewing |= Q(status__in=[Subscription.Status.PAST_DUE, Subscription.Status.GRACE])
    low = Q(organisation__engagement__level__isnull=True)
    if steady_level is not None:
        low |= Q(organisation__engagement__level__lt=steady_level)
    quiet = Q(organisation__engagement__last_activity_at__lt=cutoff) | Q(
        organisation__engagement__last_activity_at__isnull=True, organisation__created_at__lt=cutoff
    )
    members = Subscription.objects.entitled(now)
    if organisation is not None:
        members = members.filter(organisation=organisation)
    rows = members.filter(renewing | quiet).values_list(
        "organisation_id",
        "organisation__name",
        "status",
        "current_period_end",
        "cancel_at_period_end",
        "tier__name",
        "organisation__engagement__level",
        "organisation__engagement__last_activity_at",
        "organisation__created_at",
        "organisation__account_manager__first_name",
        "organisation__account_manager__last_name",
        "organisation__account_manager__email",
    )
    # Falling is only asked of renewing organisations whose score is not already low: one grouped query.
    renewing_not_low = members.filter(renewing).exclude(low).values("organisation_id")
    trends = summaries(Organisation.objects.filter(pk__in=renewing_not_low), now, scoring)

    items = []
    for (
        org_id,
        name,
        status,
        period_end,
        cancelling,
        tier,
        level,
        last_activity,
        joined,
        first,
        last,
        email,
    ) in rows:
        score = scoring.score(level, now)
        band = scoring.band(score)
        is_renewing = status in (Subscription.Status.PAST_DUE, Subscription.Status.GRACE) or (
            period_end is not None and now <= period_end < now + timedelta(days=config.renewal_window_days)
        )
        reasons = []
        summary = trends.get(org_id)
        if is_renewing and band in (EngagementBand.AT_RISK, EngagementBand.DORMANT):
            reasons.append(RENEWAL_LOW)
        elif is_renewing and summary and summary.trend.is_falling(config.falling_percent):
            reasons.append(RENEWAL_FALLING)
        since = last_activity or joined
        if since < cutoff:
            reasons.append(QUIET)
        if not reasons:
            continue
        items.append(
            AtRiskItem(
                organisation_id=org_id,
                name=name,
                status=status,
                renews_at=period_end,
                cancelling=cancelling,
                tier=tier,
                score=score,
                band=band,
                last_activity_at=last_activity,
                joined_at=joined,
                account_manager=" ".join(filter(None, (first, last))) or (email or ""),
                reasons=reasons,
                now=now,
                summary=summary,
            )
        )
    return sorted(items, key=_sort_key)


def explain(items: list[AtRiskItem]) -> list[AtRiskItem]:
    """Fill in the breakdown and the open follow-ups of the items a page shows: two queries for the page."""
    if not items:
        return items
    now = items[0].now
    missing = [item.organisation_id for item in items if item.summary is None]
    found = summaries(missing, now, Scoring.load()) if missing else {}
    follow_ups: dict[int, list[FollowUp]] = {}
    shown = FollowUp.objects.open().filter(organisation_id__in=[i.organisation_id for i in items])
    for follow_up in shown.select_related("assignee").order_by("due_date", "pk"):
        follow_ups.setdefault(follow_up.organisation_id, []).append(follow_up)
    for item in items:
        if item.summary is None:
            item.summary = found.get(item.organisation_id, Summary())
        item.open_follow_ups = follow_ups.get(item.organisation_id, [])
    return items


def _working_days_ahead(day: date, days: int) -> date:
    while days:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day


@transaction.atomic
def create_follow_up(organisation: Organisation, actor: User, now: datetime | None = None) -> tuple[FollowUp, bool]:
    """Turn the organisation's suggested next action into a follow-up task; returns ``(task, created)``.

    The task goes to the organisation's account manager (or to ``actor`` when it has none), due in two working
    days. Clicking again while that task is open finds it instead of adding another.
    """
    organisation = (
        Organisation.objects.select_for_update(of=("self",)).select_related("account_manager").get(pk=organisation.pk)
    )
    entries = explain(at_risk_queue(now, organisation=organisation))
    if not entries:
        raise services.MembershipError(f"{organisation} is not in the at-risk queue any more.")
    suggestion = entries[0].suggestion
    title = suggestion.title[:200]
    existing = FollowUp.objects.open().filter(organisation=organisation, title=title).first()
    if existing:
        return existing, False
    manager = organisation.account_manager
    assignee = manager if manager and manager.is_active and manager.is_staff else actor
    due = _working_days_ahead(timezone.localdate(now or timezone.now()), FOLLOW_UP_DAYS)
    return services.add_follow_up(organisation, actor, title=title, due_date=due, assignee=assignee), True
