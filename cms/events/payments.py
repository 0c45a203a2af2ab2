"""Paying for a place: Stripe Checkout in payment mode, or the demo checkout when Stripe is not configured.

A paid place is held (``pending_payment``) and confirmed only when the signed webhook says its Checkout session
is paid. Stripe calls the platform's one webhook, ``/billing/stripe/webhook/``; ``membership.billing`` hands
every ``checkout.session.*`` event whose metadata says ``purpose: event_registration`` to ``on_checkout_event``
(registered in ``CmsConfig.ready``), with the session as Stripe has it now. The demo checkout signs the same
event and sends it down the same path.

Each session expires a few minutes before its hold, so a payment made at the last moment is reported before the
place is released; a payment that still comes too late is handled by ``services.record_payment``.
"""

import logging
from datetime import timedelta

import stripe
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from cms.events import services
from cms.events.models import EventRegistration
from cms.events.services import EventError
from membership import billing, stripe_api
from membership.billing import format_pence
from membership.services import record_audit

logger = logging.getLogger(__name__)

PURPOSE = "event_registration"
DEMO_CHECKOUT_SALT = "cms.events.demo_checkout"
UNAVAILABLE = "Payments are not available just now. Nothing has been charged; please try again in a few minutes."
# Stripe lets a Checkout session live between 30 minutes and 24 hours.
SESSION_SHORTEST = timedelta(minutes=30, seconds=30)
SESSION_LONGEST = timedelta(hours=23, minutes=55)
# Time for a payment made as its session closes to be reported before the place is released.
SETTLE = timedelta(minutes=5)
Status = EventRegistration.Status


def register() -> None:
    """Have the billing webhook hand event-place checkouts to us. Called from ``CmsConfig.ready``."""
    billing.register_checkout_handler(PURPOSE, on_checkout_event)


# Starting and closing a checkout ---------------------------------------------------------------------------------


def start_checkout(registration: EventRegistration, user: User) -> str:
    """The address to pay for a held place at: Stripe Checkout, or the demo checkout in demo mode.

    Only the registration's owner may, while its hold lasts. An unfinished session is reused; a new one expires
    ``SETTLE`` before the hold (extending the hold if Stripe's shortest session needs it). Stripe failing
    raises ``EventError`` and changes nothing."""
    with transaction.atomic():
        registration = _locked(registration.pk)
        if registration.user_id != user.pk:
            raise EventError("You can only pay for your own place.")
        if registration.status != Status.PENDING_PAYMENT:
            raise EventError("This place is not awaiting payment.")
        now = timezone.now()
        if registration.hold_expires_at is None or registration.hold_expires_at <= now:
            raise EventError("The time to pay for this place has run out, so it has been released.")
        if registration.event.starts_at <= now:
            raise EventError("This event has started, so its places can no longer be paid for.")
        if settings.DEMO_PAYMENTS:
            registration.stripe_checkout_session_id = f"demo_cs_event_{registration.pk}"
            registration.save(update_fields=["stripe_checkout_session_id"])
            return demo_checkout_url(registration)
        unfinished = _unfinished_session(registration)
        if unfinished is not None:
            return unfinished["url"]
        expires_at = min(max(registration.hold_expires_at - SETTLE, now + SESSION_SHORTEST), now + SESSION_LONGEST)
        session = _call(
            lambda client: client.v1.checkout.sessions.create(
                params=_session_params(registration, expires_at),
                options=stripe_api.options(
                    f"event-checkout-registration-{registration.pk}-{int(expires_at.timestamp())}"
                ),
            )
        )
        registration.stripe_checkout_session_id = session.id
        registration.hold_expires_at = max(registration.hold_expires_at, expires_at + SETTLE)
        registration.save(update_fields=["stripe_checkout_session_id", "hold_expires_at"])
        record_audit(
            "events.payment.started",
            f"{registration.name} went to pay {format_pence(registration.price_pence)} for {registration.event.title}",
            actor=user,
            organisation=registration.organisation,
            subject=registration.user,
            changes={"checkout": [None, session.id]},
        )
        return session.url


def close_checkout(registration: EventRegistration) -> None:
    """Close a held place's open Checkout session, so it can no longer be paid (the caller is cancelling the
    place and holds its lock). A session already paid refuses: the payment is about to be confirmed."""
    session_id = registration.stripe_checkout_session_id
    if settings.DEMO_PAYMENTS or not session_id:
        return
    session = _call(lambda client: client.v1.checkout.sessions.retrieve(session_id))
    if session.status == "complete":
        raise EventError("Your payment has just gone through and is being confirmed. Please try again in a minute.")
    if session.status == "open":
        _call(
            lambda client: client.v1.checkout.sessions.expire(
                session_id, options=stripe_api.options(f"event-checkout-expire-{session_id}")
            )
        )


