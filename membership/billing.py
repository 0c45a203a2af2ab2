"""Billing services: paying for a tier by card or by invoice, and keeping our rows in step with Stripe.

Money is integer pence (GBP). Every call to Stripe carries an idempotency key built from our own ids, so a
retry never makes a second customer, checkout, subscription or payment. Every status change of a
``Subscription`` or ``Invoice`` writes an audit entry (``billing.subscription.activated``, ...) with the
before and after status.

Webhooks are verified on the raw body, recorded once in the ``StripeEvent`` ledger (unique on the event id)
and acted on in the same transaction, as triggers: the handler re-reads the object from Stripe and syncs from
*that* state, so a duplicate or late event cannot move anything backwards. A handler that fails rolls the
ledger row back with everything else, and Stripe's redelivery starts afresh.

Changing a live membership from the portal (tier, payment method, cancelling) is in ``membership.billing_changes``.

Demo mode (``settings.DEMO_PAYMENTS``: no Stripe keys configured) calls no Stripe API at all. A clearly
labelled demo checkout stands in for Stripe Checkout and delivers signed events, signed with the demo webhook
secret, through ``receive_stripe_webhook``: the very same code path. There is no Stripe to re-read, so each
demo event carries the whole object, with the objects it refers to expanded, and in demo mode that copy is
the "current state" (see ``_current``). That is the whole of the demo's Stripe state; nothing else is kept.
"""

import calendar
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import stripe
from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format

from accounts.models import User
from config.celery import queue_on_commit
from config.db import insert_once
from membership import stripe_api
from membership.activity import record_activity
from membership.models import (
    ActivityKind,
    FollowUp,
    Invoice,
    Organisation,
    StripeEvent,
    Subscription,
    Tier,
    TierPrice,
)
from membership.services import MembershipError, diff, membership_of, record_audit

logger = logging.getLogger(__name__)

Status = Subscription.Status
Interval = Subscription.Interval
PaymentMethod = Subscription.PaymentMethod

UNAVAILABLE = "Payments are not available just now. Nothing has been charged; please try again in a few minutes."
# Stripe's own default: a signed delivery older than this is refused, so a captured one cannot be replayed later.
WEBHOOK_TOLERANCE_SECONDS = 300
INVOICE_DAYS_UNTIL_DUE = 30
DEMO_CHECKOUT_SALT = "membership.billing.demo_checkout"
DEMO_PRODUCT_PREFIX = "demo_prod_"  # the demo's stand-in for a tier's Stripe product: demo_prod_<tier id>

# Stripe's subscription statuses, as ours. Those missing (incomplete, paused) change nothing here.
_FROM_STRIPE = {
    "active": Status.ACTIVE,
    "trialing": Status.ACTIVE,
    "past_due": Status.PAST_DUE,
    "unpaid": Status.PAST_DUE,
    "canceled": Status.CANCELLED,
    "incomplete_expired": Status.CANCELLED,
}
# History: no event, late or replayed, brings an ended membership back; a lapsed one comes back only when Stripe's
# current state shows the period paid after all (see ``next_status``).
_FINAL_SUBSCRIPTION = {Status.CANCELLED, Status.LAPSED}
_FINAL_INVOICE = {Invoice.Status.PAID, Invoice.Status.VOID}
_SUBSCRIPTION_ACTIONS = {
    Status.PENDING: "billing.subscription.pending",
    Status.ACTIVE: "billing.subscription.activated",
    Status.PAST_DUE: "billing.subscription.past_due",
    Status.CANCELLED: "billing.subscription.cancelled",
}
_INVOICE_ACTIONS = {
    Invoice.Status.DRAFT: "billing.invoice.drafted",
    Invoice.Status.OPEN: "billing.invoice.issued",
    Invoice.Status.PAID: "billing.invoice.paid",
    Invoice.Status.VOID: "billing.invoice.voided",
    Invoice.Status.UNCOLLECTIBLE: "billing.invoice.uncollectible",
}
# Terms Stripe may change (the customer portal, the dashboard); each change is audited.
_TERMS = ["tier_id", "amount_pence", "interval", "payment_method", "cancel_at_period_end"]
_PAYMENT_METHODS = {"charge_automatically": PaymentMethod.CARD, "send_invoice": PaymentMethod.INVOICE}


class InvalidWebhook(Exception):
    """A delivery we cannot trust or read: no secret configured, a missing, forged or stale signature, or a
    body that is not a Stripe event. The webhook answers 400 and nothing is written."""


# Prices and places ---------------------------------------------------------------------------------------------


def price_for(tier: Tier, organisation: Organisation, interval: str = Interval.YEAR) -> int | None:
    """What ``tier`` costs ``organisation`` per ``interval``, in pence before VAT; None if no price applies
    (no row for its type and size, or monthly billing on a tier paid only annually)."""
    price = TierPrice.objects.filter(
        tier=tier, organisation_type=organisation.organisation_type, size_band=organisation.size_band
    ).first()
    return None if price is None else price_of(price, tier, interval)


def price_of(price: TierPrice, tier: Tier, interval: str) -> int | None:
    """One row of ``tier``'s price matrix, per ``interval``: None for monthly billing on a tier paid annually."""
    if interval == Interval.MONTH:
        return price.monthly_pence if tier.monthly_billing else None
    return price.annual_pence


def format_pence(pence: int) -> str:
    """``123456`` as ``£1,234.56``: integer arithmetic, never a float."""
    pounds, rest = divmod(pence, 100)
    return f"£{pounds:,}.{rest:02d}"


def with_vat(pence: int) -> int:
    """``pence`` before VAT with VAT at ``VAT_RATE_PERCENT`` added, rounded to the penny (half up), as Stripe's tax
    rate adds it (see ``_ensure_vat_rate``): what the member is charged and our e-mails quote."""
    return pence + (pence * settings.VAT_RATE_PERCENT + 50) // 100


def billed_online(subscription: Subscription) -> bool:
    """Whether Stripe charges or invoices the membership (the demo stands in for it). One recorded before online
    payment (imported from the spreadsheets it replaced) is paid as the membership team arranges it, until an admin
    moves it online from the billing page (``billing_changes.start_paying_online``)."""
    return settings.DEMO_PAYMENTS or bool(subscription.stripe_subscription_id)


def paid_offline(subscription: Subscription) -> bool:
    """A membership with its benefits that Stripe does not bill: recorded before online payment (imported), paid
    as the membership team arranges. Not one waiting for its first payment, nor one that has ended."""
    return subscription.status in Subscription.ENTITLED_STATUSES and not billed_online(subscription)


# Stripe Checkout refuses a trial that ends less than 48 hours ahead; a day more leaves time to finish it.
ONLINE_PAYMENT_LEAD_TIME = timedelta(days=3)


def may_pay_online(subscription: Subscription) -> bool:
    """Whether the billing page offers to move this membership onto Stripe: recorded before online payment
    (imported), active, renewing, and with its renewal far enough ahead for Stripe to take the first charge then."""
    return (
        subscription.status == Status.ACTIVE
        and paid_offline(subscription)
        and subscription.auto_renew
        and not subscription.cancel_at_period_end
        and subscription.current_period_end is not None
        and subscription.current_period_end - timezone.now() >= ONLINE_PAYMENT_LEAD_TIME
        and price_for(subscription.tier, subscription.organisation, subscription.interval) is not None
    )


def billing_page_path(organisation: Organisation) -> str:
    """The portal's billing page (``membership:billing``), spelt out: it is the contract with Stripe's
    success and cancel URLs, which must not change with the URLconf."""
    return f"/my/org/{organisation.slug}/billing/"


def billing_page_url(organisation: Organisation, query: str = "") -> str:
    return f"{settings.SITE_URL}{billing_page_path(organisation)}{query}"


# Starting a membership -----------------------------------------------------------------------------------------


