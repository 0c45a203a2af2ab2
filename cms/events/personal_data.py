"""What events hold about a person, for the personal-data export and account deletion."""

from contextlib import suppress

from django.utils import timezone

from accounts.models import User
from accounts.personal_data import Section, register
from cms.events import services
from cms.events.models import EventRegistration

ERASED_NAME = "A former attendee"


def _export(user: User) -> list[dict]:
    registrations = EventRegistration.objects.filter(user=user).select_related("event", "organisation")
    return [
        {
            "event": r.event.title,
            "starts": r.event.starts_at.isoformat(),
            "name_on_badge": r.name,
            "email": r.email,
            "organisation": r.organisation.name if r.organisation_id else None,
            "status": r.status,
            "price_pence": r.price_pence,
            "paid_pence": r.amount_paid_pence,
            "registered": r.created_at.isoformat(),
            "checked_in": r.attended_at.isoformat() if r.attended_at else None,
        }
        for r in registrations.order_by("created_at")
    ]


def _erase(user: User) -> None:
    """Registrations keep their shape (places, payments and attendance are counted) without naming the person;
    places at events still to come are given up, so the waitlist gets them."""
    registrations = EventRegistration.objects.filter(user=user)
    registrations.update(name=ERASED_NAME, email=f"erased-{user.pk}@erased.invalid")
    upcoming = registrations.filter(status__in=EventRegistration.LIVE, event__starts_at__gt=timezone.now())
    for registration in upcoming:
        # A payment being confirmed right now refuses: that place stays, anonymously.
        with suppress(services.EventError):
            services.cancel_registration(registration, user)


def register_sections() -> None:
    register(Section("events", export=_export, erase=_erase))
