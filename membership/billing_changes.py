"""Changing a live membership from the portal: tier, payment method, cancelling at the period's end and taking
that back; and, after a lapse, making sure Stripe never renews it.

The rules (also in the README, "Membership and payments"):

- **Card payers change tier at once.** Stripe changes the subscription item's price and prorates. An upgrade's
  difference for the rest of the period is invoiced and charged at once (``proration_behavior=always_invoice``);
  if that charge fails, the usual failed-payment path follows (past due, an e-mail to fix the card, grace).
  A downgrade's unused difference is credited against the next renewal (``create_prorations``).
- **Invoice payers upgrade at once** and Stripe sends a prorated invoice for the rest of the period, payable in
  30 days like every invoice. **They downgrade at renewal**: a subscription schedule whose next phase has the lower
  price. They have paid the year (often from a budget line), and we refund no part of it. Until the renewal the
  downgrade can be taken back.
- **Card to invoice**: the subscription's collection method becomes ``send_invoice`` (due in 30 days, the PO number
  on the invoice); from the next renewal an invoice is sent instead of charging the card. Annual memberships only.
- **Invoice to card**: a card is collected with Stripe Checkout in ``setup`` mode. Stripe's customer portal can change
  a saved card but cannot move a subscription off invoicing. When Stripe confirms the checkout, the webhook makes the
  card the subscription's default and its collection method ``charge_automatically``.
- **Cancel**: ``cancel_at_period_end`` at Stripe, for card and invoice payers alike. Benefits last until the period
  ends, then the membership ends; until then it can be taken back.

Each change: only an admin (or staff) may; the subscription's row is locked; every Stripe call's idempotency key is
built from the subscription's id and its change number (``Subscription.changes_requested``), so the library's own
retries of a call are recognised and a later change is never mistaken for it; a change whose Stripe call failed
keeps its number, and trying it again takes the next (Stripe keeps a key's answer, an error included, for 24 hours),
while the checks that read the subscription from Stripe first refuse a change Stripe already has; an audit entry
names who asked. The tier, price, payment
method and cancellation on our row are *not* written here: Stripe sends ``customer.subscription.updated`` and the
webhook re-reads the subscription and records it, as for any change made at Stripe. Demo mode plays Stripe's part:
it delivers that signed event, with the subscription as it now is, through the same webhook code.
"""

import functools
import hashlib
import json
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from membership import stripe_api
from membership.billing import (
    INVOICE_DAYS_UNTIL_DUE,
    StripeUnavailable,
    _call,
    _change_status,
    _deliver_demo_event,
    _ensure_customer,
    _ensure_product,
    _ensure_vat_rate,
    _expire_checkout,
    _first_item,
    _id,
    _locked,
    _metadata,
    _price_or_refuse,
    _require_admin,
    _sync_subscription,
    _tier_for_product,
    billed_online,
    billing_page_url,
    demo_product_id,
    format_pence,
    may_pay_online,
    one_period_later,
    po_number_fields,
    with_vat,
)
from membership.models import Invoice, Organisation, Subscription, Tier
from membership.renewals import long_date
from membership.services import MembershipError, record_audit

logger = logging.getLogger(__name__)

Status = Subscription.Status
PaymentMethod = Subscription.PaymentMethod
DEMO_CARD_SALT = "membership.billing.demo_card"
_CHANGEABLE = [Status.ACTIVE]
_MICROSECOND = timedelta(microseconds=1)
_CANCELLABLE = [Status.ACTIVE, Status.PAST_DUE, Status.GRACE]


def _new_keys_after_stripe_fails(change):
    """Keep the change number an attempt took when Stripe answered one of its calls with an error, so that trying
    again sends new keys.

    Stripe keeps its answer to an idempotency key for 24 hours, an error included (a 500 once the endpoint has
    begun): a retry sending the failed attempt's keys would be answered with that error, all day. The attempt's
    transaction rolls back with its number, so the number is taken again here, after the rollback, and the retry
    takes the next. A retry of an attempt whose answer was lost but which Stripe carried out is refused by the
    checks that read the subscription from Stripe first ("... is already with Stripe"). When Stripe could not be
    reached, it kept nothing, and nothing here changes.
    """

    @functools.wraps(change)
    def wrapper(organisation: Organisation, *args, **kwargs):
        try:
            return change(organisation, *args, **kwargs)
        except StripeUnavailable as error:
            if error.answered:
                live = Subscription.objects.filter(organisation=organisation, status__in=Subscription.LIVE_STATUSES)
                live.update(changes_requested=F("changes_requested") + 1)
            raise

    return wrapper


# Tier ----------------------------------------------------------------------------------------------------------


@_new_keys_after_stripe_fails
def change_tier(organisation: Organisation, tier: Tier, actor: User) -> str:
    """Move the organisation's active membership to ``tier``; returns what to tell the admin.

    Card payers, and invoice payers upgrading: at once, prorated by Stripe. Invoice payers downgrading: at the
    next renewal (see the module's docstring). Refused, with nothing changed here or at Stripe: a tier with no
    price for the organisation, a downgrade to fewer seats than its people and open invitations take, a membership
    that is not active or is set to end, and a second change while a downgrade is waiting for the renewal.
    """
    _require_admin(organisation, actor)
    _check_tier_change(_live(organisation, _CHANGEABLE), tier)  # before Stripe makes a product for nothing
    product_id = None if settings.DEMO_PAYMENTS else _ensure_product(tier)
    vat_rate_id = None if settings.DEMO_PAYMENTS else _ensure_vat_rate()
    with transaction.atomic():
        subscription = _locked(_live(organisation, _CHANGEABLE).pk)
        amount, upgrade = _check_tier_change(subscription, tier)  # again, under the lock
        _refuse_during_trial(subscription)
        number = _next_change(subscription)
        released = _release_attached_schedule(subscription, number)
        if subscription.payment_method == PaymentMethod.INVOICE and not upgrade:
            stripe_ids = (product_id, vat_rate_id, released)
            return _schedule_downgrade(subscription, tier, amount, number, actor, stripe_ids)
        subscription.save(update_fields=["stripe_schedule_id", "changes_requested"])
        _change_price_now(subscription, tier, amount, number, upgrade, (product_id, vat_rate_id))
        verb = "upgrade" if upgrade else "downgrade"
        record_audit(
            f"billing.subscription.{verb}_requested",
            f"{actor} asked to move {organisation} from {subscription.tier} to {tier} "
            f"({format_pence(amount)} a {subscription.interval}), at once and prorated",
            actor=actor,
            organisation=organisation,
            changes={"tier": [subscription.tier.name, tier.name], "amount_pence": [subscription.amount_pence, amount]},
        )
        how = "the difference for the rest of this period is " + (
            "charged to your card now" if subscription.payment_method == PaymentMethod.CARD else "invoiced now"
        )
        if not upgrade:
            how = "the unused difference is credited against your next renewal"
        return f"{organisation} is moving to {tier}: {how}.{_confirming()}"