def start_card_checkout(organisation: Organisation, tier: Tier, interval: str, actor: User) -> str:
    """Start paying for ``tier`` by card; returns the checkout URL to send the admin to.

    Guarantees: only an admin (or staff) may; the organisation ends with at most one live subscription (a
    card checkout it left unfinished is closed at Stripe and cancelled first, any other live subscription
    refuses); the new subscription is ``pending`` until Stripe says it is paid, and exists only if Stripe
    accepted the checkout: if Stripe is unreachable or refuses, ``MembershipError`` and nothing is written.
    The Stripe customer, once Stripe has made it, is kept (it is real; the next attempt reuses it).
    Demo mode returns the demo checkout's URL and calls no Stripe API.
    """
    _require_admin(organisation, actor)
    amount = _price_or_refuse(tier, organisation, interval)
    _abandon_unfinished_checkout(organisation, actor)
    _refuse_if_member(organisation)  # before Stripe makes anything for a request that will be refused
    _end_lapsed_at_stripe(organisation)
    demo = settings.DEMO_PAYMENTS
    customer_id = None if demo else _ensure_customer(organisation)
    product_id = None if demo else _ensure_product(tier)
    vat_rate_id = None if demo else _ensure_vat_rate()
    with transaction.atomic():
        organisation = _lock_for_new_subscription(organisation)
        subscription = _create_pending(organisation, tier, actor, interval, amount, PaymentMethod.CARD)
        if demo:
            subscription.stripe_checkout_session_id = f"demo_cs_{subscription.pk}"
            subscription.save(update_fields=["stripe_checkout_session_id"])
            return demo_checkout_url(subscription)
        session = _call(
            lambda client: client.v1.checkout.sessions.create(
                params=_checkout_params(subscription, customer_id, product_id, vat_rate_id),
                options=stripe_api.options(f"checkout-session-sub-{subscription.pk}"),
            )
        )
        subscription.stripe_checkout_session_id = session.id
        subscription.save(update_fields=["stripe_checkout_session_id"])
        return session.url


def start_invoice_subscription(organisation: Organisation, tier: Tier, actor: User, po_number: str) -> Subscription:
    """Start an annual membership paid by invoice (public bodies: bank transfer, 30 days, PO number on it).

    Guarantees: as ``start_card_checkout`` for who may and for one live subscription (a card checkout left
    unfinished is closed and cancelled first); Stripe raises the
    invoice (``collection_method=send_invoice``, due in 30 days, the PO number as a custom field on it and in
    the subscription's description and metadata) and our ``Invoice`` row mirrors it, open, with Stripe's
    hosted link. The subscription stays ``pending`` until the invoice is paid. Stripe failing writes nothing.
    Demo mode writes the same rows with ``demo_`` ids and a link to the billing page.
    """
    _require_admin(organisation, actor)
    po_number = po_number.strip()
    if organisation.needs_purchase_order and not po_number:
        raise MembershipError(f"{organisation}'s invoices must quote a purchase order number. Please add one.")
    amount = _price_or_refuse(tier, organisation, Interval.YEAR)
    _abandon_unfinished_checkout(organisation, actor)  # a card checkout left unfinished gives way to the invoice
    _refuse_if_member(organisation)  # before Stripe makes anything for a request that will be refused
    _end_lapsed_at_stripe(organisation)
    demo = settings.DEMO_PAYMENTS
    customer_id = None if demo else _ensure_customer(organisation)
    product_id = None if demo else _ensure_product(tier)
    vat_rate_id = None if demo else _ensure_vat_rate()
    with transaction.atomic():
        organisation = _lock_for_new_subscription(organisation)
        subscription = _create_pending(
            organisation, tier, actor, Interval.YEAR, amount, PaymentMethod.INVOICE, po_number=po_number
        )
        if demo:
            subscription.stripe_subscription_id = f"demo_sub_{subscription.pk}"
            subscription.save(update_fields=["stripe_subscription_id"])
            first_invoice = _demo_invoice(subscription, status=Invoice.Status.OPEN)
        else:
            first_invoice = _create_invoiced_subscription(subscription, customer_id, product_id, vat_rate_id)
        _sync_invoice(first_invoice, subscription)
        return subscription


def customer_portal_url(organisation: Organisation, return_url: str) -> str:
    """A Stripe customer portal session for the organisation (change the card, cancel), returning to
    ``return_url``. Demo mode has no portal: the billing page stands in."""
    if settings.DEMO_PAYMENTS:
        return billing_page_path(organisation)
    if not organisation.stripe_customer_id:
        raise MembershipError(f"{organisation} has no card payments set up yet.")
    # Portal sessions are short-lived: a double click within the minute gets the same one, a later visit a new one.
    key = f"portal-org-{organisation.pk}-{int(time.time()) // 60}"
    session = _call(
        lambda client: client.v1.billing_portal.sessions.create(
            params={"customer": organisation.stripe_customer_id, "return_url": return_url},
            options=stripe_api.options(key),
        )
    )
    return session.url


def _require_admin(organisation: Organisation, actor: User) -> None:
    if actor.is_staff:
        return  # the membership team acts for any organisation
    membership = membership_of(organisation, actor)
    if membership is None or not membership.is_admin:
        raise MembershipError("Only an admin of this organisation can do that.")


def _price_or_refuse(tier: Tier, organisation: Organisation, interval: str) -> int:
    amount = price_for(tier, organisation, interval)
    if amount is None:
        label = "monthly" if interval == Interval.MONTH else "annual"
        raise MembershipError(
            f"{tier} has no {label} price for {organisation.get_organisation_type_display().lower()} "
            f"organisations of {organisation.get_size_band_display()}. Please contact the membership team."
        )
    return amount


def _refuse_if_member(organisation: Organisation) -> None:
    live = Subscription.objects.live().filter(organisation=organisation).select_related("tier").first()
    if live is not None:
        raise MembershipError(
            f"{organisation} already has a {live.tier} membership ({live.get_status_display().lower()}). "
            "To change tier, use upgrade or switch on the billing page instead."
        )


def _end_lapsed_at_stripe(organisation: Organisation) -> None:
    """Before a new membership starts, end any lapsed one that is still alive at Stripe (it may still be retrying
    a card or holding an open invoice), so the organisation is never charged for both. Stripe stops collecting
    the old subscription's open invoices when it is cancelled."""
    if settings.DEMO_PAYMENTS:
        return
    lapsed = Subscription.objects.filter(organisation=organisation, status=Status.LAPSED)
    for subscription in lapsed.exclude(stripe_subscription_id=None).select_related("tier"):
        _end_at_stripe(subscription)


def _end_at_stripe(subscription: Subscription) -> None:
    stripe_id = subscription.stripe_subscription_id
    if _call(lambda client: client.v1.subscriptions.retrieve(stripe_id)).status in ("canceled", "incomplete_expired"):
        return
    key = f"end-lapsed-sub-{subscription.pk}"
    _call(lambda client: client.v1.subscriptions.cancel(stripe_id, options=stripe_api.options(key)))
    record_audit(
        "billing.subscription.ended_at_stripe",
        f"{subscription.organisation}'s lapsed {subscription.tier} membership was ended at Stripe before a new one "
        "began, so it cannot be charged",
        organisation=subscription.organisation,
    )


def _lock_for_new_subscription(organisation: Organisation) -> Organisation:
    """Lock the organisation, so two starts cannot both pass the check, and check again under the lock."""
    organisation = Organisation.objects.select_for_update().get(pk=organisation.pk)
    _refuse_if_member(organisation)
    return organisation


def _create_pending(
    organisation: Organisation, tier: Tier, actor: User, interval: str, amount: int, method: str, po_number: str = ""
) -> Subscription:
    subscription = Subscription.objects.create(
        organisation=organisation,
        tier=tier,
        status=Status.PENDING,
        interval=interval,
        payment_method=method,
        amount_pence=amount,
        po_number=po_number,
    )
    how = "by card" if method == PaymentMethod.CARD else f"by invoice{f' (PO {po_number})' if po_number else ''}"
    record_audit(
        _SUBSCRIPTION_ACTIONS[Status.PENDING],
        f"{actor} started a {tier} membership for {organisation}, {format_pence(amount)} a {interval}, {how}",
        actor=actor,
        organisation=organisation,
        changes={"status": [None, Status.PENDING], "tier": [None, tier.name], "amount_pence": [None, amount]},
    )
    return subscription


def _abandon_unfinished_checkout(organisation: Organisation, actor: User) -> None:
    """An admin who left a card checkout unfinished and starts again gets a fresh one. The old checkout is
    closed at Stripe first, so it can no longer be paid; then its pending subscription is cancelled."""
    with transaction.atomic():
        unfinished = (
            Subscription.objects.select_for_update()
            .filter(organisation=organisation, status=Status.PENDING, payment_method=PaymentMethod.CARD)
            .exclude(stripe_checkout_session_id=None)
            .first()
        )
        if unfinished is None:
            return
        if not settings.DEMO_PAYMENTS:
            _expire_checkout(unfinished)
        _change_status(
            unfinished, Status.CANCELLED, f"{actor} left the {unfinished.tier} checkout unfinished", actor=actor
        )


