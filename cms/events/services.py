"""Event registration: taking, holding, freeing and offering places, and checking people in at the door.

What these functions guarantee:

- Places are exact however many people register at once. Every function that takes or frees a place locks the
  event's row first and counts the places taken under that lock; locks are always taken event first, then
  registration, so two functions never wait on each other in a circle.
- A person has at most one live registration per event (checked under the lock, and a unique constraint).
- A freed place goes, in the same transaction, to the first on the waitlist: confirmed at once if their place is
  free, offered and held for ``OFFER_HOLD`` if they have to pay. Nobody who registers later jumps the queue.
- A paid place is held for ``CHECKOUT_HOLD`` while its owner pays; holds not paid in time are released (by the
  ``release_expired_holds`` job, and by any registration for the same event), and their places offered on.
- Each change is audited (``events.registration.*``, ``events.payment.*``). Registering (confirmed or waitlisted)
  records ``EVENT_REGISTERED`` and checking in ``EVENT_ATTENDED`` for the organisation, once per registration.
- E-mails are queued after the commit; each status is e-mailed once (``send_registration_email``).

A refused request raises ``EventError`` with a message for the person, and changes nothing.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.mime.image import MIMEImage

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format

from accounts.models import User
from cms.events.models import EventPage, EventRegistration
from config.celery import queue_on_commit
from config.emails import send_email
from membership.activity import record_activity
from membership.billing import format_pence
from membership.models import ActivityKind, Organisation, Tier
from membership.renewals import entitled_tier
from membership.services import record_audit

logger = logging.getLogger(__name__)

Status = EventRegistration.Status
Pricing = EventRegistration.Pricing

# How long a new paid place is held while its owner pays at the checkout.
CHECKOUT_HOLD = timedelta(minutes=35)
# How long a place offered to the waitlist's first person is held for them to pay (at most until the start).
OFFER_HOLD = timedelta(hours=24)


class EventError(Exception):
    """A registration change that is not allowed; the message says why, in words the person understands."""


# Prices --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """What registering under ``organisation`` (None: as an individual) costs, and why."""

    organisation: Organisation | None
    pricing: str
    price_pence: int
    reason: str

    @property
    def price(self) -> str:
        return format_pence(self.price_pence) if self.price_pence else "Free"


def price_for(event: EventPage, organisation: Organisation | None, free_tier_ids: set[int] | None = None) -> Offer:
    """The price of a place for someone registering under ``organisation``.

    Members of an entitled organisation (``membership.renewals``: active, past due or in grace) attend free if
    its tier is one the event includes places for, else pay the member price. Lapsed, cancelled or unpaid
    organisations, and individuals, pay the non-member price; the reason says so.
    """
    if organisation is None:
        return Offer(None, Pricing.NON_MEMBER, event.non_member_price_pence, "non-member price")
    tier: Tier | None = entitled_tier(organisation)
    if tier is None:
        return Offer(
            organisation,
            Pricing.NON_MEMBER,
            event.non_member_price_pence,
            f"{organisation}'s membership is not active, so the non-member price applies",
        )
    if free_tier_ids is None:
        free_tier_ids = set(event.free_for_tiers.values_list("pk", flat=True))
    if tier.pk in free_tier_ids:
        return Offer(organisation, Pricing.INCLUDED, 0, f"included in {organisation}'s {tier} membership")
    return Offer(organisation, Pricing.MEMBER, event.member_price_pence, "member price")


def offers_for(event: EventPage, user: User) -> list[Offer]:
    """What each of the user's organisations would pay, then what they would pay as an individual."""
    free_tier_ids = set(event.free_for_tiers.values_list("pk", flat=True))
    organisations = Organisation.objects.for_user(user).order_by("name")
    return [*(price_for(event, o, free_tier_ids) for o in organisations), price_for(event, None)]


# Registering ---------------------------------------------------------------------------------------------------


