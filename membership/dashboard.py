"""The membership dashboard: who is a member, what it is worth, what renews soon and what was lost.

Every figure is one aggregate query, so the dashboard costs the same with 200 members or 20,000.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from membership.models import OrganisationType, Subscription


@dataclass
class Bar:
    label: str
    value: int
    share: float  # of the largest bar, 0..1, for drawing
    caption: str = ""


def _bars(rows: list[tuple[str, int]], caption=lambda value: str(value)) -> list[Bar]:
    largest = max((value for _, value in rows), default=0) or 1
    return [Bar(label, value, value / largest, caption(value)) for label, value in rows]


def _pounds(pence: int) -> str:
    """Whole pounds, halves rounded up, in integers throughout."""
    return f"£{(pence + 50) // 100:,}"


def membership_figures(now=None) -> dict:
    now = now or timezone.now()
    # Members are entitled subscriptions: one waiting for its first payment is neither a member nor a renewal.
    entitled = Subscription.objects.entitled(now)
    by_tier = entitled.values("tier__name", "tier__sort_order").annotate(n=Count("pk")).order_by("tier__sort_order")
    by_type = entitled.values("organisation__organisation_type").annotate(n=Count("pk")).order_by("-n")
    type_labels = dict(OrganisationType.choices)
    # Annual recurring revenue: monthly plans count twelve times.
    arr = entitled.aggregate(
        annual=Sum("amount_pence", filter=Q(interval=Subscription.Interval.YEAR)),
        monthly=Sum(F("amount_pence") * 12, filter=Q(interval=Subscription.Interval.MONTH)),
    )
    arr_pence = (arr["annual"] or 0) + (arr["monthly"] or 0)

    ending_soon = entitled.filter(current_period_end__gte=now, current_period_end__lt=now + timedelta(days=90))
    # A renewal is a membership set to renew; one its organisation (or staff) set to end is counted on its own.
    renewing = Q(auto_renew=True, cancel_at_period_end=False)
    due = (
        ending_soon.filter(renewing)
        .annotate(month=TruncMonth("current_period_end"))
        .values("month")
        .annotate(n=Count("pk"), value=Sum("amount_pence"))
        .order_by("month")
    )
    year_ago = now - timedelta(days=365)
    # Lost members are memberships that had started: an abandoned checkout or an unpaid first invoice was none.
    ended = Subscription.objects.filter(started_at__isnull=False, ended_at__gte=year_ago)
    lapses = (
        ended.filter(status=Subscription.Status.LAPSED)
        .annotate(month=TruncMonth("ended_at"))
        .values("month")
        .annotate(n=Count("pk"))
        .order_by("month")
    )
    lost = ended.filter(status__in=[Subscription.Status.LAPSED, Subscription.Status.CANCELLED]).count()
    # Renewed: members whose current period began in the last year, after the membership had started (a first
    # period begins before its payment arrives).
    renewed = entitled.filter(current_period_start__gte=year_ago, started_at__lt=F("current_period_start")).count()
    return {
        "members": sum(row["n"] for row in by_tier),
        "arr": _pounds(arr_pence),
        "by_tier": _bars([(row["tier__name"], row["n"]) for row in by_tier]),
        "by_type": _bars([(type_labels.get(row["organisation__organisation_type"], "?"), row["n"]) for row in by_type]),
        "renewals_due": _bars(
            [(f"{row['month']:%b %Y}", row["n"]) for row in due],
            caption=lambda n: f"{n} renewing",
        ),
        "renewals_due_value": _pounds(sum(row["value"] or 0 for row in due)),
        "renewals_due_count": sum(row["n"] for row in due),
        "set_to_end_count": ending_soon.exclude(renewing).count(),
        "lapses": _bars([(f"{row['month']:%b %Y}", row["n"]) for row in lapses]),
        "lapsed_count": sum(row["n"] for row in lapses),
        "renewal_rate": round(100 * renewed / (renewed + lost)) if renewed + lost else None,
    }