def _expire_checkout(subscription: Subscription, key: str | None = None) -> None:
    """Close the subscription's checkout at Stripe unless it is complete (then refused: it is being confirmed).
    ``key``: the call's idempotency key where the subscription has more than one checkout in its life (moving
    online: one per change number); a pending membership's one checkout takes the subscription's own."""
    session_id = subscription.stripe_checkout_session_id
    session = _call(lambda client: client.v1.checkout.sessions.retrieve(session_id))
    if session.status == "complete":
        raise MembershipError("Your card payment is being confirmed. Please check the billing page in a minute.")
    if session.status == "open":
        key = key or f"checkout-expire-sub-{subscription.pk}"
        _call(lambda client: client.v1.checkout.sessions.expire(session_id, options=stripe_api.options(key)))


# Stripe objects we make ----------------------------------------------------------------------------------------


class StripeUnavailable(MembershipError):
    """A Stripe call made for a member's request failed: Stripe unreachable, or answering with an error.

    ``answered``: Stripe answered with an error it keeps under the call's idempotency key for 24 hours, so the next
    attempt needs new keys. Not a 409, which says a request with the same key is still under way: Stripe keeps no
    answer for it, and the retry should send that key again and be answered with the first request's outcome."""

    def __init__(self, message: str, *, answered: bool):
        super().__init__(message)
        self.answered = answered


def _call(operation: Callable[[stripe.StripeClient], Any]) -> Any:
    """Run one Stripe call for a member's request. Stripe unreachable or refusing becomes a MembershipError
    (``StripeUnavailable``), which rolls back the caller's transaction; the detail goes to the log, not to the
    member."""
    try:
        return operation(stripe_api.client())
    except stripe.StripeError as error:
        logger.warning("Stripe call failed: %s", error)
        raise StripeUnavailable(UNAVAILABLE, answered=error.http_status not in (None, 409)) from error


def _creation_key(base: str, failures: int) -> str:
    """The idempotency key for making a Stripe object once: from our id, and new after each attempt Stripe answered
    with an error. Stripe keeps a key's answer for 24 hours, a 500 included, so a retry with the failed attempt's
    key would be refused all day; a retry after no answer at all keeps the key, so Stripe makes the object once."""
    return base if not failures else f"{base}-retry-{failures}"


def _made_earlier(resource: str, metadata_key: str, pk: int) -> str | None:
    """The id of a Stripe object an earlier attempt made for our row ``pk``, found by its metadata, if any.

    Asked before making one under a new key: Stripe's answer to a 500 does not say whether the object was made,
    and an attempt that was not answered at all may have made it. (Stripe's search sees a new object within about
    a minute.)"""
    query = f"metadata['{metadata_key}']:'{pk}'"
    found = _call(lambda client: getattr(client.v1, resource).search(params={"query": query, "limit": 1}))
    return found.data[0].id if found.data else None


def _made_once(row, *, resource: str, key_base: str, metadata_key: str, params: Callable[[Any], dict]) -> str:
    """The Stripe object (``resource``: customers, products) for our ``row``, made once from ``params(row)`` (the
    row as locked) and its id stored on the row (``stripe_<object>_id``). Committed on its own: once Stripe has
    made it, it is real whatever happens next.

    The key is from our id, so a retry after no answer returns the same object. When Stripe answered an attempt
    with an error, the attempt is counted (``stripe_<object>_failures``), and the next looks for what it may have
    made (``_made_earlier``) before making it under a new key (``_creation_key``)."""
    model, noun = type(row), resource.removesuffix("s")
    id_field, failures_field = f"stripe_{noun}_id", f"stripe_{noun}_failures"
    try:
        with transaction.atomic():
            row = model.objects.select_for_update().get(pk=row.pk)
            if made := getattr(row, id_field):
                return made
            failures = getattr(row, failures_field)
            made = _made_earlier(resource, metadata_key, row.pk) if failures else None
            if made is None:
                key = _creation_key(f"{key_base}-{row.pk}", failures)
                made = _call(
                    lambda client: getattr(client.v1, resource).create(
                        params=params(row), options=stripe_api.options(key)
                    )
                ).id
            model.objects.filter(pk=row.pk).update(**{id_field: made})
            return made
    except StripeUnavailable as error:
        if error.answered:
            model.objects.filter(pk=row.pk).update(**{failures_field: F(failures_field) + 1})
        raise


def _ensure_customer(organisation: Organisation) -> str:
    """The organisation's Stripe customer, made once (``_made_once``)."""

    def params(organisation: Organisation) -> dict:
        found = {"name": organisation.name, "metadata": {"organisation_id": str(organisation.pk)}}
        return {**found, "email": organisation.billing_email} if organisation.billing_email else found

    return _made_once(
        organisation, resource="customers", key_base="customer-org", metadata_key="organisation_id", params=params
    )


def _ensure_product(tier: Tier) -> str:
    """The tier's Stripe product, made once and named after it (``_made_once``): prices are made per checkout from
    our price matrix, and the product is how a subscription changed at Stripe is traced back to a tier."""

    def params(tier: Tier) -> dict:
        return {"name": tier.name, "metadata": {"tier_id": str(tier.pk)}}

    return _made_once(tier, resource="products", key_base="product-tier", metadata_key="tier_id", params=params)


VAT_RATE_PURPOSE = "membership_vat"


def _ensure_vat_rate() -> str:
    """The Stripe tax rate that adds VAT at ``VAT_RATE_PERCENT`` to our prices (which are before VAT): found among
    the account's active rates by its metadata, or made once (the key, from the rate, returns the same one to a
    retry; a new key after Stripe answered with an error, as ``_creation_key`` says). Every subscription item
    carries it, so Stripe charges what our e-mails quote (``with_vat``). A fixed rate rather than Stripe Tax:
    members are charged exactly the rate we promise, whatever their address."""
    percent = settings.VAT_RATE_PERCENT
    rates = _call(lambda client: client.v1.tax_rates.list(params={"active": True, "inclusive": False, "limit": 100}))
    for rate in rates.to_dict()["data"]:
        if (rate.get("metadata") or {}).get("purpose") == VAT_RATE_PURPOSE and rate.get("percentage") == percent:
            return rate["id"]
    params = {
        "display_name": "VAT",
        "description": f"UK VAT at {percent}%",
        "percentage": percent,
        "inclusive": False,
        "country": "GB",
        "jurisdiction": "GB",
        "tax_type": "vat",
        "metadata": {"purpose": VAT_RATE_PURPOSE},
    }
    # No row of ours holds the rate, so attempts Stripe answered with an error are counted in the cache (shared
    # by every process). Should the cache lose the count, a retry is answered with the failed attempt's error
    # until Stripe forgets its key (24 hours).
    failures_key = f"billing:vat-rate-failures:{percent}"
    key = _creation_key(f"tax-rate-vat-{percent}", cache.get(failures_key, 0))
    try:
        created = _call(lambda client: client.v1.tax_rates.create(params=params, options=stripe_api.options(key)))
    except StripeUnavailable as error:
        if error.answered:
            cache.set(failures_key, cache.get(failures_key, 0) + 1, None)
        raise
    return created.id


def _metadata(subscription: Subscription) -> dict[str, str]:
    return {"subscription_id": str(subscription.pk), "organisation_id": str(subscription.organisation_id)}


def _price_data(subscription: Subscription, product_id: str) -> dict:
    return {
        "currency": subscription.currency.lower(),
        "unit_amount": subscription.amount_pence,
        "recurring": {"interval": subscription.interval},
        "product": product_id,
        "tax_behavior": "exclusive",  # our prices are before VAT
    }


def po_number_fields(po_number: str) -> dict:
    """The Stripe customer's invoice settings that print ``po_number`` on its invoices. Custom fields are the
    customer's: Stripe prints them on every invoice it raises from then on, so without a PO number they are
    cleared (an empty string unsets them), or an earlier membership's purchase order would be quoted."""
    return {"invoice_settings": {"custom_fields": [{"name": "PO number", "value": po_number}] if po_number else ""}}


def _description(subscription: Subscription) -> str:
    text = f"{subscription.tier} membership for {subscription.organisation}"
    return f"{text}, PO {subscription.po_number}" if subscription.po_number else text


def _checkout_params(subscription: Subscription, customer_id: str, product_id: str, vat_rate_id: str) -> dict:
    organisation = subscription.organisation
    item = {"quantity": 1, "price_data": _price_data(subscription, product_id), "tax_rates": [vat_rate_id]}
    return {
        "mode": "subscription",
        "customer": customer_id,
        "client_reference_id": str(subscription.pk),
        # The tax rate goes onto the subscription's item, so the renewals are charged VAT too.
        "line_items": [item],
        "metadata": _metadata(subscription),
        # The Stripe subscription carries our ids too, so its own events (which may come before the
        # checkout's) find our row.
        "subscription_data": {"metadata": _metadata(subscription), "description": _description(subscription)},
        "success_url": billing_page_url(organisation, "?checkout=success"),
        "cancel_url": billing_page_url(organisation, "?checkout=cancelled"),
    }


