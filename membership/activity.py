"""The activity ledger: the one place engagement activity is recorded.

Services that cause activity (a redemption, an event registration, a paid invoice) call ``record_activity``
inside their own transaction. Each occasion has a key, so a retried task or a repeated request records it once.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from config.db import insert_once

from .engagement import add_to_scores
from .models import ActivityEvent, ActivityKind, Organisation, OrganisationMember


def record_activity(
    organisation: Organisation | int,
    kind: str,
    *,
    key: str,
    person: User | None = None,
    detail: str = "",
    occurred_at: datetime | None = None,
) -> tuple[ActivityEvent, bool]:
    """Record one occasion of activity for the organisation (or the organisation with that id); returns
    ``(event, created)``.

    ``key`` identifies the occasion within its kind; recording the same key again changes nothing, however many
    times and however concurrently. The organisation's engagement score takes the occasion in at once
    (``membership.engagement.add_to_scores``), in the same transaction.
    """
    if kind not in ActivityKind.values:
        raise ValueError(f"Unknown activity kind: {kind}")
    event = ActivityEvent(
        organisation_id=organisation if isinstance(organisation, int) else organisation.pk,
        person=person if person and person.is_authenticated else None,
        kind=kind,
        key=f"{kind}:{key}"[:200],
        detail=detail[:200],
        occurred_at=occurred_at or timezone.now(),
    )
    # The ledger and the score change together, or neither does; inside a caller's transaction, with it.
    with transaction.atomic(savepoint=False):
        if not insert_once(event, "key"):
            return ActivityEvent.objects.get(key=event.key), False
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
