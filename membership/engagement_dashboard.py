"""The engagement manager's dashboard and weekly digest: activity over time, how scores spread across the bands,
the at-risk count, the renewals pipeline by band and the most engaged organisations.

Charts are drawn on the server as SVG (no script, no inline style), each with its figures in a table beside it.
Every figure is one aggregate query, so the page costs the same with 200 members or 20,000.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef
from django.db.models.functions import TruncMonth, TruncWeek
from django.urls import reverse
from django.utils import timezone

from config.celery import queue_on_commit
from config.emails import send_email
from membership.at_risk import at_risk_queue, explain
from membership.engagement import KIND_WORDS, WINDOW, Scoring, summaries, week_starting
from membership.models import (
    ActivityEvent,
    ActivityKind,
    EngagementBand,
    EngagementDigest,
    EngagementSettings,
    Organisation,
    Subscription,
)

WEEKS_SHOWN = 12
PIPELINE_MONTHS = 6
BANDS = list(EngagementBand)


@dataclass
class Bar:
    label: str
    value: int
    share: float  # of the largest bar, 0..100, for drawing
    caption: str = ""
    css: str = ""


@dataclass
class Segment:
    band: str
    label: str
    value: int
    x: float  # 0..100
    width: float  # 0..100


@dataclass
class StackedBar:
    label: str
    total: int
    segments: list[Segment]


@dataclass
class Column:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float


def _bars(rows: list[tuple[str, int]], caption=str, css: list[str] | None = None) -> list[Bar]:
    largest = max((value for _, value in rows), default=0) or 1
    return [
        Bar(label, value, round(100 * value / largest, 2), caption(value), css[index] if css else "")
        for index, (label, value) in enumerate(rows)
    ]


def _members(now: datetime):
    """Member organisations at ``now``: whose engagement the team looks after.

    A member has its tier's benefits (``Subscription.objects.entitled``): its membership is active, its payment
    is being retried, or it is in its grace period. An organisation still waiting to pay for its first period (an
    unfinished card checkout, an unpaid invoice) is not a member.
    """
    return Organisation.objects.filter(Exists(Subscription.objects.entitled(now).filter(organisation=OuterRef("pk"))))


def band_counts(now: datetime, scoring: Scoring) -> dict[str, int]:
    return _members(now).aggregate(
        **{band.value: Count("pk", filter=scoring.band_q(band, now, "engagement__")) for band in BANDS}
    )


def _weekly_activity(now: datetime) -> list[Column]:
    this_week = week_starting(timezone.localdate(now))
    weeks = [this_week - timedelta(weeks=n) for n in range(WEEKS_SHOWN - 1, -1, -1)]
    start = timezone.make_aware(datetime.combine(weeks[0], datetime.min.time()))
    counts = {
        timezone.localdate(row["week"]) if isinstance(row["week"], datetime) else row["week"]: row["n"]
        for row in ActivityEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=now)
        .annotate(week=TruncWeek("occurred_at"))
        .order_by()
        .values("week")
        .annotate(n=Count("pk"))
    }
    largest = max(counts.values(), default=0) or 1
    width = 100 / len(weeks)
    columns = []
    for index, week in enumerate(weeks):
        value = counts.get(week, 0)
        height = round(90 * value / largest, 2)
        columns.append(
            Column(
                f"{week:%-d %b}",
                value,
                round(index * width + width * 0.1, 2),
                90 - height,
                round(width * 0.8, 2),
                height,
            )
        )
    return columns


def _activity_by_kind(now: datetime) -> list[Bar]:
    counts = dict(
        ActivityEvent.objects.filter(occurred_at__gte=now - WINDOW, occurred_at__lt=now)
        .order_by()
        .values("kind")
        .annotate(n=Count("pk"))
        .values_list("kind", "n")
    )
    rows = [(ActivityKind(kind).label, counts[kind]) for kind in KIND_WORDS if counts.get(kind)]
    return _bars(sorted(rows, key=lambda row: -row[1]))


def _pipeline(now: datetime, scoring: Scoring) -> list[StackedBar]:
    end = now + timedelta(days=31 * PIPELINE_MONTHS)
    rows = (
        Subscription.objects.entitled(now)
        .filter(current_period_end__gte=now, current_period_end__lt=end)
        .annotate(month=TruncMonth("current_period_end"), band=scoring.band_case(now, "organisation__engagement__"))
        .order_by()
        .values("month", "band")
        .annotate(n=Count("pk"))
        .values_list("month", "band", "n")
    )
    months: dict = {}
    for month, band, n in rows:
        day = timezone.localdate(month) if isinstance(month, datetime) else month
        months.setdefault(day, {})[band] = n
    largest = max((sum(bands.values()) for bands in months.values()), default=0) or 1
    bars = []
    for month in sorted(months):
        x, segments = 0.0, []
        for band in BANDS:
            value = months[month].get(band.value, 0)
            if value:
                width = round(100 * value / largest, 2)
                segments.append(Segment(band.value, band.label, value, round(x, 2), width))
                x += width
        bars.append(StackedBar(f"{month:%b %Y}", sum(months[month].values()), segments))
    return bars


def _most_engaged(now: datetime, scoring: Scoring, count: int) -> list[dict]:
    rows = list(
        _members(now)
        .filter(engagement__level__isnull=False)
        .order_by("-engagement__level", "name")
        .values_list("pk", "name", "engagement__level")[:count]
    )
    found = summaries([pk for pk, *_ in rows], now, scoring)
    result = []
    for pk, name, level in rows:
        score = scoring.score(level, now)
        summary = found.get(pk)
        result.append(
            {
                "pk": pk,
                "name": name,
                "score": score,
                "band": scoring.band(score),
                "in_words": summary.in_words if summary else "No activity in 90 days",
            }
        )
    return result


def engagement_figures(now: datetime | None = None, *, compact: bool = False) -> dict:
    """What the workspace (or, ``compact``, the admin home panel) shows."""
    now = now or timezone.now()
    scoring = Scoring.load()
    bands = band_counts(now, scoring)
    queue = at_risk_queue(now)
    figures = {
        "now": now,
        "scoring": scoring,
        "members": sum(bands.values()),
        "bands": _bars(
            [(band.label, bands[band.value]) for band in BANDS],
            caption=lambda n: f"{n} organisations" if n != 1 else "1 organisation",
            css=[band.value for band in BANDS],
        ),
        "at_risk_count": len(queue),
        "at_risk_renewing": sum(1 for item in queue if item.renewing),
        "most_engaged": _most_engaged(now, scoring, 5 if compact else 10),
    }
    if not compact:
        figures |= {
            "weekly_activity": _weekly_activity(now),
            "activity_by_kind": _activity_by_kind(now),
            "pipeline": _pipeline(now, scoring),
            "band_legend": [(band.value, band.label) for band in BANDS],
        }
    return figures


# The weekly digest ----------------------------------------------------------------------------------------------

DIGEST_AT_RISK_SHOWN = 10


def queue_weekly_digest(now: datetime | None = None) -> bool:
    """Queue this week's digest for the engagement manager(s), once a week however often it is asked.

    Returns whether it was queued now. Nobody named in the settings: nothing is sent.
    """
    now = now or timezone.now()
    recipients = EngagementSettings.load().recipients
    if not recipients:
        return False
    week = week_starting(timezone.localdate(now))
    with transaction.atomic():
        digest, created = EngagementDigest.objects.get_or_create(
            week_starting=week, defaults={"recipients": ", ".join(recipients)[:500]}
        )
        if created:
            from membership import tasks

            queue_on_commit(tasks.send_engagement_digest, digest.pk)
    return created


def digest_context(now: datetime) -> dict:
    scoring = Scoring.load()
    queue = at_risk_queue(now)
    shown = explain(queue[:DIGEST_AT_RISK_SHOWN])
    week_start = now - timedelta(days=7)
    this_week, last_week = (
        ActivityEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end).count()
        for start, end in ((week_start, now), (week_start - timedelta(days=7), week_start))
    )
    base = settings.SITE_URL
    counts = band_counts(now, scoring)
    return {
        "week_starting": week_starting(timezone.localdate(now)),
        "bands": [(band.label, counts[band.value]) for band in BANDS],
        "at_risk_count": len(queue),
        "at_risk": [
            {
                "name": item.name,
                "why": " ".join(item.why),
                "suggestion": item.suggestion.text,
                "link": base + reverse("crm_organisations:record", args=[item.organisation_id]),
            }
            for item in shown
        ],
        "activity_this_week": this_week,
        "activity_last_week": last_week,
        "most_engaged": _most_engaged(now, scoring, 5),
        "workspace_link": base + reverse("engagement:workspace"),
        "queue_link": base + reverse("engagement:at_risk"),
    }


def send_digest(digest_id: int) -> bool:
    """Send a queued digest unless it has gone already; returns whether it was sent now."""
    with transaction.atomic():
        digest = EngagementDigest.objects.select_for_update().filter(pk=digest_id).first()
        if digest is None or digest.sent_at:
            return False
        recipients = [email.strip() for email in digest.recipients.split(",") if email.strip()]
        now = timezone.now()
        send_email("membership/emails/engagement-digest", recipients, digest_context(now))
        digest.sent_at = now
        digest.save(update_fields=["sent_at"])
    return True