def _check_tier_change(subscription: Subscription, tier: Tier) -> tuple[int, bool]:
    """The new price and whether it is an upgrade, if the move may be made; otherwise ``MembershipError``."""
    organisation = subscription.organisation
    if tier == subscription.tier:
        raise MembershipError(f"{organisation} is already a {tier} member.")
    _refuse_if_offline(subscription, "a change of tier")
    if subscription.scheduled_tier_id:
        raise MembershipError(
            f"{organisation} moves to {subscription.scheduled_tier} at renewal. Keep {subscription.tier} "
            "first, then choose again."
        )
    _refuse_while_ending(subscription)
    amount = _price_or_refuse(tier, organisation, subscription.interval)
    _refuse_too_few_seats(organisation, tier)  # a dearer tier may seat fewer people too
    return amount, amount > subscription.amount_pence


@_new_keys_after_stripe_fails
def keep_tier(organisation: Organisation, actor: User) -> str:
    """Take back a downgrade waiting for the renewal: the membership renews on its current tier."""
    _require_admin(organisation, actor)
    with transaction.atomic():
        subscription = _live_locked(organisation, _CANCELLABLE)
        scheduled = subscription.scheduled_tier
        if scheduled is None:
            raise MembershipError(f"No change of tier is waiting for {organisation}'s renewal.")
        number = _next_change(subscription)
        _release_attached_schedule(subscription, number)
        subscription.scheduled_tier = None
        subscription.save(update_fields=["scheduled_tier", "stripe_schedule_id", "changes_requested"])
        record_audit(
            "billing.subscription.downgrade_undone",
            f"{actor} kept {organisation} on {subscription.tier}: the move to {scheduled} at renewal is off",
            actor=actor,
            organisation=organisation,
            changes={"scheduled_tier": [scheduled.name, None]},
        )
        return f"{organisation} stays on {subscription.tier} when it renews."


def _change_price_now(
    subscription: Subscription, tier: Tier, amount: int, number: int, upgrade: bool, stripe_ids: tuple
) -> None:
    """``stripe_ids``: the tier's Stripe product and the VAT tax rate (None, None in demo mode)."""
    proration = "always_invoice" if upgrade else "create_prorations"
    if settings.DEMO_PAYMENTS:
        state = _demo_state(subscription, tier=tier, amount=amount)
        _deliver_demo_event(_demo_event_id(subscription, number), "customer.subscription.updated", state)
        if upgrade:
            _deliver_demo_proration(subscription, state, amount, number)
        return
    current = _at_stripe(subscription)
    item = _first_item(current)
    at_stripe = _tier_for_product((item.get("price") or {}).get("product"))
    if at_stripe == tier:
        raise MembershipError(f"The move to {tier} is already with Stripe.{_confirming()}")
    if at_stripe is not None and at_stripe.pk != subscription.tier_id:
        # Another move our row has not heard of yet: whether this one is an upgrade is judged from the tier it has.
        raise MembershipError(f"The move to {at_stripe} is already with Stripe.{_confirming()}")
    if current.get("cancel_at_period_end"):  # a cancellation Stripe has and our row has not heard of yet
        raise MembershipError(
            f"{subscription.organisation}'s membership is set to end. Keep it first, then change tier.{_confirming()}"
        )
    product_id, vat_rate_id = stripe_ids
    new_item = {
        "id": item["id"],
        "price_data": _price_data(tier, amount, subscription.interval, product_id),
        "tax_rates": [vat_rate_id],
    }
    params = {"items": [new_item], "proration_behavior": proration}
    key = _key(subscription, number, f"tier-{tier.pk}")
    stripe_id = subscription.stripe_subscription_id
    _call(lambda client: client.v1.subscriptions.update(stripe_id, params=params, options=stripe_api.options(key)))


def _schedule_downgrade(
    subscription: Subscription, tier: Tier, amount: int, number: int, actor: User, stripe_ids: tuple
) -> str:
    """Invoice payers: the lower price starts with the next period, through a subscription schedule."""
    if not settings.DEMO_PAYMENTS:
        subscription.stripe_schedule_id = _create_schedule(subscription, tier, amount, number, stripe_ids)
    subscription.scheduled_tier = tier
    subscription.save(update_fields=["scheduled_tier", "stripe_schedule_id", "changes_requested"])
    renews = _long_date(subscription.current_period_end)
    record_audit(
        "billing.subscription.downgrade_scheduled",
        f"{actor} asked to move {subscription.organisation} from {subscription.tier} to {tier} at renewal on {renews}",
        actor=actor,
        organisation=subscription.organisation,
        changes={"scheduled_tier": [None, tier.name], "amount_pence": [subscription.amount_pence, amount]},
    )
    return (
        f"{subscription.organisation} moves to {tier} when it renews on {renews}, and the renewal invoice will be "
        f"for {format_pence(amount)} plus VAT. Until then nothing changes."
    )