def _create_invoiced_subscription(
    subscription: Subscription, customer_id: str, product_id: str, vat_rate_id: str
) -> dict:
    """Make the Stripe subscription that invoices yearly, and return its first invoice, finalised (open)."""
    _call(
        lambda client: client.v1.customers.update(
            customer_id,
            params=po_number_fields(subscription.po_number),
            options=stripe_api.options(f"customer-po-sub-{subscription.pk}"),
        )
    )
    created = _call(
        lambda client: client.v1.subscriptions.create(
            params={
                "customer": customer_id,
                "collection_method": "send_invoice",
                "days_until_due": INVOICE_DAYS_UNTIL_DUE,
                "items": [{"price_data": _price_data(subscription, product_id), "tax_rates": [vat_rate_id]}],
                "description": _description(subscription),
                "metadata": {**_metadata(subscription), "po_number": subscription.po_number},
                "expand": ["latest_invoice"],
            },
            options=stripe_api.options(f"invoice-subscription-sub-{subscription.pk}"),
        )
    ).to_dict()
    subscription.stripe_subscription_id = created["id"]
    subscription.save(update_fields=["stripe_subscription_id"])
    invoice = created["latest_invoice"]
    if invoice["status"] == Invoice.Status.DRAFT:
        invoice = _call(
            lambda client: client.v1.invoices.finalize_invoice(
                invoice["id"], options=stripe_api.options(f"invoice-sub-{subscription.pk}-first-finalise")
            )
        ).to_dict()
    return invoice


# Finance ---------------------------------------------------------------------------------------------------------


def mark_invoice_paid_out_of_band(invoice: Invoice, actor: User, reference: str) -> Invoice:
    """Finance records an invoice paid by bank transfer, quoting the payment's reference.

    Guarantees: staff only; the invoice becomes paid (``paid_out_of_band``) once, however often this runs;
    its subscription, if pending or unpaid, becomes active, unless a later invoice of it is still unpaid; both
    changes are audited. An invoice already paid through Stripe (by card) is refused with ``MembershipError``
    saying so: the transfer is a second payment, for finance to refund, and nothing is recorded. Outside demo
    mode Stripe is told first (``invoices.pay`` with ``paid_out_of_band``), so it stops chasing; if Stripe cannot
    be told, ``MembershipError`` and nothing is written.
    """
    if not actor.is_staff:
        raise MembershipError("Only the membership team's finance staff can mark an invoice paid.")
    reference = reference.strip()
    if not reference:
        raise MembershipError("Give the bank transfer's reference, so the payment can be traced.")
    with transaction.atomic():
        # Subscription first, then invoice: the order the webhook locks them in, so the two never deadlock.
        subscription = _locked(invoice.subscription_id) if invoice.subscription_id else None
        invoice = Invoice.objects.select_for_update().select_related("organisation").get(pk=invoice.pk)
        if invoice.status == Invoice.Status.PAID and invoice.paid_out_of_band:
            return invoice  # recorded already (a double submit): once is enough
        if invoice.status == Invoice.Status.PAID:
            # Paid at Stripe meanwhile (by card on its invoice page): this transfer would be a second payment.
            paid = f" on {date_format(timezone.localtime(invoice.paid_at), 'j F Y')}" if invoice.paid_at else ""
            raise MembershipError(
                f"Invoice {invoice} was already paid through Stripe{paid}, so the bank transfer {reference} was not "
                f"recorded against it. If {invoice.organisation} has paid twice, refund one of the payments."
            )
        if invoice.status != Invoice.Status.OPEN:
            raise MembershipError(f"Invoice {invoice} is {invoice.get_status_display().lower()}; it cannot be paid.")
        _tell_stripe_paid_out_of_band(invoice)
        _record_paid_out_of_band(invoice, actor, reference)
        if subscription is not None:
            if not _newer_invoice_open(invoice):
                _activate_after_payment(subscription, actor)
            if subscription.status == Status.LAPSED:
                _record_paid_after_lapse(invoice, subscription)
        return invoice


def _tell_stripe_paid_out_of_band(invoice: Invoice) -> None:
    if settings.DEMO_PAYMENTS or not invoice.stripe_invoice_id:
        return
    _call(
        lambda client: client.v1.invoices.pay(
            invoice.stripe_invoice_id,
            params={"paid_out_of_band": True},
            options=stripe_api.options(f"invoice-paid-out-of-band-{invoice.pk}"),
        )
    )


def _record_paid_out_of_band(invoice: Invoice, actor: User, reference: str) -> None:
    before = invoice.status
    invoice.status = Invoice.Status.PAID
    invoice.paid_at = timezone.now()
    invoice.paid_out_of_band = True
    invoice.amount_paid_pence = invoice.amount_due_pence
    invoice.save(update_fields=["status", "paid_at", "paid_out_of_band", "amount_paid_pence"])
    record_audit(
        "billing.invoice.paid_out_of_band",
        f"{actor} recorded invoice {invoice} paid by bank transfer, reference {reference}",
        actor=actor,
        organisation=invoice.organisation,
        changes={"status": [before, Invoice.Status.PAID], "reference": [None, reference]},
    )
    _record_invoice_paid(invoice)


def _newer_invoice_open(invoice: Invoice) -> bool:
    """Whether a later invoice of the same subscription (a renewal, after an older prorated one) is still unpaid:
    then paying this one settles an older debt, and the membership stays as unpaid as the later invoice leaves it
    (as Stripe judges a subscription by its latest invoice)."""
    newer = Q(created_at__gt=invoice.created_at) | Q(created_at=invoice.created_at, pk__gt=invoice.pk)
    others = Invoice.objects.filter(subscription=invoice.subscription_id, status=Invoice.Status.OPEN)
    return others.filter(newer).exists()


def _activate_after_payment(subscription: Subscription, actor: User | None) -> None:
    """Payment received outside Stripe: an unpaid subscription becomes active, with a first period if it has
    none yet (Stripe's own period replaces it when its invoice.paid arrives). A lapsed one is reinstated if the
    period it was paying for has not ended and the organisation has not started another membership since."""
    now = timezone.now()
    lapsed = subscription.status == Status.LAPSED
    if lapsed and not _may_reinstate(subscription, subscription.current_period_end or now + timedelta(days=1)):
        return
    if subscription.status not in (Status.PENDING, Status.PAST_DUE, Status.GRACE, Status.LAPSED):
        return
    fields = {"grace_ends_at": None, "ended_at": None}
    if subscription.current_period_start is None:
        fields.update(current_period_start=now, current_period_end=one_period_later(now, subscription.interval))
    why = f"{subscription.organisation} paid by bank transfer"
    action = _REINSTATED if lapsed else None
    _change_status(subscription, Status.ACTIVE, why, actor, action=action, **fields)


_REINSTATED = "billing.subscription.reinstated"


def _may_reinstate(subscription: Subscription, period_end: datetime) -> bool:
    """A late payment brings a lapsed membership back only for a period that has not ended, and only if the
    organisation has no other live membership (it may have joined afresh meanwhile: then finance refunds)."""
    another = Subscription.objects.live().filter(organisation=subscription.organisation_id).exclude(pk=subscription.pk)
    return period_end > timezone.now() and not another.exists()


def _record_paid_after_lapse(invoice: Invoice, subscription: Subscription) -> None:
    record_audit(
        "billing.invoice.paid_after_lapse",
        f"Invoice {invoice} was paid after {subscription.organisation}'s {subscription.tier} membership lapsed, "
        "and it could not be reinstated: refund or credit it",
        organisation=subscription.organisation,
        changes={"invoice": [None, str(invoice)]},
    )


def one_period_later(moment: datetime, interval: str) -> datetime:
    """The same day one month or one year on (the 31st falls back to the month's last day)."""
    months = 12 if interval == Interval.YEAR else 1
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


# Status changes --------------------------------------------------------------------------------------------------


def _locked(subscription_id: int) -> Subscription:
    return _lockable().get(pk=subscription_id)


def _lockable():
    # Only the subscription's own row: locking its tier too would make every webhook for that tier wait in line.
    return Subscription.objects.select_for_update(of=("self",)).select_related("organisation", "tier")


