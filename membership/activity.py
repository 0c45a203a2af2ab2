"""The activity ledger: the one place engagement activity is recorded.

Services that cause activity (a redemption, an event registration, a paid invoice) call ``record_activity``
inside their own transaction. Each occasion has a key, so a retried task or a repeated request records it once.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User

from .engagement import add_to_scores
from .models import ActivityEvent, ActivityKind, Organisation, OrganisationMember


def record_activity(
    organisation: Organisation,
    kind: str,
    *,
    key: str,
    person: User | None = None,
    detail: str = "",
    occurred_at: datetime | None = None,
) -> tuple[ActivityEvent, bool]:
    """Record one occasion of activity for the organisation; returns ``(event, created)``.

    ``key`` identifies the occasion within its kind; recording the same key again changes nothing. The
    organisation's engagement score takes the occasion in at once (``membership.engagement.add_to_scores``).
    """
    if kind not in ActivityKind.values:
        raise ValueError(f"Unknown activity kind: {kind}")
    full_key = f"{kind}:{key}"[:200]
    existing = ActivityEvent.objects.filter(key=full_key).first()
    if existing:
        return existing, False
    with transaction.atomic():  # the ledger and the score change together, or neither does
        try:
            with transaction.atomic():
                event = ActivityEvent.objects.create(
                    organisation=organisation,
                    person=person if person and person.is_authenticated else None,
                    kind=kind,
                    key=full_key,
                    detail=detail[:200],
                    occurred_at=occurred_at or timezone.now(),
                )
        except IntegrityError:
            return ActivityEvent.objects.get(key=full_key), False
        add_to_scores([event])
    return event, True


def record_login(user: User) -> int:
    """A log-in counts once per person, organisation and day; returns how many organisations it was recorded for."""
    today = timezone.localdate().isoformat()
    recorded = 0
    memberships = OrganisationMember.objects.active().filter(user=user).select_related("organisation")
    for membership in memberships:
        _, created = record_activity(
            membership.organisation,
            ActivityKind.LOGIN,
            key=f"{user.pk}:{membership.organisation_id}:{today}",
            person=user,
        )
        recorded += created
    return recorded


def on_user_logged_in(sender, request, user, **kwargs) -> None:
    """Receiver for Django's ``user_logged_in``: a log-in is activity for each of the person's organisations."""
    record_login(user)