def _create_schedule(subscription: Subscription, tier: Tier, amount: int, number: int, stripe_ids: tuple) -> str:
    """``stripe_ids``: the tier's product, the VAT rate, and the schedule just released, if any."""
    product_id, vat_rate_id, released = stripe_ids
    stripe_id = subscription.stripe_subscription_id
    # A retry of a downgrade whose phases failed has the same change number, and has just released the schedule the
    # failed attempt made: it asks for a new one, which the first attempt's key would answer with the released one.
    key = _key(subscription, number, "schedule", {"replaces": released} if released else None)
    schedule = _call(
        lambda client: client.v1.subscription_schedules.create(
            params={"from_subscription": stripe_id}, options=stripe_api.options(key)
        )
    ).to_dict()
    current = schedule["phases"][0]
    current_item = {"price": _id(current["items"][0]["price"]), "quantity": 1}
    current_taxes = [_id(rate) for rate in current["items"][0].get("tax_rates") or []]
    if current_taxes:  # the period already invoiced keeps its own taxes
        current_item["tax_rates"] = current_taxes
    next_item = {
        "price_data": _price_data(tier, amount, subscription.interval, product_id),
        "quantity": 1,
        "tax_rates": [vat_rate_id],  # a phase's item has only the taxes it names
    }
    phases = [
        {"items": [current_item], "start_date": current["start_date"], "end_date": current["end_date"]},
        {"items": [next_item], "duration": {"interval": subscription.interval, "interval_count": 1}},
    ]
    key = _key(subscription, number, f"schedule-tier-{tier.pk}")
    _call(
        lambda client: client.v1.subscription_schedules.update(
            schedule["id"], params={"end_behavior": "release", "phases": phases}, options=stripe_api.options(key)
        )
    )
    return schedule["id"]


def _release_attached_schedule(subscription: Subscription, number: int) -> str | None:
    """Release a schedule still attached to the subscription (a downgrade waiting, one that took effect and whose
    phase runs on, or one a failed downgrade made at Stripe before it could set its phases, which our row never
    learnt of, so Stripe is asked): Stripe refuses direct changes to a subscription a schedule manages. The
    subscription keeps its current price. Returns the id of the schedule released, if one was."""
    schedule_id = subscription.stripe_schedule_id
    stripe_id = subscription.stripe_subscription_id
    if settings.DEMO_PAYMENTS or not stripe_id:
        subscription.stripe_schedule_id = None
        return None
    attached = _call(lambda client: client.v1.subscriptions.retrieve(stripe_id)).to_dict().get("schedule")
    schedule_id = _id(attached) or schedule_id
    released = None
    if schedule_id:
        schedule = _call(lambda client: client.v1.subscription_schedules.retrieve(schedule_id))
        if schedule.status in ("active", "not_started"):
            key = _key(subscription, number, "release")
            _call(lambda client: client.v1.subscription_schedules.release(schedule_id, options=stripe_api.options(key)))
            released = schedule_id
    subscription.stripe_schedule_id = None
    return released


def _refuse_too_few_seats(organisation: Organisation, tier: Tier) -> None:
    if organisation.seat_limit is not None or tier.seat_limit is None:
        return  # seats agreed for the organisation itself, or a tier without a limit
    taken = organisation.seats_taken()
    if taken > tier.seat_limit:
        raise MembershipError(
            f"{tier} seats {tier.seat_limit} people, and {organisation} has {taken} people and open invitations. "
            "Remove colleagues or revoke invitations first."
        )


# Payment method ------------------------------------------------------------------------------------------------


@_new_keys_after_stripe_fails
def switch_to_invoice(organisation: Organisation, actor: User, po_number: str) -> str:
    """Pay by invoice from the next renewal: Stripe sends the invoice (30 days, the PO number on it) instead of
    charging the card. Annual card memberships only; the PO number is required where the organisation needs one."""
    _require_admin(organisation, actor)
    po_number = po_number.strip()
    if organisation.needs_purchase_order and not po_number:
        raise MembershipError(f"{organisation}'s invoices must quote a purchase order number. Please add one.")
    with transaction.atomic():
        subscription = _live_locked(organisation, _CHANGEABLE)
        if subscription.payment_method == PaymentMethod.INVOICE:
            raise MembershipError(f"{organisation} already pays by invoice.")
        _refuse_if_offline(subscription, "a change of payment")
        if subscription.interval != Subscription.Interval.YEAR:
            raise MembershipError("Invoices are annual. Monthly memberships are paid by card; please contact us.")
        _refuse_if_with_stripe(subscription, "collection_method", "send_invoice", "The switch to invoices")
        number = _next_change(subscription)
        subscription.po_number = po_number
        subscription.save(update_fields=["po_number", "changes_requested"])
        if settings.DEMO_PAYMENTS:
            state = _demo_state(subscription, collection_method="send_invoice")
            _deliver_demo_event(_demo_event_id(subscription, number), "customer.subscription.updated", state)
        else:
            _send_invoices_from_now(subscription, number)
        record_audit(
            "billing.subscription.switch_to_invoice_requested",
            f"{actor} asked for {organisation}'s membership to be paid by invoice from the next renewal"
            + (f", PO {po_number}" if po_number else ""),
            actor=actor,
            organisation=organisation,
            changes={"payment_method": [PaymentMethod.CARD, PaymentMethod.INVOICE], "po_number": [None, po_number]},
        )
        return (
            f"From the renewal on {_long_date(subscription.current_period_end)}, {organisation} will be sent an "
            f"invoice payable within {INVOICE_DAYS_UNTIL_DUE} days instead of its card being charged.{_confirming()}"
        )


def _send_invoices_from_now(subscription: Subscription, number: int) -> None:
    stripe_id, po_number = subscription.stripe_subscription_id, subscription.po_number
    customer_id = subscription.organisation.stripe_customer_id
    if customer_id:  # set, or cleared: an older PO number must not be printed on these invoices
        fields = po_number_fields(po_number)
        key = _key(subscription, number, "po", fields)
        _call(lambda client: client.v1.customers.update(customer_id, params=fields, options=stripe_api.options(key)))
    description = f"{subscription.tier} membership for {subscription.organisation}"
    params = {
        "collection_method": "send_invoice",
        "days_until_due": INVOICE_DAYS_UNTIL_DUE,
        "description": f"{description}, PO {po_number}" if po_number else description,
        "metadata": {"po_number": po_number},
    }
    key = _key(subscription, number, "to-invoice", params)
    _call(lambda client: client.v1.subscriptions.update(stripe_id, params=params, options=stripe_api.options(key)))