def register_for_event(
    event: EventPage, user: User, *, organisation: Organisation | None, name: str
) -> EventRegistration:
    """Register ``user`` under ``organisation`` (one they belong to) or as an individual (None).

    With a place free: confirmed if free of charge, else held for payment (``start_checkout`` next). With none:
    on the waitlist. Refused when registration is not open, the user has no verified e-mail address, already
    has a live registration for the event, or does not belong to the organisation.
    """
    name = " ".join(name.split()) or user.get_full_name()
    if not name:
        raise EventError("Please give the name for your badge.")
    if not EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists():
        raise EventError("Please verify your e-mail address before registering: we send your ticket there.")
    if organisation is not None and not Organisation.objects.for_user(user).filter(pk=organisation.pk).exists():
        raise EventError("You can only register under an organisation you belong to.")
    offer = price_for(event, organisation)
    with transaction.atomic():
        event = _locked_event(event.pk)
        now = timezone.now()
        _refuse_unless_open(event, now)
        # Places already freed, and the waitlist, come before this newcomer.
        _release_expired_holds(event, now)
        _offer_free_places(event, now)
        _refuse_if_registered(event, user)
        registration = EventRegistration(
            event=event,
            user=user,
            organisation=organisation,
            name=name[:150],
            email=user.email,
            pricing=offer.pricing,
            price_pence=offer.price_pence,
            created_at=now,
        )
        if _places_taken(event) >= event.capacity:
            registration.status, registration.waitlisted_at = Status.WAITLISTED, now
        elif offer.price_pence:
            registration.status, registration.hold_expires_at = Status.PENDING_PAYMENT, now + CHECKOUT_HOLD
        else:
            registration.status, registration.confirmed_at = Status.CONFIRMED, now
        registration.save()
        _audit(
            registration,
            _REGISTERED_ACTIONS[registration.status],
            f"{name} registered for {event.title}{_under(registration)}: {registration.get_status_display().lower()}"
            f" ({offer.reason}, {offer.price})",
            actor=user,
            changes={"status": [None, registration.status], "price_pence": [None, registration.price_pence]},
        )
        if registration.status != Status.PENDING_PAYMENT:
            _record_registered(registration)
            _queue_email(registration)
        return registration


_REGISTERED_ACTIONS = {
    Status.CONFIRMED: "events.registration.confirmed",
    Status.WAITLISTED: "events.registration.waitlisted",
    Status.PENDING_PAYMENT: "events.registration.held",
}


def _refuse_unless_open(event: EventPage, now: datetime) -> None:
    if not event.live:
        raise EventError("This event is not open for registration.")
    state = event.registration_state(now)
    if state == "not_yet":
        raise EventError(f"Registration opens on {long_moment(event.registration_opens_at, event)}.")
    if state == "closed":
        raise EventError("Registration for this event has closed.")


def _refuse_if_registered(event: EventPage, user: User) -> None:
    existing = event.registrations.live().filter(user=user).first()
    if existing is None:
        return
    if existing.status == Status.WAITLISTED:
        raise EventError("You are already on the waitlist for this event.")
    if existing.status == Status.PENDING_PAYMENT:
        raise EventError("You already have a place held for this event: please complete the payment.")
    raise EventError("You are already registered for this event.")


# Cancelling ----------------------------------------------------------------------------------------------------


def cancel_registration(registration: EventRegistration, actor: User) -> EventRegistration:
    """Cancel a live registration (its owner, or staff). A place it held goes to the first on the waitlist.

    A place held for payment has its checkout closed first, so it can no longer be paid; if the payment has just
    gone through, the cancellation is refused until it is confirmed. Paid places are not refunded here: the
    audit entry says a refund may be due and the membership team refunds in Stripe.
    """
    from cms.events import payments

    with transaction.atomic():
        event = _locked_event(registration.event_id)
        registration = _locked_registration(registration.pk)
        if registration.user_id != actor.pk and not actor.is_staff:
            raise EventError("You can only cancel your own registration.")
        if not registration.is_live:
            raise EventError("This registration is already cancelled.")
        now = timezone.now()
        if event.starts_at <= now:
            raise EventError("This event has already started, so the registration can no longer be cancelled.")
        if registration.status == Status.PENDING_PAYMENT:
            payments.close_checkout(registration)
        held = registration.holds_a_place
        paid = f"; {format_pence(registration.amount_paid_pence)} was paid" if registration.amount_paid_pence else ""
        _change_status(
            registration,
            Status.CANCELLED,
            "events.registration.cancelled",
            f"{registration.name}'s registration for {event.title} was cancelled by "
            f"{'its owner' if actor.pk == registration.user_id else actor}{paid}",
            actor=actor,
            cancelled_at=now,
            hold_expires_at=None,
        )
        if held:
            _offer_free_places(event, now)
        return registration