def _change_status(
    subscription: Subscription, status: str, why: str, actor: User | None = None, *, action: str | None = None, **fields
) -> None:
    """Save the new status (and ``fields``) and audit it, with the before and after of the status and of every other
    field the change set to a new value (a grace period's end, a period, the end date); the caller holds the row's
    lock."""
    before = subscription.status
    # The end date too: cancelling sets it when no field does.
    others = list(dict.fromkeys([*fields, "ended_at"]))
    others_before = {name: getattr(subscription, name) for name in others}
    subscription.status = status
    for name, value in fields.items():
        setattr(subscription, name, value)
    if status == Status.CANCELLED and subscription.ended_at is None:
        subscription.ended_at = timezone.now()
    if status == Status.ACTIVE and subscription.started_at is None:
        subscription.started_at = timezone.now()  # its first payment: from now on it is a member
    subscription.save()
    record_audit(
        action or _SUBSCRIPTION_ACTIONS[status],
        f"{subscription.organisation}'s {subscription.tier} membership is now "
        f"{subscription.get_status_display().lower()}: {why}",
        actor=actor,
        organisation=subscription.organisation,
        changes={"status": [before, status], **diff(others_before, subscription, others)},
    )


# Webhooks --------------------------------------------------------------------------------------------------------


def receive_stripe_webhook(payload: bytes, signature: str | None) -> StripeEvent | None:
    """Verify one delivery, record it in the ledger and act on it, all or nothing.

    Guarantees: an unsigned, forged or stale delivery, or one with no secret configured, raises
    ``InvalidWebhook`` and writes nothing. Each event id is acted on once: a repeat (however many, however
    concurrent: the ledger's unique event id makes the second insert wait for the first and then fail)
    returns None and changes nothing. A handler that raises rolls back the ledger row with its own changes,
    so Stripe's redelivery is processed afresh. Unknown types are recorded and ignored: their ledger row
    has no ``processed_at``.
    """
    event = _verified_event(payload, signature)
    record = StripeEvent(
        event_id=event["id"],
        type=event["type"],
        livemode=bool(event.get("livemode")),
        payload=event,
        # Processed with this transaction, or not at all: a failure below rolls the row back too.
        processed_at=timezone.now() if event["type"] in _HANDLERS else None,
    )
    with transaction.atomic():
        # One statement records the event or finds it recorded: a repeat delivery, however concurrent, waits for
        # the first one's transaction and then inserts nothing.
        if not insert_once(record, "event_id"):
            return None
        process_stripe_event(event)
        return record


def _verified_event(payload: bytes, signature: str | None) -> dict:
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise InvalidWebhook("no webhook secret is configured")
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, WEBHOOK_TOLERANCE_SECONDS)
        event = json.loads(payload)
    except stripe.SignatureVerificationError as error:
        raise InvalidWebhook("invalid signature") from error
    except ValueError as error:  # not UTF-8, or not JSON
        raise InvalidWebhook("unreadable body") from error
    if not (isinstance(event, dict) and event.get("id") and event.get("type")):
        raise InvalidWebhook("not a Stripe event")
    if not isinstance((event.get("data") or {}).get("object"), dict):
        raise InvalidWebhook("not a Stripe event")
    return event


def process_stripe_event(event: dict) -> bool:
    """Bring our rows in line with the current state of the object ``event`` is about; False for a type we
    do not handle.

    The event is only a trigger: its object may be stale (events come late, twice, out of order), so each
    handler finds our row from the object's ids, locks it, re-reads the object from Stripe and syncs from
    that. In demo mode there is no Stripe to re-read and the event's own, fully expanded object is used.
    """
    if _hand_to_registered_checkout(event):
        return True
    handler = _HANDLERS.get(event["type"])
    if handler is None:
        return False
    handler(event["data"]["object"])
    return True


# The path an invoice names its subscription by, since API version 2025-03-31.
_INVOICE_SUBSCRIPTION = "parent.subscription_details.subscription"
_RETRIEVE = {
    # With its latest invoice: "active" alone does not say paid (an invoiced subscription is active at once).
    "subscription": ("/v1/subscriptions/", ["latest_invoice"]),
    # With its subscription: one round trip where two would do the same (see _subscription_of).
    "invoice": ("/v1/invoices/", [_INVOICE_SUBSCRIPTION]),
    "session": ("/v1/checkout/sessions/", None),
}


def _retrieve(kind: str, object_id: str) -> dict:
    path, expand = _RETRIEVE[kind]
    return stripe_api.retrieve(path + quote(object_id, safe=""), expand=expand)


def _current(kind: str, reference: str | dict) -> dict:
    """The object's state now: re-read from Stripe. In demo mode, the demo event's own copy (see the module's
    docstring): demo events always carry objects whole, so an id alone is a bug there."""
    if settings.DEMO_PAYMENTS:
        if not isinstance(reference, dict):
            raise ValueError(f"the demo event did not carry the {kind} {reference}")
        return reference
    return _retrieve(kind, _id(reference))


def _id(reference: str | dict | None) -> str | None:
    return reference.get("id") if isinstance(reference, dict) else reference


def _our_subscription(stripe_subscription_id: str | None, metadata: dict | None) -> Subscription | None:
    """Our row for a Stripe subscription, locked: by its id, or, before the id is linked (Stripe's events come in
    any order), by the subscription id we put in its metadata."""
    if stripe_subscription_id:
        found = _locked_by_stripe_id(stripe_subscription_id)
        if found is not None:
            return found
    ours = (metadata or {}).get("subscription_id")
    if not (ours and str(ours).isdigit()):
        return None
    return _lockable().filter(pk=int(ours), stripe_subscription_id=None).first()


# Every delivery about a subscription or its invoices starts here, so this one lookup is SQL written out: the ORM
# takes longer to build it than PostgreSQL takes to run it. Only the subscription's own row is locked (as in
# _lockable); its tier's Stripe product comes with it, to tell whether Stripe's price is still for that tier.
_LOCK_BY_STRIPE_ID = """
    SELECT subscription.*, tier.stripe_product_id AS tier_product_id
    FROM {subscriptions} AS subscription INNER JOIN {tiers} AS tier ON tier.id = subscription.tier_id
    WHERE subscription.stripe_subscription_id = %s
"""


def _locked_by_stripe_id(stripe_subscription_id: str) -> Subscription | None:
    quote = connection.ops.quote_name
    sql = _LOCK_BY_STRIPE_ID.format(subscriptions=quote(Subscription._meta.db_table), tiers=quote(Tier._meta.db_table))
    if connection.features.has_select_for_update_of:  # SQLite has no row locks: it writes one at a time anyway
        sql += "FOR UPDATE OF subscription"
    return next(iter(Subscription.objects.raw(sql, [stripe_subscription_id])), None)


def _tier_product(subscription: Subscription) -> str | None:
    """The Stripe product of the subscription's tier: brought with the row by the webhook's lookup, else read."""
    if hasattr(subscription, "tier_product_id"):
        return subscription.tier_product_id
    return subscription.tier.stripe_product_id


def _on_checkout_completed(session: dict) -> None:
    if session.get("mode") == "setup":  # a card saved to pay an invoiced membership from now on
        from membership.billing_changes import on_card_setup_completed

        return on_card_setup_completed(session)
    subscription = Subscription.objects.filter(stripe_checkout_session_id=session["id"]).first()
    if subscription is None:
        logger.warning("Checkout %s is not one of ours", session["id"])
        return
    subscription = _locked(subscription.pk)
    session = _current("session", session)
    if session.get("status") != "complete" or not session.get("subscription"):
        return
    _remember_customer(subscription.organisation, session.get("customer"))
    _sync_subscription(subscription, _current("subscription", session["subscription"]))


def _on_checkout_expired(session: dict) -> None:
    subscription = Subscription.objects.filter(stripe_checkout_session_id=session["id"]).first()
    if subscription is None:
        return
    subscription = _locked(subscription.pk)
    if _current("session", session).get("status") != "expired":
        return
    if subscription.status == Status.PENDING:
        _change_status(subscription, Status.CANCELLED, "the checkout closed unpaid")
    elif subscription.stripe_subscription_id is None and subscription.stripe_checkout_session_id == session["id"]:
        # A checkout to move a membership online, left unfinished: nothing is open any more (see the import).
        subscription.stripe_checkout_session_id = None
        subscription.save(update_fields=["stripe_checkout_session_id"])
        record_audit(
            "billing.subscription.online_payment_abandoned",
            "The card checkout started to pay the membership online closed unfinished: it is still paid as the "
            "membership team arranges",
            organisation_id=subscription.organisation_id,
        )


def _remember_customer(organisation: Organisation, customer: str | dict | None) -> None:
    customer_id = _id(customer)
    if customer_id and not organisation.stripe_customer_id and not settings.DEMO_PAYMENTS:
        Organisation.objects.filter(pk=organisation.pk, stripe_customer_id=None).update(stripe_customer_id=customer_id)