@_new_keys_after_stripe_fails
def start_switch_to_card(organisation: Organisation, actor: User) -> str:
    """Begin paying an invoiced membership by card; returns where to send the admin to save a card (Stripe Checkout
    in setup mode, or the demo's stand-in). Nothing changes until Stripe confirms the card: see
    ``on_card_setup_completed``."""
    _require_admin(organisation, actor)
    customer_id = None if settings.DEMO_PAYMENTS else _ensure_customer(organisation)
    with transaction.atomic():
        subscription = _live_locked(organisation, _CHANGEABLE)
        if subscription.payment_method == PaymentMethod.CARD:
            raise MembershipError(f"{organisation} already pays by card.")
        _refuse_if_offline(subscription, "a change of payment")
        if subscription.scheduled_tier_id:
            raise MembershipError(
                f"{organisation} moves to {subscription.scheduled_tier} at renewal. Keep {subscription.tier} "
                "first, or switch to card after the renewal."
            )
        _refuse_if_with_stripe(subscription, "collection_method", "charge_automatically", "The switch to card")
        number = _next_change(subscription)
        subscription.save(update_fields=["changes_requested"])
        record_audit(
            "billing.subscription.switch_to_card_started",
            f"{actor} started saving a card to pay {organisation}'s membership",
            actor=actor,
            organisation=organisation,
        )
        if settings.DEMO_PAYMENTS:
            return demo_card_url(subscription, number)
        metadata = {**_metadata(subscription), "change": str(number)}
        params = {
            "mode": "setup",
            "customer": customer_id,
            "currency": subscription.currency.lower(),
            "metadata": metadata,
            "setup_intent_data": {"metadata": metadata},
            "success_url": billing_page_url(organisation, "?card=saved"),
            "cancel_url": billing_page_url(organisation, "?card=cancelled"),
        }
        key = _key(subscription, number, "card-setup")
        session = _call(
            lambda client: client.v1.checkout.sessions.create(params=params, options=stripe_api.options(key))
        )
        return session.url


def on_card_setup_completed(session: dict) -> None:
    """Webhook: a setup-mode checkout completed. Make its card the default for the customer and the subscription,
    and the subscription's collection method ``charge_automatically``; Stripe then sends
    ``customer.subscription.updated``, which records the change on our row. In demo mode the demo sends that."""
    metadata = session.get("metadata") or {}
    ours, organisation_id = str(metadata.get("subscription_id", "")), str(metadata.get("organisation_id", ""))
    if not (ours.isdigit() and organisation_id.isdigit()):
        logger.warning("Setup checkout %s names none of our subscriptions", session.get("id"))
        return
    found = Subscription.objects.filter(pk=int(ours), organisation_id=int(organisation_id)).first()
    if found is None:
        return
    subscription = _locked(found.pk)
    session = session if settings.DEMO_PAYMENTS else _retrieve_setup_session(session["id"])
    intent = session.get("setup_intent") or {}
    card = intent.get("payment_method") if isinstance(intent, dict) else None
    live = subscription.status in Subscription.LIVE_STATUSES
    if session.get("status") != "complete" or not card or not live or subscription.payment_method != "invoice":
        return  # not finished, or the membership ended or moved to card meanwhile: nothing to do
    record_audit(
        "billing.subscription.switched_to_card",
        f"A card was saved for {subscription.organisation}: its membership is paid by card from now on",
        organisation=subscription.organisation,
    )
    if settings.DEMO_PAYMENTS:
        return
    number = metadata.get("change", "0")
    customer_id = _id(session.get("customer"))
    default = {"invoice_settings": {"default_payment_method": card}}
    key = _key(subscription, number, "default-card")
    _call(lambda client: client.v1.customers.update(customer_id, params=default, options=stripe_api.options(key)))
    params = {"collection_method": "charge_automatically", "default_payment_method": card}
    key = _key(subscription, number, "to-card")
    stripe_id = subscription.stripe_subscription_id
    _call(lambda client: client.v1.subscriptions.update(stripe_id, params=params, options=stripe_api.options(key)))


def _retrieve_setup_session(session_id: str) -> dict:
    client = stripe_api.client()
    return client.v1.checkout.sessions.retrieve(session_id, params={"expand": ["setup_intent"]}).to_dict()


# Moving a membership paid offline onto Stripe -------------------------------------------------------------------


@_new_keys_after_stripe_fails
def start_paying_online(organisation: Organisation, actor: User, payment_method: str, po_number: str = "") -> str:
    """Move a membership recorded before online payment (imported from a spreadsheet, paid as the team arranged)
    onto Stripe from its next renewal, by card or by invoice. Returns where to send the admin: Stripe Checkout to
    save a card, or the billing page with what was done.

    The period already paid for is not charged again: the Stripe subscription starts with a trial that ends when
    the period does (``trial_end``), so its first charge, or its first invoice, is the renewal, at the tier's price
    now. By card, nothing changes until Stripe confirms the checkout; the webhook links our row to the Stripe
    subscription (``billing._sync_subscription``) and audits it. By invoice, the subscription is made at once (no
    card to collect) and linked here. Refused, with nothing written: not an admin, a membership already billed
    online or not active, set to end, renewing within ``billing.ONLINE_PAYMENT_LEAD_TIME``, a monthly membership by
    invoice, no price for the tier, a missing PO number where the organisation needs one, or Stripe failing.
    A card checkout started earlier and left open is closed first, so only one can be completed.
    """
    _require_admin(organisation, actor)
    by_invoice = payment_method == PaymentMethod.INVOICE
    po_number = po_number.strip() if by_invoice else ""
    if by_invoice and organisation.needs_purchase_order and not po_number:
        raise MembershipError(f"{organisation}'s invoices must quote a purchase order number. Please add one.")
    found = _live(organisation, _CHANGEABLE)
    _check_may_pay_online(found, by_invoice)  # before Stripe makes anything
    stripe_ids = (_ensure_customer(organisation), _ensure_product(found.tier), _ensure_vat_rate())
    with transaction.atomic():
        subscription = _live_locked(organisation, _CHANGEABLE)
        if subscription.tier_id != found.tier_id:
            raise MembershipError(f"{organisation}'s membership has just changed. Please try again.")
        amount = _check_may_pay_online(subscription, by_invoice)  # again, under the lock
        number = _next_change(subscription)
        _close_open_online_checkout(subscription, number)
        params = _online_params(subscription, amount, stripe_ids, po_number)
        if by_invoice:
            return _pay_online_by_invoice(subscription, actor, params, number)
        checkout = {
            "mode": "subscription",
            "customer": params["customer"],
            "client_reference_id": str(subscription.pk),
            "line_items": [{"quantity": 1, **params["items"][0]}],
            "metadata": {**_metadata(subscription), "change": str(number)},
            "subscription_data": {key: params[key] for key in ("metadata", "description", "trial_end")},
            "success_url": billing_page_url(organisation, "?online=card"),
            "cancel_url": billing_page_url(organisation, "?checkout=cancelled"),
        }
        key = _key(subscription, number, "online-card")
        session = _call(
            lambda client: client.v1.checkout.sessions.create(params=checkout, options=stripe_api.options(key))
        )
        subscription.stripe_checkout_session_id = session.id
        subscription.save(update_fields=["stripe_checkout_session_id", "changes_requested"])
        record_audit(
            "billing.subscription.online_payment_started",
            f"{actor} started saving a card to pay {organisation}'s membership from its renewal on "
            f"{_long_date(subscription.current_period_end)}",
            actor=actor,
            organisation=organisation,
        )
        return session.url


