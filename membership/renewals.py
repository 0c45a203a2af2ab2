"""Renewals and lapses: reminders before a membership renews, notice before a card is charged, and the path
from an unpaid renewal through a grace period to a lapsed membership.

The daily job (``membership.tasks.run_renewal_jobs``) may run twice, late, or on two workers at once and still
queues each e-mail once: every subscription is handled in its own transaction with its row locked and its state
checked again inside the lock, and every e-mail is recorded as a ``BillingNotice`` (unique per subscription, kind
and period) in the transaction that queues it. The e-mail task checks again before it sends, so a message queued
for a state that has since changed (a renewal paid, a card fixed) does not go.

Delivery is at least once. The task sends with the notice's row locked and marks it delivered in the same
transaction; a notice still undelivered an hour after it was recorded (the process died before the task was
queued, or the worker died mid-send) is queued again by the daily job, for up to a week. The price is that a
worker killed between the SMTP server accepting the message and the commit sends it a second time: a rare
duplicate reminder is better than a payment-failed or lapse notice that silently never goes.
"""

from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateformat import format as date_format

from config.celery import queue_on_commit
from config.emails import send_email
from membership.billing import billed_online, billing_page_url, format_pence, may_pay_online, price_for, with_vat
from membership.models import BillingNotice, Invoice, Organisation, OrganisationMember, Subscription, Tier
from membership.services import diff, record_audit

Kind = BillingNotice.Kind
Status = Subscription.Status

# Reminders go this many days before the period ends, the nearest mark first; a run that missed a day sends the
# reminder for the mark the subscription is now inside, so none is lost and an earlier one never follows a later.
REMINDER_MARKS = [(7, Kind.RENEWAL_7), (30, Kind.RENEWAL_30), (60, Kind.RENEWAL_60)]
CHARGE_NOTICE_DAYS = 3
# Stripe charges a renewal about an hour after the period ends and its webhook can come later still: an active
# subscription is only called unpaid once a day has passed.
RENEWAL_SETTLE_TIME = timedelta(days=1)
GRACE_STARTED = Kind.GRACE_STARTED
# A notice not delivered this long after it was recorded is queued again by the daily job, for up to a week.
REDELIVER_AFTER = timedelta(hours=1)
REDELIVER_FOR = timedelta(days=7)

_TEMPLATES = {
    Kind.RENEWAL_60: "renewal-reminder",
    Kind.RENEWAL_30: "renewal-reminder",
    Kind.RENEWAL_7: "renewal-reminder",
    Kind.CHARGE_NOTICE: "charge-notice",
    Kind.PAYMENT_FAILED: "payment-failed",
    Kind.LAPSED: "lapsed",
    GRACE_STARTED: "grace-started",
}
# The statuses in which each e-mail still makes sense when the task comes to send it.
_SENDABLE_IN = {
    Kind.RENEWAL_60: {Status.ACTIVE},
    Kind.RENEWAL_30: {Status.ACTIVE},
    Kind.RENEWAL_7: {Status.ACTIVE},
    Kind.CHARGE_NOTICE: {Status.ACTIVE},
    Kind.PAYMENT_FAILED: {Status.PAST_DUE, Status.GRACE},
    Kind.LAPSED: {Status.LAPSED},
    GRACE_STARTED: {Status.GRACE},
}


# Entitlement: what other capabilities ask ---------------------------------------------------------------


def is_entitled(organisation: Organisation) -> bool:
    """Whether the organisation has its tier's perks and members-only content now (active, past due or grace)."""
    return Subscription.objects.entitled().filter(organisation=organisation).exists()


def entitled_tier(organisation: Organisation) -> Tier | None:
    """The tier whose benefits the organisation has now, or None when it has none (lapsed, cancelled, unpaid)."""
    subscription = Subscription.objects.entitled().filter(organisation=organisation).select_related("tier").first()
    return subscription.tier if subscription else None


# Helpers for e-mails ---------------------------------------------------------------------------------------


def billing_recipients(organisation: Organisation) -> list[str]:
    """Who hears about billing: the billing address and the billing contact; with neither, the organisation's admins."""
    recipients: list[str] = []
    contact = organisation.billing_contact.email if organisation.billing_contact else ""
    for email in (organisation.billing_email, contact):
        if email and email.lower() not in {known.lower() for known in recipients}:
            recipients.append(email)
    if recipients:
        return recipients
    admins = OrganisationMember.objects.admins().filter(organisation=organisation)
    return list(admins.values_list("user__email", flat=True))