def _invoice_subscription(invoice: dict) -> tuple[str | dict | None, dict]:
    """The subscription an invoice bills, and that subscription's metadata as the invoice copied it."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    # ``invoice.subscription``: API versions before 2025-03-31 kept it there.
    return details.get("subscription") or invoice.get("subscription"), details.get("metadata") or {}


def _on_invoice_paid(invoice: dict) -> None:
    _on_invoice(invoice, failed=False)


def _on_invoice_payment_failed(invoice: dict) -> None:
    _on_invoice(invoice, failed=True)


def _on_invoice_finalized(invoice: dict) -> None:
    # An invoice raised and awaiting payment (a renewal, a prorated upgrade): the portal lists it with its link.
    _on_invoice(invoice, failed=False)


def _on_invoice(invoice: dict, *, failed: bool) -> None:
    reference, metadata = _invoice_subscription(invoice)
    subscription = _our_subscription(_id(reference), metadata)
    if subscription is None:
        logger.info("Invoice %s is not for one of our subscriptions", invoice.get("id"))
        return
    invoice = _current("invoice", invoice)
    if subscription.status == Status.ACTIVE and _nothing_to_pay(invoice):
        # A membership moved online pays nothing until its renewal: no invoice to list.
        _sync_subscription(subscription, _current("subscription", reference))
        return
    lapsed = subscription.status == Status.LAPSED
    already_paid = lapsed and Invoice.objects.filter(stripe_invoice_id=invoice["id"], status="paid").exists()
    row = _sync_invoice(invoice, subscription)
    stripe_subscription = _subscription_of(invoice) or _current("subscription", reference)
    unpaid = failed and _failure_means_unpaid(invoice, stripe_subscription)
    _sync_subscription(subscription, stripe_subscription, unpaid=unpaid)
    if lapsed and row.status == Invoice.Status.PAID and not already_paid and subscription.status == Status.LAPSED:
        _record_paid_after_lapse(row, subscription)


def _nothing_to_pay(invoice: dict) -> bool:
    """The invoice Stripe raises, for nothing, when a subscription starts with a trial: how a membership paid
    offline moves online, its first charge at its renewal (``billing_changes.start_paying_online``)."""
    return invoice.get("billing_reason") == "subscription_create" and invoice.get("amount_due") == 0


def _failure_means_unpaid(invoice: dict, stripe_subscription: dict) -> bool:
    """A failure of the subscription's latest invoice, still unpaid now, means unpaid whatever the status says;
    but not for an invoice sent to be paid within its days (``send_invoice``) that is not yet due: a card tried
    on its page and declined leaves the member the rest of those days, as Stripe does (it keeps the subscription
    active until the due date)."""
    if invoice.get("status") != "open" or _id(stripe_subscription.get("latest_invoice")) != invoice["id"]:
        return False
    if invoice.get("collection_method") != "send_invoice":
        return True
    due = _when(invoice.get("due_date"))
    return due is not None and due <= timezone.now()


def _subscription_of(invoice: dict) -> dict | None:
    """The subscription as the re-read invoice carries it (expanded), when that copy can be used as it is: it must
    say whether its latest invoice is paid, which it does if that latest invoice is this one. Otherwise None, and
    the subscription is read on its own."""
    stripe_subscription = _invoice_subscription(invoice)[0]
    if not isinstance(stripe_subscription, dict):
        return None
    latest = stripe_subscription.get("latest_invoice")
    if isinstance(latest, dict):
        return stripe_subscription
    if latest == invoice["id"]:
        return {**stripe_subscription, "latest_invoice": {"id": invoice["id"], "status": invoice.get("status")}}
    return None


def _on_subscription_changed(data: dict) -> None:
    subscription = _our_subscription(data["id"], data.get("metadata"))
    if subscription is None:
        logger.info("Stripe subscription %s is not one of ours", data["id"])
        return
    _sync_subscription(subscription, _current("subscription", data))


_HANDLERS: dict[str, Callable[[dict], None]] = {
    "checkout.session.completed": _on_checkout_completed,
    "checkout.session.expired": _on_checkout_expired,
    "invoice.paid": _on_invoice_paid,
    "invoice.finalized": _on_invoice_finalized,
    "invoice.payment_failed": _on_invoice_payment_failed,
    "customer.subscription.updated": _on_subscription_changed,
    "customer.subscription.deleted": _on_subscription_changed,
}


# Checkouts other apps start ------------------------------------------------------------------------------------
# Other apps take one-off payments through Stripe Checkout too (an event place). ``membership`` imports none of
# them: each registers a handler for the ``purpose`` it puts in its sessions' metadata, from its AppConfig.ready.

_CHECKOUT_HANDLERS: dict[str, Callable[[str, dict], None]] = {}


def register_checkout_handler(purpose: str, handler: Callable[[str, dict], None]) -> None:
    """Send ``checkout.session.*`` events whose session metadata has ``purpose`` to ``handler(event_type, session)``.

    ``session`` is the session's current state (re-read from Stripe; in demo mode the event's own copy). The
    handler runs inside the webhook's transaction, once per event id: raising rolls everything back and Stripe
    delivers again.
    """
    _CHECKOUT_HANDLERS[purpose] = handler


def _hand_to_registered_checkout(event: dict) -> bool:
    session = event["data"]["object"]
    handler = _CHECKOUT_HANDLERS.get((session.get("metadata") or {}).get("purpose"))
    if handler is None or not event["type"].startswith("checkout.session."):
        return False
    handler(event["type"], _current("session", session))
    return True


def deliver_demo_checkout_event(event_id: str, event_type: str, session: dict) -> None:
    """For another app's demo checkout: sign ``event_type`` about ``session`` (a whole Checkout session, its
    metadata naming a registered purpose) and deliver it through the webhook path, as Stripe would."""
    _require_demo()
    _deliver_demo_event(event_id, event_type, session)


def _queue_payment_failed_notice(subscription: Subscription) -> None:
    # The renewals work owns this e-mail; without it (not deployed yet), the status change still stands.
    try:
        from membership.tasks import send_payment_failed_notice
    except ImportError:
        logger.warning("No payment-failed notice task: none queued for subscription %s", subscription.pk)
        return
    queue_on_commit(send_payment_failed_notice, subscription.pk)


# Syncing from Stripe's state -------------------------------------------------------------------------------------


def next_status(current: str, stripe_subscription: dict, *, unpaid: bool = False) -> str:
    """Our status for a subscription Stripe now describes as ``stripe_subscription``; ``unpaid`` when its
    latest invoice just failed.

    Ended memberships stay ended, except that a lapsed one is reinstated when Stripe shows its current period
    paid after all (a late payment; see the README) and that period has not ended. Becoming active needs the
    latest invoice paid (an invoiced subscription is "active" at Stripe from the start). A pending membership
    never becomes past due (it has no benefits to keep), and one in grace stays there: the renewals job moved it
    on and only a payment brings it back.
    """
    target = _FROM_STRIPE.get(stripe_subscription.get("status"))
    if target == Status.ACTIVE and unpaid:
        target = Status.PAST_DUE
    if current == Status.LAPSED and target == Status.ACTIVE and _latest_invoice_paid(stripe_subscription):
        end = _copied_period(stripe_subscription)[1]
        return Status.ACTIVE if end is not None and end > timezone.now() else current
    if current in _FINAL_SUBSCRIPTION or target is None:
        return current
    if target == Status.ACTIVE and current != Status.ACTIVE and not _latest_invoice_paid(stripe_subscription):
        return current
    if target == Status.PAST_DUE and current in (Status.PENDING, Status.GRACE):
        return current
    return target


def _latest_invoice_paid(stripe_subscription: dict) -> bool:
    latest = stripe_subscription.get("latest_invoice")
    return isinstance(latest, dict) and latest.get("status") == Invoice.Status.PAID


def _sync_subscription(subscription: Subscription, data: dict, *, unpaid: bool = False) -> None:
    """Copy Stripe's current state onto our locked row; audit a status change, and a change of terms."""
    target = next_status(subscription.status, data, unpaid=unpaid)
    lapsed = subscription.status == Status.LAPSED
    if subscription.status in _FINAL_SUBSCRIPTION and not (lapsed and target == Status.ACTIVE):
        return
    if lapsed and not _may_reinstate(subscription, _copied_period(data)[1]):
        return
    moved_online = (
        subscription.stripe_subscription_id is None
        and subscription.status == Status.ACTIVE
        and not settings.DEMO_PAYMENTS  # the demo's stand-in ids are no payments
    )
    row_before = _synced_fields(subscription)  # before linking: a link alone is a change to save
    subscription.stripe_subscription_id = subscription.stripe_subscription_id or data["id"]
    terms_before = {field: getattr(subscription, field) for field in _TERMS}
    ended_as_set = _ended_as_set(subscription, data, target)  # judged on the terms as they were
    ended_unpaid = not ended_as_set and _ended_unpaid(subscription, data, target)  # and on the status as it was
    period_end_before = subscription.current_period_end
    _copy_terms(subscription, data)
    _copy_period(subscription, data)
    if ended_as_set or ended_unpaid:
        from membership import renewals  # renewals uses this module

        subscription.save()  # the terms and period copied above
        ended_at = _when(data.get("ended_at")) or timezone.now()
        renewals.record_ended_at_stripe(subscription, ended_at, unpaid=ended_unpaid)
    elif target == subscription.status:
        if _synced_fields(subscription) != row_before:  # a repeat of what we know writes nothing
            subscription.save()
    else:
        fields = {**_status_fields(target, data), **({"ended_at": None} if lapsed else {})}
        why = "its payment arrived after it lapsed" if lapsed else f"Stripe says {data.get('status')}"
        _change_status(subscription, target, why, action=_REINSTATED if lapsed else None, **fields)
        if target == Status.PAST_DUE:
            # Whichever of Stripe's events says so first (the subscription's update or the invoice's failure; they
            # come in no fixed order), becoming past due means a payment failed: the member is asked to fix it.
            _queue_payment_failed_notice(subscription)
    if moved_online:
        _audit_moved_online(subscription)
    _audit_terms(subscription, terms_before)
    _audit_renewal(subscription, period_end_before)