def _check_may_pay_online(subscription: Subscription, by_invoice: bool) -> int:
    """The price the renewal will be charged at, if the membership may move online; otherwise ``MembershipError``."""
    organisation = subscription.organisation
    if settings.DEMO_PAYMENTS or subscription.stripe_subscription_id:
        raise MembershipError(f"{organisation}'s membership is already paid online.")
    if subscription.cancel_at_period_end or not subscription.auto_renew:
        _refuse_while_ending(subscription)
    amount = _price_or_refuse(subscription.tier, organisation, subscription.interval)
    if subscription.current_period_end is None:
        raise MembershipError(
            f"{organisation}'s membership has no renewal date on record. Please contact us to set up its payment."
        )
    if not may_pay_online(subscription):
        raise MembershipError(
            f"{organisation}'s membership renews on {_long_date(subscription.current_period_end)}, too soon to set "
            "up online payment before it. Please reply to your renewal e-mail and we will arrange this payment."
        )
    if by_invoice and subscription.interval != Subscription.Interval.YEAR:
        raise MembershipError("Invoices are annual. Monthly memberships are paid by card; please contact us.")
    return amount


def _close_open_online_checkout(subscription: Subscription, number: int) -> None:
    """Close a card checkout started earlier for this membership, so that it cannot be completed as well. Each
    closing is its own call to Stripe, keyed by the change that makes it."""
    if not subscription.stripe_checkout_session_id:
        return
    _expire_checkout(subscription, key=_key(subscription, number, "expire-checkout"))
    subscription.stripe_checkout_session_id = None


def _online_params(subscription: Subscription, amount: int, stripe_ids: tuple, po_number: str) -> dict:
    """The Stripe subscription that takes over from the renewal: the tier at its price now, VAT on it, and a trial
    until the period paid for ends."""
    customer_id, product_id, vat_rate_id = stripe_ids
    description = f"{subscription.tier} membership for {subscription.organisation}"
    return {
        "customer": customer_id,
        "items": [
            {
                "price_data": _price_data(subscription.tier, amount, subscription.interval, product_id),
                "tax_rates": [vat_rate_id],
            }
        ],
        "trial_end": int(subscription.current_period_end.timestamp()),
        "description": f"{description}, PO {po_number}" if po_number else description,
        "metadata": {**_metadata(subscription), **({"po_number": po_number} if po_number else {})},
    }


def _pay_online_by_invoice(subscription: Subscription, actor: User, params: dict, number: int) -> str:
    organisation = subscription.organisation
    fields = po_number_fields(params["metadata"].get("po_number", ""))
    key = _key(subscription, number, "online-po", fields)
    customer_id = params["customer"]
    _call(lambda client: client.v1.customers.update(customer_id, params=fields, options=stripe_api.options(key)))
    params = {**params, "collection_method": "send_invoice", "days_until_due": INVOICE_DAYS_UNTIL_DUE}
    created = _online_subscription_made_earlier(subscription, number, params)
    if created is None:
        key = _key(subscription, number, "online-invoice", params)
        created = _call(
            lambda client: client.v1.subscriptions.create(
                params={**params, "expand": ["latest_invoice"]}, options=stripe_api.options(key)
            )
        ).to_dict()
    po_before, subscription.po_number = subscription.po_number, params["metadata"].get("po_number", "")
    subscription.save(update_fields=["po_number", "stripe_checkout_session_id", "changes_requested"])
    record_audit(
        "billing.subscription.online_payment_started",
        f"{actor} asked for {organisation}'s membership to be invoiced through Stripe from its renewal on "
        f"{_long_date(subscription.current_period_end)}"
        + (f", PO {subscription.po_number}" if subscription.po_number else ""),
        actor=actor,
        organisation=organisation,
        changes={"po_number": [po_before, subscription.po_number]} if po_before != subscription.po_number else None,
    )
    _sync_subscription(subscription, created)
    return (
        f"From the renewal on {_long_date(subscription.current_period_end)}, Stripe will send {organisation} an "
        f"invoice payable within {INVOICE_DAYS_UNTIL_DUE} days. Nothing is owed until then."
    )


def _online_subscription_made_earlier(subscription: Subscription, number: int, params: dict) -> dict | None:
    """A Stripe subscription an earlier attempt to move this membership online made, though its answer was lost
    or was an error (Stripe does not say whether a 500's object was made): found by our id in its metadata, and
    brought to this attempt's terms (the PO number may have been corrected). Linked instead of making a second,
    which would invoice the organisation twice at the renewal. (Stripe's search sees a new object within about a
    minute.)"""
    query = f"metadata['subscription_id']:'{subscription.pk}'"
    found = _call(lambda client: client.v1.subscriptions.search(params={"query": query, "limit": 10})).to_dict()
    alive = [made for made in found.get("data") or [] if made.get("status") not in ("canceled", "incomplete_expired")]
    if not alive:
        return None
    terms = {key: params[key] for key in ("description", "metadata", "collection_method", "days_until_due")}
    key = _key(subscription, number, "online-invoice-terms", terms)
    stripe_id = alive[0]["id"]
    return _call(
        lambda client: client.v1.subscriptions.update(stripe_id, params=terms, options=stripe_api.options(key))
    ).to_dict()


# Withdrawing a request to join by invoice -----------------------------------------------------------------------