# Paying --------------------------------------------------------------------------------------------------------


def record_payment(registration: EventRegistration, *, amount_pence: int, payment_id: str, session_id: str) -> None:
    """A checkout for ``registration`` has been paid (the webhook says so, re-read from Stripe).

    A held place is confirmed. A payment that arrives after its hold ran out confirms the place if one is free
    (and the person holds no other), else it is audited as a refund due; so is a second payment, and a payment
    for a registration its owner cancelled. A repeat of the same payment changes nothing.
    """
    with transaction.atomic():
        event = _locked_event(registration.event_id)
        registration = _locked_registration(registration.pk)
        now = timezone.now()
        if registration.paid_at is not None:
            if registration.stripe_payment_intent_id != payment_id:
                _refund_due(registration, amount_pence, payment_id, "it was paid twice")
            return
        registration.amount_paid_pence = amount_pence
        registration.paid_at = now
        registration.stripe_payment_intent_id = payment_id
        registration.stripe_checkout_session_id = session_id
        registration.save(
            update_fields=["amount_paid_pence", "paid_at", "stripe_payment_intent_id", "stripe_checkout_session_id"]
        )
        _audit(
            registration,
            "events.payment.received",
            f"{registration.name} paid {format_pence(amount_pence)} for a place at {event.title}",
            changes={"amount_paid_pence": [0, amount_pence], "payment": [None, payment_id]},
        )
        if registration.status == Status.PENDING_PAYMENT:
            _confirm(registration, now, "paid")
        elif registration.status == Status.CANCELLED:
            _refund_due(registration, amount_pence, payment_id, "its owner cancelled it")
        elif registration.status == Status.EXPIRED:
            has_another = event.registrations.live().filter(user_id=registration.user_id).exists()
            if _places_taken(event) < event.capacity and not has_another:
                _confirm(registration, now, "paid after its hold ran out")
            else:
                _refund_due(registration, amount_pence, payment_id, "its hold ran out and the place went to another")


def _confirm(registration: EventRegistration, now: datetime, why: str) -> None:
    _change_status(
        registration,
        Status.CONFIRMED,
        "events.registration.confirmed",
        f"{registration.name}'s place at {registration.event.title} is confirmed: {why}",
        confirmed_at=now,
        hold_expires_at=None,
    )
    _record_registered(registration)
    _queue_email(registration)


def _refund_due(registration: EventRegistration, amount_pence: int, payment_id: str, why: str) -> None:
    record_audit(
        "events.payment.refund_due",
        f"Refund due: {registration.name} paid {format_pence(amount_pence)} for {registration.event.title}, "
        f"but {why}. Refund payment {payment_id} in Stripe.",
        organisation=registration.organisation,
        subject=registration.user,
        changes={"payment": [None, payment_id], "amount_pence": [None, amount_pence]},
    )
    logger.warning("Event registration %s: refund due for payment %s (%s)", registration.pk, payment_id, why)


# Holds and the waitlist -----------------------------------------------------------------------------------------


def release_expired_holds(now: datetime | None = None) -> int:
    """Release every place held for payment past its time and offer it to the waitlist; how many were released.

    Safe to run twice or on two workers at once: each event is handled under its own lock."""
    now = now or timezone.now()
    event_ids = (
        EventRegistration.objects.filter(status=Status.PENDING_PAYMENT, hold_expires_at__lte=now)
        .values_list("event_id", flat=True)
        .distinct()
    )
    released = 0
    for event_id in list(event_ids):
        with transaction.atomic():
            event = _locked_event(event_id)
            released += _release_expired_holds(event, now)
            _offer_free_places(event, now)
    return released


def fill_free_places(event_id: int) -> int:
    """Offer any free places to the waitlist (after an editor raised the capacity); how many were offered."""
    with transaction.atomic():
        event = EventPage.objects.select_for_update(of=("self",)).filter(pk=event_id).first()
        if event is None:
            return 0
        return _offer_free_places(event, timezone.now())


def release_hold(registration: EventRegistration, session_id: str) -> bool:
    """Release a place held for payment once its checkout session ``session_id`` has closed unpaid, and offer it
    to the waitlist; False when the registration is not (or no longer) held for that session."""
    with transaction.atomic():
        event = _locked_event(registration.event_id)
        registration = _locked_registration(registration.pk)
        if registration.status != Status.PENDING_PAYMENT or registration.stripe_checkout_session_id != session_id:
            return False
        _change_status(
            registration,
            Status.EXPIRED,
            "events.registration.expired",
            f"{registration.name}'s place at {event.title} was released: the checkout closed unpaid",
            hold_expires_at=None,
        )
        _offer_free_places(event, timezone.now())
        return True