def _renews(subscription: Subscription) -> bool:
    return subscription.auto_renew and not subscription.cancel_at_period_end


def _charges_card(subscription: Subscription) -> bool:
    return (
        subscription.payment_method == Subscription.PaymentMethod.CARD
        and _renews(subscription)
        and billed_online(subscription)
    )


# Time ------------------------------------------------------------------------------------------------------


def _days_until(moment: datetime, now: datetime) -> int:
    """Whole calendar days (UK time) from ``now`` to ``moment``: the same all day, whatever hour the job runs."""
    return (timezone.localdate(moment) - timezone.localdate(now)).days


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _ending_within(days: int, now: datetime) -> Q:
    """Periods ending between tomorrow and ``days`` days from today, by the calendar."""
    today = timezone.localdate(now)
    start, end = _day_start(today + timedelta(days=1)), _day_start(today + timedelta(days=days + 1))
    return Q(current_period_end__gte=start, current_period_end__lt=end)


def long_date(moment: datetime) -> str:
    """A date as members read it, in UK time: "15 March 2027"."""
    return date_format(timezone.localtime(moment), "j F Y")


def _period_key(subscription: Subscription) -> str:
    """Names the period a notice is about: the date it ends (a pending subscription has none yet)."""
    return timezone.localdate(subscription.current_period_end or subscription.created_at).isoformat()


def _grace_days() -> timedelta:
    return timedelta(days=settings.BILLING_GRACE_DAYS)


# The shared steps ------------------------------------------------------------------------------------------


def _each(subscriptions: QuerySet[Subscription], step: Callable[[int], bool]) -> int:
    """Run ``step`` on each subscription, each in its own transaction; how many it acted on."""
    return sum(1 for pk in list(subscriptions.values_list("pk", flat=True)) if step(pk))


def _locked(subscription_id: int) -> Subscription | None:
    """The subscription with its row locked (only its row: not its organisation's or tier's)."""
    return (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("organisation", "tier")
        .filter(pk=subscription_id)
        .first()
    )


def _record_notice(subscription: Subscription, kind: str) -> bool:
    """Record the notice and queue its e-mail for after the commit; False when it had already gone."""
    from membership import tasks

    _, created = BillingNotice.objects.get_or_create(
        subscription=subscription, kind=kind, key=_period_key(subscription)
    )
    if created:
        queue_on_commit(tasks.send_billing_email, subscription.pk, str(kind))
    return created


def _change_status(subscription: Subscription, status: str, action: str, summary: str, **fields) -> None:
    before = {"status": subscription.status, **{name: getattr(subscription, name) for name in fields}}
    subscription.status = status
    for name, value in fields.items():
        setattr(subscription, name, value)
    subscription.save(update_fields=["status", *fields])
    record_audit(
        action,
        summary,
        organisation=subscription.organisation,
        changes=diff(before, subscription, list(before)),
    )


# Renewal reminders -----------------------------------------------------------------------------------------


def send_renewal_reminders(now: datetime | None = None) -> int:
    """Remind the billing contacts of active annual memberships 60, 30 and 7 days before they renew (or end).

    Each reminder goes once per period; a missed day is caught up with the reminder now due, never an earlier one.
    Monthly memberships get no reminders: the charge notice before every payment covers them.
    """
    now = now or timezone.now()
    due = Subscription.objects.filter(
        _ending_within(REMINDER_MARKS[-1][0], now), status=Status.ACTIVE, interval=Subscription.Interval.YEAR
    )
    return _each(due, lambda pk: _send_renewal_reminder(pk, now))


def _due_reminder(days_left: int) -> str | None:
    for days, kind in REMINDER_MARKS:
        if 0 < days_left <= days:
            return kind
    return None


def _nearer_than(kind: str) -> list[str]:
    days = next(days for days, known in REMINDER_MARKS if known == kind)
    return [known for fewer, known in REMINDER_MARKS if fewer < days]