def _audit_moved_online(subscription: Subscription) -> None:
    """Audit a membership's move online, and tell its account manager, with a follow-up due today: the team may be
    arranging this renewal's payment already, which Stripe will now take."""
    how = "its card is charged" if subscription.payment_method == PaymentMethod.CARD else "Stripe sends the invoice"
    renews = timezone.localdate(subscription.current_period_end) if subscription.current_period_end else None
    organisation = Organisation.objects.only("name", "account_manager_id").get(pk=subscription.organisation_id)
    if organisation.account_manager_id:
        FollowUp.objects.create(
            organisation=organisation,
            title=(
                f"{organisation.name} now pays online: Stripe takes the renewal"
                + (f" on {renews:%-d %b %Y}" if renews else "")
                + ". Arrange no payment for it yourselves."
            )[:200],
            due_date=timezone.localdate(),
            assignee_id=organisation.account_manager_id,
        )
    record_audit(
        "billing.subscription.moved_online",
        f"The membership, paid offline until now, is paid through Stripe: {how} at each renewal"
        + (f", the first on {renews:%-d %B %Y}" if renews else ""),
        organisation_id=subscription.organisation_id,
        changes={"stripe_subscription_id": [None, subscription.stripe_subscription_id]},
    )


def _audit_renewal(subscription: Subscription, period_end_before: datetime | None) -> None:
    """A new period (Stripe renewed the membership) is a change of what the organisation has paid for: audited,
    with the old and the new end. A first period, or one read again, is not a renewal."""
    period_end = subscription.current_period_end
    if period_end_before is None or period_end is None or period_end <= period_end_before:
        return
    before, after = timezone.localdate(period_end_before), timezone.localdate(period_end)
    record_audit(
        "billing.subscription.renewed",
        # Named without the organisation or the tier, which the webhook's row lock does not read.
        f"Membership renewed at Stripe: it now runs to {after:%-d %B %Y}",
        organisation_id=subscription.organisation_id,
        changes={"current_period_end": [before.isoformat(), after.isoformat()]},
    )


def _ended_as_set(subscription: Subscription, data: dict, target: str) -> bool:
    """Whether Stripe ended, at its period's end, an active membership set to end then. That is no cancellation
    but the end the renewals job records as a lapse (``renewals.lapse_expired``), with its e-mail."""
    if target != Status.CANCELLED or subscription.status != Status.ACTIVE:
        return False
    set_to_end = subscription.cancel_at_period_end or not subscription.auto_renew or data.get("cancel_at_period_end")
    ended, period_end = _when(data.get("ended_at")), _copied_period(data)[1] or subscription.current_period_end
    return bool(set_to_end) and ended is not None and period_end is not None and ended >= period_end


def _ended_unpaid(subscription: Subscription, data: dict, target: str) -> bool:
    """Whether Stripe ended a membership because it was not paid: its retries gave up (``payment_failed``), or it
    ended while past due or in grace. That is no cancellation but the lapse the renewals job records when a grace
    period runs out (``renewals.lapse_expired``), with its e-mail. Ended at the member's (or staff's) own request, it
    is a cancellation still."""
    if target != Status.CANCELLED:
        return False
    reason = (data.get("cancellation_details") or {}).get("reason")
    if reason == "cancellation_requested":
        return False
    unpaid = subscription.status in (Status.PAST_DUE, Status.GRACE)
    return unpaid or (subscription.status == Status.ACTIVE and reason == "payment_failed")


_SYNCED = [
    "stripe_subscription_id",
    *_TERMS,
    "scheduled_tier_id",
    "stripe_schedule_id",
    "current_period_start",
    "current_period_end",
]


def _synced_fields(subscription: Subscription) -> list:
    return [getattr(subscription, field) for field in _SYNCED]


def _status_fields(target: str, data: dict) -> dict:
    if target == Status.CANCELLED:
        return {"ended_at": _when(data.get("ended_at"))}  # None: _change_status uses now
    if target == Status.ACTIVE:
        return {"grace_ends_at": None}  # paid: any grace period is over
    return {}


def _first_item(data: dict) -> dict:
    items = (data.get("items") or {}).get("data") or []
    return items[0] if items else {}


def _tier_for_product(product: str | dict | None) -> Tier | None:
    product_id = _id(product)
    if not product_id:
        return None
    if settings.DEMO_PAYMENTS and product_id.startswith(DEMO_PRODUCT_PREFIX):  # the demo makes no products
        return Tier.objects.filter(pk=int(product_id.removeprefix(DEMO_PRODUCT_PREFIX))).first()
    return Tier.objects.filter(stripe_product_id=product_id).first()


def _copy_terms(subscription: Subscription, data: dict) -> None:
    price = _first_item(data).get("price") or {}
    product_id = _id(price.get("product"))
    if product_id and product_id != _tier_product(subscription):
        tier = _tier_for_product(product_id)
        if tier is not None and tier.pk != subscription.tier_id:
            subscription.tier = tier
            subscription.tier_product_id = tier.stripe_product_id
    if subscription.scheduled_tier_id is not None and subscription.scheduled_tier_id == subscription.tier_id:
        subscription.scheduled_tier = None  # the scheduled change has taken effect
    if "schedule" in data and not data["schedule"] and subscription.stripe_schedule_id:
        # Released (by us, by Stripe at its end, or in Stripe's dashboard): nothing more is scheduled.
        subscription.stripe_schedule_id, subscription.scheduled_tier = None, None
    if data.get("collection_method") in _PAYMENT_METHODS:
        subscription.payment_method = _PAYMENT_METHODS[data["collection_method"]]
    if price.get("unit_amount") is not None:
        subscription.amount_pence = price["unit_amount"]  # Stripe's minor units are our pence
    interval = (price.get("recurring") or {}).get("interval")
    if interval in Interval.values:
        subscription.interval = interval
    subscription.cancel_at_period_end = bool(data.get("cancel_at_period_end"))


def _copied_period(data: dict) -> tuple[datetime | None, datetime | None]:
    # Stripe keeps the period on the item since API version 2025-03-31; on the subscription before that.
    item = _first_item(data)
    start = item.get("current_period_start") or data.get("current_period_start")
    end = item.get("current_period_end") or data.get("current_period_end")
    return (_when(start), _when(end)) if start and end else (None, None)


def _copy_period(subscription: Subscription, data: dict) -> None:
    start, end = _copied_period(data)
    if data.get("status") == "trialing" and subscription.current_period_start and start:
        # A membership paid offline and moved online: Stripe's trial runs from the move to the renewal, inside the
        # period the organisation already paid for, which still began when it began.
        start = min(start, subscription.current_period_start)
    if start and end:
        subscription.current_period_start, subscription.current_period_end = start, end


def _audit_terms(subscription: Subscription, before: dict) -> None:
    changes = {
        field.removesuffix("_id"): [before[field], getattr(subscription, field)]
        for field in _TERMS
        if before[field] != getattr(subscription, field)
    }
    if "tier" in changes:
        changes["tier"] = [Tier.objects.get(pk=changes["tier"][0]).name, subscription.tier.name]
    if changes:
        record_audit(
            "billing.subscription.updated",
            f"{subscription.organisation}'s membership changed at Stripe: {', '.join(sorted(changes))}",
            organisation=subscription.organisation,
            changes=changes,
        )


def _when(timestamp: int | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, tz=UTC) if timestamp else None