def _unfinished_session(registration: EventRegistration) -> dict | None:
    session_id = registration.stripe_checkout_session_id
    if not session_id or session_id.startswith("demo_"):
        return None
    session = _call(lambda client: client.v1.checkout.sessions.retrieve(session_id)).to_dict()
    if session.get("status") == "complete":
        raise EventError("Your payment has gone through and is being confirmed. Please check back in a minute.")
    return session if session.get("status") == "open" and session.get("url") else None


def _session_params(registration: EventRegistration, expires_at) -> dict:
    event = registration.event
    metadata = _metadata(registration)
    link = settings.SITE_URL + reverse("events:registration", args=[registration.pk])
    return {
        "mode": "payment",
        "client_reference_id": str(registration.pk),
        "customer_email": registration.email,
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": registration.currency.lower(),
                    "unit_amount": registration.price_pence,
                    "product_data": {"name": f"{event.title}: one place"},
                },
            }
        ],
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata, "description": f"{event.title}: {registration.name}"},
        "expires_at": int(expires_at.timestamp()),
        "success_url": f"{link}?checkout=success",
        "cancel_url": f"{link}?checkout=cancelled",
    }


def _metadata(registration: EventRegistration) -> dict[str, str]:
    return {"purpose": PURPOSE, "registration_id": str(registration.pk), "event_id": str(registration.event_id)}


def _call(operation):
    """One Stripe call for a person's request; Stripe unreachable or refusing becomes an ``EventError``, which
    rolls back the caller's transaction. The detail goes to the log."""
    try:
        return operation(stripe_api.client())
    except stripe.StripeError as error:
        logger.warning("Stripe call failed: %s", error)
        raise EventError(UNAVAILABLE) from error


def _locked(registration_id: int) -> EventRegistration:
    return (
        EventRegistration.objects.select_for_update(of=("self",))
        .select_related("event", "organisation", "user")
        .get(pk=registration_id)
    )


# The webhook's side ---------------------------------------------------------------------------------------------


def on_checkout_event(event_type: str, session: dict) -> None:
    """Act on a Checkout session for an event place, as Stripe has it now: paid confirms the place (see
    ``services.record_payment``); expired releases a place still held for it."""
    registration_id = str((session.get("metadata") or {}).get("registration_id") or "")
    registration = (
        EventRegistration.objects.filter(pk=int(registration_id)).first() if registration_id.isdigit() else None
    )
    if registration is None:
        logger.warning("Checkout %s names no event registration of ours", session.get("id"))
        return
    if session.get("status") == "complete" and session.get("payment_status") == "paid":
        payment = session.get("payment_intent")
        services.record_payment(
            registration,
            amount_pence=int(session.get("amount_total") or 0),
            payment_id=(payment.get("id") if isinstance(payment, dict) else payment) or session["id"],
            session_id=session["id"],
        )
    elif event_type == "checkout.session.expired" and session.get("status") == "expired":
        services.release_hold(registration, session["id"])


# The demo checkout -----------------------------------------------------------------------------------------------


def demo_checkout_url(registration: EventRegistration) -> str:
    token = signing.dumps({"r": registration.pk, "u": registration.user_id}, salt=DEMO_CHECKOUT_SALT)
    return reverse("events:demo_checkout", args=[token])


def find_demo_checkout(token: str, user: User) -> EventRegistration | None:
    """The registration a demo checkout link names, if demo mode is on, the signature holds and it is ``user``'s."""
    if not settings.DEMO_PAYMENTS:
        return None
    try:
        data = signing.loads(token, salt=DEMO_CHECKOUT_SALT)
        registration_id, user_id = int(data["r"]), int(data["u"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    if user_id != user.pk:
        return None
    return EventRegistration.objects.select_related("event").filter(pk=registration_id, user=user).first()


def pay_demo_checkout(registration: EventRegistration) -> None:
    """Play Stripe after a payment: sign ``checkout.session.completed`` and deliver it through the webhook path.
    No card is charged. The event id comes from the registration, so paying twice changes nothing."""
    session = {
        "id": registration.stripe_checkout_session_id or f"demo_cs_event_{registration.pk}",
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": registration.price_pence,
        "currency": registration.currency.lower(),
        "payment_intent": f"demo_pi_event_{registration.pk}",
        "client_reference_id": str(registration.pk),
        "metadata": _metadata(registration),
    }
    billing.deliver_demo_checkout_event(
        f"evt_demo_event_checkout_{registration.pk}", "checkout.session.completed", session
    )