@transaction.atomic
def _send_renewal_reminder(subscription_id: int, now: datetime) -> bool:
    subscription = _locked(subscription_id)
    if subscription is None or subscription.status != Status.ACTIVE or subscription.current_period_end is None:
        return False
    kind = _due_reminder(_days_until(subscription.current_period_end, now))
    if kind is None:
        return False
    if subscription.notices.filter(key=_period_key(subscription), kind__in=_nearer_than(kind)).exists():
        return False  # a nearer reminder already went for this period
    return _record_notice(subscription, kind)


# Card charge notices -----------------------------------------------------------------------------------------


def send_charge_notices(now: datetime | None = None) -> int:
    """Tell the billing contacts 3 days ahead what their card will be charged, and when (caught up until the day)."""
    now = now or timezone.now()
    due = Subscription.objects.filter(
        _ending_within(CHARGE_NOTICE_DAYS, now),
        status=Status.ACTIVE,
        payment_method=Subscription.PaymentMethod.CARD,
        auto_renew=True,
        cancel_at_period_end=False,
    )
    return _each(due, lambda pk: _send_charge_notice(pk, now))


@transaction.atomic
def _send_charge_notice(subscription_id: int, now: datetime) -> bool:
    subscription = _locked(subscription_id)
    if subscription is None or subscription.status != Status.ACTIVE or not _charges_card(subscription):
        return False
    if (
        subscription.current_period_end is None
        or not 0 < _days_until(subscription.current_period_end, now) <= CHARGE_NOTICE_DAYS
    ):
        return False
    return _record_notice(subscription, Kind.CHARGE_NOTICE)


# Failed payments ---------------------------------------------------------------------------------------------


@transaction.atomic
def send_payment_failed_notice(subscription_id: int) -> None:
    """Ask the billing contacts to fix the card, once per period. Call it after recording the subscription as
    past due (the Stripe webhook queues it on commit); for any other status it sends nothing."""
    subscription = _locked(subscription_id)
    if subscription is not None and subscription.status in _SENDABLE_IN[Kind.PAYMENT_FAILED]:
        _record_notice(subscription, Kind.PAYMENT_FAILED)


# Grace periods -----------------------------------------------------------------------------------------------


def start_grace_periods(now: datetime | None = None) -> int:
    """Move unpaid renewals into grace: past-due payments, and renewing memberships still active a day after
    their period ended (an invoice not yet paid). Benefits continue until ``BILLING_GRACE_DAYS`` after the
    period ended. Each move is audited and e-mailed once."""
    now = now or timezone.now()
    due = Subscription.objects.filter(
        Q(status=Status.PAST_DUE)
        | Q(
            status=Status.ACTIVE,
            current_period_end__lte=now - RENEWAL_SETTLE_TIME,
            auto_renew=True,
            cancel_at_period_end=False,
        )
    )
    return _each(due, lambda pk: _start_grace_period(pk, now))


def _needs_grace(subscription: Subscription, now: datetime) -> bool:
    if subscription.status == Status.PAST_DUE:
        return True
    ended = subscription.current_period_end is not None and subscription.current_period_end <= now - RENEWAL_SETTLE_TIME
    return subscription.status == Status.ACTIVE and _renews(subscription) and ended


def _invoice_due(subscription: Subscription) -> datetime | None:
    """The due date of the subscription's latest open invoice (a card renewal's invoice has none)."""
    invoice = subscription.invoices.filter(status=Invoice.Status.OPEN, due_date__isnull=False).order_by("-due_date")
    return invoice.values_list("due_date", flat=True).first()


def _payment_due_since(subscription: Subscription, now: datetime) -> datetime:
    """When the missing payment fell due: an open invoice's due date (a public body has 30 days to pay); else the
    renewal date, which is the period end, or the new period's start once Stripe has moved the period on (it does
    as it raises the renewal invoice)."""
    for moment in (_invoice_due(subscription), subscription.current_period_end, subscription.current_period_start):
        if moment is not None and moment <= now:
            return moment
    return now


@transaction.atomic
def _start_grace_period(subscription_id: int, now: datetime) -> bool:
    subscription = _locked(subscription_id)
    if subscription is None or not _needs_grace(subscription, now):
        return False
    grace_ends_at = _payment_due_since(subscription, now) + _grace_days()
    _change_status(
        subscription,
        Status.GRACE,
        "billing.subscription.grace_started",
        f"{subscription.organisation}'s {subscription.tier} membership is unpaid: grace period until "
        f"{long_date(grace_ends_at)}",
        grace_ends_at=grace_ends_at,
    )
    if grace_ends_at > now:  # otherwise it lapses in this same run, and that e-mail says all there is to say
        _record_notice(subscription, Kind.GRACE_STARTED)
    return True