def _release_expired_holds(event: EventPage, now: datetime) -> int:
    expired = event.registrations.filter(status=Status.PENDING_PAYMENT, hold_expires_at__lte=now)
    count = 0
    for registration in expired.select_for_update(of=("self",)).select_related("organisation", "user"):
        _change_status(
            registration,
            Status.EXPIRED,
            "events.registration.expired",
            f"{registration.name}'s place at {event.title} was released: it was not paid for in time",
        )
        count += 1
    return count


def _offer_free_places(event: EventPage, now: datetime) -> int:
    """Give free places to the waitlist, first come first served. The caller holds the event's lock."""
    free = event.capacity - _places_taken(event)
    if free <= 0 or event.starts_at <= now:
        return 0  # nothing to offer, or too late: the event is under way
    waiting = event.registrations.waitlist().select_for_update(of=("self",)).select_related("organisation", "user")
    waiting = list(waiting[:free])
    for registration in waiting:
        registration.event = event
        if registration.price_pence:
            until = min(now + OFFER_HOLD, event.starts_at)
            _change_status(
                registration,
                Status.PENDING_PAYMENT,
                "events.registration.offered",
                f"A place at {event.title} was offered to {registration.name} from the waitlist, "
                f"to be paid for by {long_moment(until, event)}",
                hold_expires_at=until,
            )
        else:
            _change_status(
                registration,
                Status.CONFIRMED,
                "events.registration.promoted",
                f"{registration.name} moved from the waitlist to a place at {event.title}",
                confirmed_at=now,
            )
        _queue_email(registration)
    return len(waiting)


# Checking in ---------------------------------------------------------------------------------------------------


def check_in(registration: EventRegistration, actor: User) -> bool:
    """Mark a confirmed registration as attended; True the first time, False when already checked in.

    Records ``EVENT_ATTENDED`` for the organisation once. Anyone without a confirmed place is refused."""
    with transaction.atomic():
        registration = _locked_registration(registration.pk)
        if registration.status != Status.CONFIRMED:
            raise EventError(
                f"{registration.name} has no confirmed place ({registration.get_status_display().lower()})."
            )
        if registration.attended_at is not None:
            return False
        now = timezone.now()
        registration.attended_at, registration.checked_in_by = now, actor
        registration.save(update_fields=["attended_at", "checked_in_by"])
        _audit(
            registration,
            "events.registration.attended",
            f"{registration.name} attended {registration.event.title}{_under(registration)}",
            actor=actor,
            changes={"attended_at": [None, now.isoformat()]},
        )
        if registration.organisation_id:
            record_activity(
                registration.organisation,
                ActivityKind.EVENT_ATTENDED,
                key=activity_key(registration),
                person=registration.user,
                detail=registration.event.title,
                occurred_at=now,
            )
        return True


# E-mails -------------------------------------------------------------------------------------------------------

_EMAILS = {
    Status.CONFIRMED: "registration-confirmed",
    Status.WAITLISTED: "waitlisted",
    Status.PENDING_PAYMENT: "place-offered",  # only for places offered from the waitlist
}


def send_registration_email(registration_id: int) -> bool:
    """E-mail the registration's owner about its current status, once per status; True if one went.

    Called by the e-mail task: a registration whose status has moved on since it was queued gets the e-mail for
    its status now (or none: cancelled and released registrations get none)."""
    registration = EventRegistration.objects.select_related("event", "organisation").filter(pk=registration_id).first()
    if registration is None or registration.status not in _EMAILS:
        return False
    status = registration.status
    if status == Status.PENDING_PAYMENT and registration.waitlisted_at is None:
        return False  # they are paying at the checkout now; the confirmation follows
    claimed = (
        EventRegistration.objects.filter(pk=registration.pk, status=status)
        .exclude(emailed_status=status)
        .update(emailed_status=status)
    )
    if not claimed:
        return False
    try:
        send_email(
            f"cms/events/emails/{_EMAILS[status]}",
            [registration.email],
            registration_email_context(registration),
            attachments=_attachments(registration) if status == Status.CONFIRMED else None,
        )
    except Exception:
        # Not sent: let a retry send it.
        EventRegistration.objects.filter(pk=registration.pk, emailed_status=status).update(emailed_status="")
        raise
    return True