@_new_keys_after_stripe_fails
def withdraw_invoiced_application(organisation: Organisation, actor: User) -> Subscription:
    """Take back a membership asked for by invoice, before its invoice is paid: a wrong PO number, a change of
    mind. The organisation can then join again, by card or with a new invoice.

    Guarantees: admins only; Stripe voids the open invoice (so it can no longer be paid), under a key made of our
    ids and the change's number, and ends the subscription (so nothing is chased), before anything is written
    here; then the invoice is void and the membership cancelled, both audited. An invoice Stripe shows paid
    meanwhile is refused with a message: the membership starts instead. Stripe failing writes nothing, and a retry
    after Stripe answered with an error sends new keys.
    """
    _require_admin(organisation, actor)
    with transaction.atomic():
        waiting = Subscription.objects.filter(
            organisation=organisation, status=Status.PENDING, payment_method=PaymentMethod.INVOICE
        ).first()
        subscription = _locked(waiting.pk) if waiting else None
        if subscription is None or subscription.status != Status.PENDING:
            raise MembershipError(f"{organisation} has no membership waiting for its first invoice to be paid.")
        invoices = list(
            Invoice.objects.select_for_update().filter(subscription=subscription, status=Invoice.Status.OPEN)
        )
        number = _next_change(subscription)  # its keys: a retry after Stripe answered with an error takes the next
        subscription.save(update_fields=["changes_requested"])
        if not settings.DEMO_PAYMENTS:
            _withdraw_at_stripe(subscription, invoices, number)
        for invoice in invoices:
            invoice.status = Invoice.Status.VOID
            invoice.save(update_fields=["status"])
            record_audit(
                "billing.invoice.voided",
                f"Invoice {invoice} for {format_pence(invoice.amount_due_pence)} is void: {actor} withdrew the "
                "membership it was for",
                actor=actor,
                organisation_id=invoice.organisation_id,
                changes={"status": [Invoice.Status.OPEN, Invoice.Status.VOID]},
            )
        _change_status(subscription, Status.CANCELLED, f"{actor} withdrew it before its invoice was paid", actor)
        return subscription


def _withdraw_at_stripe(subscription: Subscription, invoices: list[Invoice], number: int) -> None:
    for invoice in invoices:
        if not invoice.stripe_invoice_id:
            continue
        invoice_id = invoice.stripe_invoice_id
        status = _call(lambda client, invoice_id=invoice_id: client.v1.invoices.retrieve(invoice_id)).status
        if status == Invoice.Status.PAID:
            raise MembershipError(
                f"Invoice {invoice} has just been paid, so the membership starts instead. Please check the billing "
                "page in a minute."
            )
        if status == Invoice.Status.OPEN:
            options = stripe_api.options(_key(subscription, number, f"void-invoice-{invoice.pk}"))
            _call(lambda client, id=invoice_id, options=options: client.v1.invoices.void_invoice(id, options=options))
    stripe_id = subscription.stripe_subscription_id
    if stripe_id and _call(lambda client: client.v1.subscriptions.retrieve(stripe_id)).status not in (
        "canceled",
        "incomplete_expired",
    ):
        # A DELETE: Stripe keeps no idempotency key for it, and ending an ended subscription is refused, not repeated.
        _call(lambda client: client.v1.subscriptions.cancel(stripe_id))


# Cancelling and taking it back -----------------------------------------------------------------------------------


@_new_keys_after_stripe_fails
def cancel_at_period_end(organisation: Organisation, actor: User) -> str:
    """End the membership when its period ends (card and invoice payers alike); benefits last until then. A
    downgrade waiting for the renewal is dropped with it."""
    _require_admin(organisation, actor)
    with transaction.atomic():
        subscription = _live_locked(organisation, _CANCELLABLE)
        if subscription.cancel_at_period_end:
            raise MembershipError(f"{organisation}'s membership is already set to end.")
        _refuse_if_with_stripe(subscription, "cancel_at_period_end", True, "The cancellation")  # before any release
        number = _next_change(subscription)
        dropped = subscription.scheduled_tier
        _release_attached_schedule(subscription, number)
        subscription.scheduled_tier = None
        subscription.save(update_fields=["scheduled_tier", "stripe_schedule_id", "changes_requested"])
        _set_cancel_at_period_end(subscription, number, True)
        offline = not billed_online(subscription)
        changes = {"cancel_at_period_end": [False, True]}
        if dropped:
            changes["scheduled_tier"] = [dropped.name, None]
        ends = _long_date(subscription.current_period_end)
        record_audit(
            "billing.subscription.cancellation_requested",
            f"{actor} asked for {organisation}'s {subscription.tier} membership to end on {ends}",
            actor=actor,
            organisation=organisation,
            changes=changes,
        )
        confirming = "" if offline else _confirming()
        return f"{organisation}'s membership will end on {ends}. You can change your mind until then.{confirming}"


@_new_keys_after_stripe_fails
def resume_membership(organisation: Organisation, actor: User) -> str:
    """Take back a cancellation before the period ends: the membership renews as before."""
    _require_admin(organisation, actor)
    with transaction.atomic():
        subscription = _live_locked(organisation, _CANCELLABLE)
        if not subscription.cancel_at_period_end:
            raise MembershipError(f"{organisation}'s membership is not set to end.")
        if subscription.current_period_end and subscription.current_period_end <= timezone.now():
            raise MembershipError(f"{organisation}'s membership has reached its end. Please renew it instead.")
        if not subscription.auto_renew:
            raise MembershipError("The membership team has set this membership not to renew. Please contact us.")
        _refuse_if_with_stripe(subscription, "cancel_at_period_end", False, "Keeping the membership")
        number = _next_change(subscription)
        subscription.save(update_fields=["changes_requested"])
        _set_cancel_at_period_end(subscription, number, False)
        record_audit(
            "billing.subscription.cancellation_undone",
            f"{actor} kept {organisation}'s {subscription.tier} membership: it renews as before",
            actor=actor,
            organisation=organisation,
            changes={"cancel_at_period_end": [True, False]},
        )
        return (
            f"{organisation}'s membership will renew as before.{_confirming() if billed_online(subscription) else ''}"
        )