# Lapses ------------------------------------------------------------------------------------------------------


def lapse_expired(now: datetime | None = None) -> int:
    """End memberships whose time is up, each audited and e-mailed once: grace periods that ran out, invoices
    for new memberships unpaid after ``BILLING_GRACE_DAYS``, and memberships set not to renew whose period ended.
    The organisation loses its tier's perks and members-only content (see ``is_entitled``)."""
    now = now or timezone.now()
    due = Subscription.objects.filter(
        Q(status=Status.GRACE, grace_ends_at__lte=now)
        | (
            Q(status=Status.PENDING, payment_method=Subscription.PaymentMethod.INVOICE)
            & (Q(grace_ends_at__lte=now) | Q(grace_ends_at__isnull=True, created_at__lte=now - _grace_days()))
        )
        | (Q(status=Status.ACTIVE, current_period_end__lte=now) & (Q(auto_renew=False) | Q(cancel_at_period_end=True)))
    )
    return _each(due, lambda pk: _lapse(pk, now))


def _lapse_due(subscription: Subscription, now: datetime) -> bool:
    if subscription.status == Status.GRACE:
        return subscription.grace_ends_at is not None and subscription.grace_ends_at <= now
    if subscription.status == Status.PENDING:
        # Unpaid past its invoice's due date (or, before the invoice is known, its creation) and the grace days.
        deadline = subscription.grace_ends_at or (_invoice_due(subscription) or subscription.created_at) + _grace_days()
        return subscription.payment_method == Subscription.PaymentMethod.INVOICE and deadline <= now
    ended = subscription.current_period_end is not None and subscription.current_period_end <= now
    return subscription.status == Status.ACTIVE and not _renews(subscription) and ended


@transaction.atomic
def _lapse(subscription_id: int, now: datetime) -> bool:
    subscription = _locked(subscription_id)
    if subscription is None or not _lapse_due(subscription, now):
        return False
    unpaid = subscription.status != Status.ACTIVE
    _record_lapse(subscription, "was not paid" if unpaid else "was not renewed", now)
    if unpaid:  # Stripe must not renew it next year; its open invoice stays payable (a late payment reinstates)
        from membership import tasks

        queue_on_commit(tasks.stop_renewing_after_lapse, subscription.pk)
    return True


def record_ended_at_stripe(subscription: Subscription, ended_at: datetime, *, unpaid: bool = False) -> None:
    """Stripe ended a membership (``customer.subscription.deleted``), maybe before the daily job came to it: one set
    to end with its period, or (``unpaid``) one whose payment Stripe stopped retrying, maybe before its grace period
    ran out. Record the lapse as the job does, audited and e-mailed once, so the member hears that it has ended
    whichever comes first (in demo mode only the job does). Stripe has ended it, so there is no renewal to stop.
    The caller holds the row's lock."""
    _record_lapse(subscription, "was not paid" if unpaid else "was not renewed", ended_at)


def _record_lapse(subscription: Subscription, reason: str, ended_at: datetime) -> None:
    _change_status(
        subscription,
        Status.LAPSED,
        "billing.subscription.lapsed",
        f"{subscription.organisation}'s {subscription.tier} membership lapsed: it {reason}",
        ended_at=ended_at,
    )
    _record_notice(subscription, Kind.LAPSED)


# Sending -----------------------------------------------------------------------------------------------------


@transaction.atomic
def send_billing_email(subscription_id: int, kind: str) -> None:
    """Send one billing e-mail if it is still due, and mark its notice delivered. Called by the e-mail task.

    Due: its notice is recorded for the current period and not yet delivered, and the subscription is still in a
    state the e-mail describes. The notice's row stays locked from the check to the commit, so two workers given
    the same task send it once. If sending fails, nothing is marked and the task (or the daily job) tries again.
    """
    subscription = (
        Subscription.objects.select_related("organisation__billing_contact", "tier", "scheduled_tier")
        .filter(pk=subscription_id)
        .first()
    )
    if subscription is None or kind not in _TEMPLATES:
        return
    notice = (
        BillingNotice.objects.select_for_update()
        .filter(subscription=subscription, kind=kind, key=_period_key(subscription))
        .first()
    )
    if notice is None or notice.delivered_at is not None or not _still_due(subscription, kind):
        return
    recipients = billing_recipients(subscription.organisation)
    if recipients:
        send_email(f"membership/emails/{_TEMPLATES[kind]}", recipients, _email_context(subscription, kind))
    notice.delivered_at = timezone.now()
    notice.save(update_fields=["delivered_at"])