def registration_email_context(registration: EventRegistration) -> dict:
    event = registration.event
    return {
        "registration": registration,
        "event": event,
        "when": event_when(event),
        "venue": event.venue_line,
        "link": settings.SITE_URL + reverse("events:registration", args=[registration.pk]),
        "event_link": event.get_full_url() or settings.SITE_URL,
        "price": format_pence(registration.price_pence) if registration.price_pence else "Free",
        "promoted": registration.waitlisted_at is not None,
        "hold_until": long_moment(registration.hold_expires_at, event) if registration.hold_expires_at else "",
        "position": waitlist_position(registration),
    }


def _attachments(registration: EventRegistration) -> list:
    from cms.events.ics import event_calendar
    from cms.events.tickets import qr_png

    qr = MIMEImage(qr_png(registration), "png")
    qr.add_header("Content-ID", "<ticket-qr>")
    qr.add_header("Content-Disposition", "inline", filename=f"ticket-{registration.reference}.png")
    return [qr, ("event.ics", event_calendar(registration.event, registration), "text/calendar")]


def waitlist_position(registration: EventRegistration) -> int | None:
    """1 for the first on the waitlist; None when not waitlisted."""
    if registration.status != Status.WAITLISTED:
        return None
    ahead = registration.event.registrations.waitlist().filter(waitlisted_at__lt=registration.waitlisted_at).count()
    return ahead + 1


# Shared steps --------------------------------------------------------------------------------------------------


def long_moment(moment: datetime, event: EventPage) -> str:
    """A moment as people read it, in the event's time zone: "Tuesday 14 October 2026 at 18:00 BST"."""
    return date_format(timezone.localtime(moment, event.zone), "l j F Y \\a\\t H:i T")


def event_when(event: EventPage) -> str:
    """When the event is, in its own time zone: "Tuesday 14 October 2026, 18:00 to 20:30 BST"."""
    start, end = event.local_starts_at, event.local_ends_at
    if start.date() == end.date():
        return f"{date_format(start, 'l j F Y, H:i')} to {date_format(end, 'H:i T')}"
    return f"{date_format(start, 'l j F Y, H:i T')} to {date_format(end, 'l j F Y, H:i T')}"


def _locked_event(event_id: int) -> EventPage:
    """The event with its row locked: the lock every change to its places takes first."""
    return EventPage.objects.select_for_update(of=("self",)).get(pk=event_id)


def _locked_registration(registration_id: int) -> EventRegistration:
    return (
        EventRegistration.objects.select_for_update(of=("self",))
        .select_related("event", "organisation", "user")
        .get(pk=registration_id)
    )


def _places_taken(event: EventPage) -> int:
    return event.registrations.holding_places().count()


def _change_status(
    registration: EventRegistration, status: str, action: str, summary: str, actor: User | None = None, **fields
) -> None:
    before = registration.status
    registration.status = status
    for name, value in fields.items():
        setattr(registration, name, value)
    registration.save(update_fields=["status", *fields])
    _audit(registration, action, summary, actor=actor, changes={"status": [before, status]})


def _audit(registration: EventRegistration, action: str, summary: str, *, actor=None, changes=None) -> None:
    record_audit(
        action,
        summary,
        actor=actor,
        organisation=registration.organisation,
        subject=registration.user,
        changes=changes,
    )


def activity_key(registration: EventRegistration) -> str:
    """The occasion a registration (or its attendance) is in the activity ledger: one person's place at one event
    for one organisation. Cancelling and registering again is a new registration, but not a new occasion."""
    return f"event:{registration.event_id}:{registration.user_id}:{registration.organisation_id}"


def _record_registered(registration: EventRegistration) -> None:
    if registration.organisation_id:
        record_activity(
            registration.organisation,
            ActivityKind.EVENT_REGISTERED,
            key=activity_key(registration),
            person=registration.user,
            detail=registration.event.title,
        )


def _under(registration: EventRegistration) -> str:
    return f" for {registration.organisation}" if registration.organisation_id else " as an individual"


def _queue_email(registration: EventRegistration) -> None:
    from cms.events import tasks

    queue_on_commit(tasks.send_registration_email, registration.pk)