def _set_cancel_at_period_end(subscription: Subscription, number: int, cancel: bool) -> None:
    if not billed_online(subscription):
        # Nothing at Stripe: our row is the membership. A card checkout left open to move it online is closed, so
        # it cannot be completed later with the membership renewing after all.
        _close_open_online_checkout(subscription, number)
        subscription.cancel_at_period_end = cancel
        subscription.save(update_fields=["cancel_at_period_end", "stripe_checkout_session_id"])
        return
    if settings.DEMO_PAYMENTS:
        state = _demo_state(subscription, cancel_at_period_end=cancel)
        _deliver_demo_event(_demo_event_id(subscription, number), "customer.subscription.updated", state)
        return
    stripe_id = subscription.stripe_subscription_id
    key = _key(subscription, number, "cancel" if cancel else "resume")
    _call(
        lambda client: client.v1.subscriptions.update(
            stripe_id, params={"cancel_at_period_end": cancel}, options=stripe_api.options(key)
        )
    )


# After a lapse ---------------------------------------------------------------------------------------------------


def stop_renewing_after_lapse(subscription_id: int) -> None:
    """A membership lapsed for want of payment: make sure Stripe never renews it (cancel at the end of its period).

    Its open invoice stays payable, and a card payment Stripe is still retrying may go through: a late payment
    for the lapsed period reinstates the membership until that period ends (see ``billing.next_status``). Run by a
    task queued when the renewals job lapses it; Stripe errors propagate so the task retries. Safe to run twice.
    """
    subscription = Subscription.objects.select_related("organisation", "tier").filter(pk=subscription_id).first()
    if subscription is None or settings.DEMO_PAYMENTS or not subscription.stripe_subscription_id:
        return
    client = stripe_api.client()
    stripe_id = subscription.stripe_subscription_id
    current = client.v1.subscriptions.retrieve(stripe_id).to_dict()
    if current["status"] in ("canceled", "incomplete_expired") or current.get("cancel_at_period_end"):
        return
    if current.get("schedule"):
        client.v1.subscription_schedules.release(
            _id(current["schedule"]), options=stripe_api.options(f"lapse-sub-{subscription.pk}-release")
        )
    client.v1.subscriptions.update(
        stripe_id, params={"cancel_at_period_end": True}, options=stripe_api.options(f"lapse-sub-{subscription.pk}")
    )
    record_audit(
        "billing.subscription.renewal_stopped",
        f"{subscription.organisation}'s lapsed membership was set at Stripe never to renew",
        organisation=subscription.organisation,
    )


# Shared steps ----------------------------------------------------------------------------------------------------


def _live_locked(organisation: Organisation, statuses: list[str]) -> Subscription:
    """The organisation's live subscription, its row locked; refused unless its status is one of ``statuses``."""
    return _live(organisation, statuses, lock=True)


def _live(organisation: Organisation, statuses: list[str], *, lock: bool = False) -> Subscription:
    found = Subscription.objects.live().filter(organisation=organisation).select_related("tier").first()
    if found is None:
        raise MembershipError(f"{organisation} has no membership to change. Choose a tier to join.")
    subscription = _locked(found.pk) if lock else found
    if subscription.status not in statuses:
        if subscription.status == Status.PENDING:
            raise MembershipError("The membership starts once its first payment arrives; change it after that.")
        raise MembershipError(
            f"{organisation}'s last payment has not arrived. Please settle it first (see your invoices below)."
        )
    return subscription


def _refuse_if_offline(subscription: Subscription, change: str) -> None:
    """A membership Stripe does not bill (paid as the membership team arranged) has nothing at Stripe to change."""
    if not billed_online(subscription):
        raise MembershipError(
            f"{subscription.organisation}'s membership is paid as arranged with the membership team, so {change} "
            "is theirs to make. Set up online payment on this page first, or contact us."
        )


def _refuse_during_trial(subscription: Subscription) -> None:
    """A membership moved online is in a trial at Stripe until its renewal (the period was paid as the team
    arranged). Stripe prorates nothing over a trial: an upgrade would go unpaid and a downgrade credit nothing, so
    the tier changes at or after the renewal, or through the team."""
    if settings.DEMO_PAYMENTS or not subscription.stripe_subscription_id:
        return
    if _at_stripe(subscription).get("status") == "trialing":
        raise MembershipError(
            f"{subscription.organisation}'s membership is paid online from its renewal on "
            f"{_long_date(subscription.current_period_end)}. Change its tier after that, or ask us to change it now."
        )


def _refuse_while_ending(subscription: Subscription) -> None:
    if subscription.cancel_at_period_end or not subscription.auto_renew:
        raise MembershipError(
            f"{subscription.organisation}'s membership is set to end on {_long_date(subscription.current_period_end)}. "
            "Keep it first, then change tier."
        )


def _at_stripe(subscription: Subscription) -> dict:
    """The subscription as Stripe has it now (not in demo mode)."""
    stripe_id = subscription.stripe_subscription_id
    return _call(lambda client: client.v1.subscriptions.retrieve(stripe_id)).to_dict()


def _refuse_if_with_stripe(subscription: Subscription, field: str, value: bool | str, change: str) -> None:
    """Refuse a change Stripe already has. Our row learns of a change only from Stripe's webhook, so until it
    arrives a second request (another tab, a double click) passes the row's checks, and its new change number
    would make a new idempotency key: Stripe would be asked, and the change audited, twice. Demo mode records the
    change on the row at once, so the row's checks suffice there."""
    if settings.DEMO_PAYMENTS or not subscription.stripe_subscription_id:
        return
    if _at_stripe(subscription).get(field) == value:
        raise MembershipError(f"{change} is already with Stripe.{_confirming()}")


def _next_change(subscription: Subscription) -> int:
    """The change's number, taken under the row lock; rolled back with everything else if the change fails."""
    subscription.changes_requested += 1
    return subscription.changes_requested


def _key(subscription: Subscription, number: int | str, what: str, params: dict | None = None) -> str:
    """The idempotency key of one call of one change. Where the call's parameters come from what the admin typed
    (a PO number), the key also carries a digest of them: a change refused here and rolled back before Stripe was
    asked keeps its number, and its retry with corrected parameters must be a new request, which Stripe would
    otherwise answer with the first one's result (or refuse, for 24 hours)."""
    key = f"sub-{subscription.pk}-change-{number}-{what}"
    if params is not None:
        key += "-" + hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return key


def _price_data(tier: Tier, amount: int, interval: str, product_id: str | None) -> dict:
    return {
        "currency": "gbp",
        "unit_amount": amount,
        "recurring": {"interval": interval},
        "product": product_id,
        "tax_behavior": "exclusive",  # our prices are before VAT
    }