def _sync_invoice(data: dict, subscription: Subscription) -> Invoice:
    """Mirror one Stripe invoice in our row, made on first sight; audited when its status changes. Paid and
    void are final: a stale copy never reopens them. The caller holds the subscription's lock."""
    invoice = _locked_invoice(data["id"]) or Invoice(
        stripe_invoice_id=data["id"],
        organisation_id=subscription.organisation_id,
        subscription=subscription,
        po_number=subscription.po_number,
        status="",
    )
    before = invoice.status or None
    status = before if before in _FINAL_INVOICE else data.get("status") or Invoice.Status.OPEN
    fields_before = _invoice_fields(invoice)
    _copy_invoice_fields(invoice, data)
    invoice.status = status
    if status == Invoice.Status.PAID and invoice.paid_at is None:
        invoice.paid_at = _when((data.get("status_transitions") or {}).get("paid_at")) or timezone.now()
    if invoice.pk is None or _invoice_fields(invoice) != fields_before:
        invoice.save()
    if status != before:
        record_audit(
            _INVOICE_ACTIONS[status],
            f"Invoice {invoice} for {format_pence(invoice.amount_due_pence)} is {invoice.get_status_display().lower()}",
            organisation_id=invoice.organisation_id,
            changes={"status": [before, status]},
        )
    if status == Invoice.Status.PAID and before != Invoice.Status.PAID:
        _record_invoice_paid(invoice)
    return invoice


def _locked_invoice(stripe_invoice_id: str) -> Invoice | None:
    # Written out for the same reason as _LOCK_BY_STRIPE_ID: each of an invoice's events looks it up.
    table = connection.ops.quote_name(Invoice._meta.db_table)  # the model's own name; the id is a parameter
    sql = f"SELECT * FROM {table} WHERE stripe_invoice_id = %s"  # noqa: S608
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return next(iter(Invoice.objects.raw(sql, [stripe_invoice_id])), None)


def _record_invoice_paid(invoice: Invoice) -> None:
    record_activity(
        invoice.organisation_id,
        ActivityKind.INVOICE_PAID,
        key=str(invoice.pk),
        detail=f"Invoice {invoice} for {format_pence(invoice.amount_due_pence)}",
        occurred_at=invoice.paid_at,
    )


def _invoice_fields(invoice: Invoice) -> list:
    return [getattr(invoice, field.attname) for field in Invoice._meta.concrete_fields]


def _copy_invoice_fields(invoice: Invoice, data: dict) -> None:
    invoice.number = data.get("number") or invoice.number
    invoice.amount_due_pence = data.get("amount_due") or 0
    invoice.amount_paid_pence = max(data.get("amount_paid") or 0, invoice.amount_paid_pence)
    invoice.currency = (data.get("currency") or "gbp").upper()
    invoice.hosted_invoice_url = data.get("hosted_invoice_url") or invoice.hosted_invoice_url
    invoice.invoice_pdf = data.get("invoice_pdf") or invoice.invoice_pdf
    invoice.due_date = _when(data.get("due_date")) or invoice.due_date


# The demo checkout: Stripe's part, played locally ----------------------------------------------------------------


def demo_checkout_url(subscription: Subscription) -> str:
    """The demo checkout's address: signed, naming the subscription and its organisation."""
    token = signing.dumps({"s": subscription.pk, "o": subscription.organisation_id}, salt=DEMO_CHECKOUT_SALT)
    return reverse("billing:demo_checkout", args=[token])


def find_demo_checkout(token: str, user: User) -> Subscription | None:
    """The card subscription a demo checkout link names, if demo mode is on, the signature holds and ``user``
    is an admin of its organisation; otherwise None (the page answers 404)."""
    if not settings.DEMO_PAYMENTS:
        return None
    try:
        data = signing.loads(token, salt=DEMO_CHECKOUT_SALT)
        subscription_id, organisation_id = int(data["s"]), int(data["o"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    return (
        Subscription.objects.select_related("organisation", "tier")
        .filter(
            pk=subscription_id,
            organisation_id=organisation_id,
            organisation__in=Organisation.objects.administered_by(user),
            payment_method=PaymentMethod.CARD,
        )
        .first()
    )


def pay_demo_checkout(subscription: Subscription) -> None:
    """Play Stripe after a card payment: sign ``checkout.session.completed``, then ``invoice.paid``, with the
    webhook secret and hand them to ``receive_stripe_webhook``, the path real payments take. No card is
    charged. The event ids come from the subscription, so paying twice changes nothing."""
    _require_demo()
    start = timezone.now()
    paid = _demo_invoice(subscription, status=Invoice.Status.PAID, start=start)
    session = {
        "id": subscription.stripe_checkout_session_id,
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "payment_status": "paid",
        "client_reference_id": str(subscription.pk),
        "metadata": _metadata(subscription),
        "customer": None,
        "subscription": _demo_subscription(subscription, start, latest_invoice=paid),
    }
    _deliver_demo_event(f"evt_demo_checkout_{subscription.pk}", "checkout.session.completed", session)
    _deliver_demo_event(f"evt_demo_invoice_paid_{subscription.pk}", "invoice.paid", paid)


def cancel_demo_checkout(subscription: Subscription) -> None:
    """Play Stripe when a checkout is left: the session expires, and its pending subscription is cancelled."""
    _require_demo()
    session = {"id": subscription.stripe_checkout_session_id, "object": "checkout.session", "status": "expired"}
    _deliver_demo_event(f"evt_demo_checkout_expired_{subscription.pk}", "checkout.session.expired", session)


def _require_demo() -> None:
    if not settings.DEMO_PAYMENTS:
        raise MembershipError("The demo checkout is only available when payments are in demo mode.")


def _deliver_demo_event(event_id: str, event_type: str, obj: dict) -> None:
    now = int(time.time())
    event = {"id": event_id, "object": "event", "type": event_type, "created": now, "livemode": False}
    payload = json.dumps({**event, "data": {"object": obj}})
    header = stripe.WebhookSignature.generate_signature_header(payload, settings.STRIPE_WEBHOOK_SECRET, now)
    receive_stripe_webhook(payload.encode(), header)


def _demo_subscription(subscription: Subscription, start: datetime, *, latest_invoice: dict) -> dict:
    """A Stripe-shaped subscription for the demo: active, with its first period and its latest invoice."""
    invoiced = subscription.payment_method == PaymentMethod.INVOICE
    return {
        "id": subscription.stripe_subscription_id or f"demo_sub_{subscription.pk}",
        "object": "subscription",
        "status": "active",
        "collection_method": "send_invoice" if invoiced else "charge_automatically",
        "cancel_at_period_end": False,
        "metadata": _metadata(subscription),
        "latest_invoice": {"id": latest_invoice["id"], "object": "invoice", "status": latest_invoice["status"]},
        "items": {
            "object": "list",
            "data": [
                {
                    "current_period_start": int(start.timestamp()),
                    "current_period_end": int(one_period_later(start, subscription.interval).timestamp()),
                    "price": {
                        "unit_amount": subscription.amount_pence,
                        "currency": subscription.currency.lower(),
                        "recurring": {"interval": subscription.interval},
                        "product": demo_product_id(subscription.tier),
                    },
                }
            ],
        },
    }


def demo_product_id(tier: Tier) -> str:
    return f"{DEMO_PRODUCT_PREFIX}{tier.pk}"


def _demo_invoice(subscription: Subscription, *, status: str, start: datetime | None = None) -> dict:
    """A Stripe-shaped invoice for the demo; its hosted page is the organisation's billing page."""
    start = start or timezone.now()
    paid = status == Invoice.Status.PAID
    total = with_vat(subscription.amount_pence)  # as Stripe's tax rate adds it
    invoice = {
        "id": f"demo_in_{subscription.pk}",
        "object": "invoice",
        "status": status,
        "number": f"DEMO-{subscription.pk:05d}",
        "amount_due": total,
        "amount_paid": total if paid else 0,
        "currency": subscription.currency.lower(),
        "hosted_invoice_url": billing_page_url(subscription.organisation),
        "due_date": None if paid else int((start + timedelta(days=INVOICE_DAYS_UNTIL_DUE)).timestamp()),
        "status_transitions": {"paid_at": int(start.timestamp()) if paid else None},
    }
    stripe_subscription = subscription.stripe_subscription_id or f"demo_sub_{subscription.pk}"
    if paid:  # carried whole: in demo mode the event's copy is the current state
        stripe_subscription = _demo_subscription(subscription, start, latest_invoice=invoice)
    details = {"subscription": stripe_subscription, "metadata": _metadata(subscription)}
    invoice["parent"] = {"type": "subscription_details", "subscription_details": details}
    return invoice