def _still_due(subscription: Subscription, kind: str) -> bool:
    if subscription.status not in _SENDABLE_IN[kind]:
        return False
    if kind == Kind.LAPSED and _rejoined(subscription):
        return False  # old news: the organisation has started a membership again since
    return kind != Kind.CHARGE_NOTICE or _charges_card(subscription)


def _rejoined(subscription: Subscription) -> bool:
    live = Subscription.objects.live().filter(organisation=subscription.organisation_id)
    return live.exclude(pk=subscription.pk).exists()


def redeliver_notices(now: datetime | None = None) -> int:
    """Queue again the e-mail of every notice recorded between an hour and a week ago and still undelivered, whose
    subscription is still in a state it describes: what a lost task or a dead worker left unsent. A lapse notice is
    not sent once the organisation has started a membership again."""
    from membership import tasks

    now = now or timezone.now()
    still_sendable = Q()
    for kind, statuses in _SENDABLE_IN.items():
        still_sendable |= Q(kind=kind, subscription__status__in=statuses)
    rejoined = Q(kind=Kind.LAPSED, subscription__organisation__subscriptions__status__in=Subscription.LIVE_STATUSES)
    undelivered = BillingNotice.objects.filter(
        still_sendable,
        delivered_at__isnull=True,
        queued_at__lte=now - REDELIVER_AFTER,
        queued_at__gt=now - REDELIVER_FOR,
    ).exclude(rejoined)
    pairs = list(undelivered.values_list("subscription_id", "kind"))
    with transaction.atomic():  # through the outbox, as every job is: a broker outage delays them, loses none
        for subscription_id, kind in pairs:
            queue_on_commit(tasks.send_billing_email, subscription_id, kind)
    return len(pairs)


def _renewal_terms(subscription: Subscription, kind: str) -> tuple[Tier, int]:
    """The tier and price (pence before VAT) the e-mail quotes: for a notice about the coming renewal, those it
    renews at, which a downgrade scheduled for the renewal changes; otherwise the current ones."""
    scheduled = subscription.scheduled_tier
    if kind in _ABOUT_THE_RENEWAL and scheduled is not None and _renews(subscription):
        amount = price_for(scheduled, subscription.organisation, subscription.interval)
        if amount is not None:
            return scheduled, amount
    return subscription.tier, subscription.amount_pence


def _online_price(subscription: Subscription, kind: str, amount: int) -> str | None:
    """For a membership the team bills that could move online: the tier's price now, which paying online from the
    billing page charges at the renewal, when it differs from the price on record (an imported one)."""
    if kind not in _ABOUT_THE_RENEWAL or not may_pay_online(subscription):
        return None
    online = price_for(subscription.tier, subscription.organisation, subscription.interval)
    return format_pence(online) if online is not None and online != amount else None


_ABOUT_THE_RENEWAL = {Kind.RENEWAL_60, Kind.RENEWAL_30, Kind.RENEWAL_7, Kind.CHARGE_NOTICE}


def _email_context(subscription: Subscription, kind: str) -> dict:
    tier, amount = _renewal_terms(subscription, kind)
    return {
        "subscription": subscription,
        "organisation": subscription.organisation,
        "tier": tier,
        "moving_from": subscription.tier if tier != subscription.tier else None,
        "price": format_pence(amount),
        "total": format_pence(with_vat(amount)),
        "vat_rate": settings.VAT_RATE_PERCENT,
        "per": "month" if subscription.interval == Subscription.Interval.MONTH else "year",
        "renews": _renews(subscription),
        "by_card": subscription.payment_method == Subscription.PaymentMethod.CARD,
        "billed_online": billed_online(subscription),
        "may_pay_online": may_pay_online(subscription),
        "online_price": _online_price(subscription, kind, amount),
        "period_end": subscription.current_period_end,
        "link": billing_page_url(subscription.organisation),
    }