def _long_date(moment) -> str:
    return long_date(moment) if moment else "the end of the period"


def _confirming() -> str:
    return "" if settings.DEMO_PAYMENTS else " Stripe is confirming it; this page shows it within a minute."


# The demo: Stripe's part, played locally -------------------------------------------------------------------------


def _demo_event_id(subscription: Subscription, number: int) -> str:
    return f"evt_demo_sub_{subscription.pk}_change_{number}"


def _demo_state(
    subscription: Subscription,
    *,
    tier: Tier | None = None,
    amount: int | None = None,
    cancel_at_period_end: bool | None = None,
    collection_method: str | None = None,
) -> dict:
    """The subscription as Stripe would describe it after the change: our row's terms with the change applied."""
    start = subscription.current_period_start or timezone.now()
    end = subscription.current_period_end or one_period_later(start, subscription.interval)
    invoiced = subscription.payment_method == PaymentMethod.INVOICE
    latest = subscription.invoices.order_by("-created_at", "-pk").first()
    statuses = {Status.PAST_DUE: "past_due", Status.GRACE: "past_due"}
    return {
        "id": subscription.stripe_subscription_id or f"demo_sub_{subscription.pk}",
        "object": "subscription",
        "status": statuses.get(subscription.status, "active"),
        "collection_method": collection_method or ("send_invoice" if invoiced else "charge_automatically"),
        "cancel_at_period_end": subscription.cancel_at_period_end
        if cancel_at_period_end is None
        else cancel_at_period_end,
        "metadata": _metadata(subscription),
        "latest_invoice": {"id": latest.stripe_invoice_id, "object": "invoice", "status": latest.status}
        if latest
        else None,
        "items": {
            "object": "list",
            "data": [
                {
                    "current_period_start": int(start.timestamp()),
                    "current_period_end": int(end.timestamp()),
                    "price": {
                        "unit_amount": subscription.amount_pence if amount is None else amount,
                        "currency": subscription.currency.lower(),
                        "recurring": {"interval": subscription.interval},
                        "product": demo_product_id(tier or subscription.tier),
                    },
                }
            ],
        },
    }


def _deliver_demo_proration(subscription: Subscription, state: dict, amount: int, number: int) -> None:
    """The prorated invoice Stripe raises for an upgrade: paid at once by card, or sent to an invoice payer."""
    now = timezone.now()
    end = subscription.current_period_end or one_period_later(now, subscription.interval)
    start = subscription.current_period_start or now
    # Whole microseconds and integer pence: no float touches the money.
    length = max((end - start) // _MICROSECOND, 1)
    unused = max((end - now) // _MICROSECOND, 0)
    prorated = with_vat((amount - subscription.amount_pence) * unused // length)  # VAT on top, as Stripe adds it
    card = state["collection_method"] == "charge_automatically"
    invoice = {
        "id": f"demo_in_{subscription.pk}_change_{number}",
        "object": "invoice",
        "status": Invoice.Status.PAID if card else Invoice.Status.OPEN,
        "number": f"DEMO-{subscription.pk:05d}-{number}",
        "amount_due": prorated,
        "amount_paid": prorated if card else 0,
        "currency": subscription.currency.lower(),
        "hosted_invoice_url": billing_page_url(subscription.organisation),
        "due_date": None if card else int(time.time()) + INVOICE_DAYS_UNTIL_DUE * 86400,
        "status_transitions": {"paid_at": int(time.time()) if card else None},
    }
    state = {**state, "latest_invoice": {"id": invoice["id"], "object": "invoice", "status": invoice["status"]}}
    details = {"subscription": state, "metadata": _metadata(subscription)}
    invoice["parent"] = {"type": "subscription_details", "subscription_details": details}
    event = "invoice.paid" if card else "invoice.finalized"
    _deliver_demo_event(f"{_demo_event_id(subscription, number)}_invoice", event, invoice)


def demo_card_url(subscription: Subscription, number: int) -> str:
    """The demo's stand-in for a setup-mode checkout: signed, naming the subscription and the change."""
    token = signing.dumps({"s": subscription.pk, "o": subscription.organisation_id, "n": number}, salt=DEMO_CARD_SALT)
    return reverse("billing:demo_card", args=[token])


def find_demo_card(token: str, user: User) -> tuple[Subscription, int] | None:
    """The invoiced subscription and change a demo card link names, if demo mode is on, the signature holds and
    ``user`` is an admin of its organisation; otherwise None (the page answers 404)."""
    if not settings.DEMO_PAYMENTS:
        return None
    try:
        data = signing.loads(token, salt=DEMO_CARD_SALT)
        subscription_id, organisation_id, number = int(data["s"]), int(data["o"]), int(data["n"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    subscription = (
        Subscription.objects.select_related("organisation", "tier")
        .filter(pk=subscription_id, organisation_id=organisation_id)
        .filter(organisation__in=Organisation.objects.administered_by(user))
        .first()
    )
    return (subscription, number) if subscription else None


def save_demo_card(subscription: Subscription, number: int) -> None:
    """Play Stripe after a card is saved: the setup checkout completes, then the subscription, now charging the
    card automatically, is updated; both signed and delivered through the webhook code. Saving twice changes
    nothing more (the event ids come from the change)."""
    if not settings.DEMO_PAYMENTS:
        raise MembershipError("The demo checkout is only available when payments are in demo mode.")
    metadata = {**_metadata(subscription), "change": str(number)}
    session = {
        "id": f"demo_cs_setup_{subscription.pk}_{number}",
        "object": "checkout.session",
        "mode": "setup",
        "status": "complete",
        "metadata": metadata,
        "setup_intent": {"id": f"demo_seti_{subscription.pk}_{number}", "payment_method": "demo_pm_card"},
    }
    base = _demo_event_id(subscription, number)
    _deliver_demo_event(f"{base}_card_saved", "checkout.session.completed", session)
    subscription.refresh_from_db()
    if subscription.payment_method == PaymentMethod.INVOICE and subscription.status in Subscription.LIVE_STATUSES:
        state = _demo_state(subscription, collection_method="charge_automatically")
        _deliver_demo_event(base, "customer.subscription.updated", state)
