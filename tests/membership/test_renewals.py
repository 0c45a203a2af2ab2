"""Renewals and lapses: reminders, card charge notices, failed payments, grace periods and lapses.

Every job takes ``now=``; the e-mails they queue run through ``django_capture_on_commit_callbacks``.
"""

import threading
from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django.utils.html import strip_tags

from membership import billing, renewals, tasks
from membership.models import AuditEntry, BillingNotice, Invoice, OrganisationMember, Subscription, Tier, TierPrice
from tests.conftest import in_two_threads, require, two_workers_at_once
from tests.factories import add_member, make_organisation, make_user

Kind = BillingNotice.Kind
Status = Subscription.Status

NOW = timezone.make_aware(datetime(2027, 1, 14, 6, 30))  # the morning run, UK time
BILLING = "accounts@tyne-analytics.example"
CONTACT = "finance@tyne-analytics.example"


def _days_ahead(days: int, hour: int = 10) -> datetime:
    return timezone.make_aware(datetime.combine(NOW.date() + timedelta(days=days), time(hour)))


@pytest.fixture
def tier(db):
    return Tier.objects.create(name="Growth", slug="growth")


@pytest.fixture
def organisation(db):
    contact = make_user(CONTACT)
    organisation = make_organisation("Tyne Analytics", billing_email=BILLING, billing_contact=contact)
    add_member(organisation, make_user("admin@tyne-analytics.example"), OrganisationMember.Role.ADMIN)
    return organisation


def _subscribe(organisation, tier, *, ends, status=Status.ACTIVE, **fields) -> Subscription:
    fields.setdefault("amount_pence", 123_400)
    return Subscription.objects.create(
        organisation=organisation, tier=tier, status=status, current_period_end=ends, **fields
    )


def _another(tier, name: str, **fields) -> Subscription:
    organisation = make_organisation(name, billing_email=f"billing@{name.lower().replace(' ', '-')}.example")
    return _subscribe(organisation, tier, **fields)


@pytest.fixture
def run(db, django_capture_on_commit_callbacks):
    """Run a job and then the e-mails it queued, as a worker would once the transaction commits.

    It asks for ``db`` so the database is set up before ``mailoutbox``: setting it up replaces the outbox list.
    """

    def run(job, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return job(*args, **kwargs)

    return run


def _html(message) -> str:
    return message.alternatives[0][0]


def _bodies(message) -> tuple[str, str]:
    """The text body, and the HTML body's words without their tags."""
    return message.body, " ".join(strip_tags(_html(message)).split())


# Renewal reminders -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "kind"), [(60, Kind.RENEWAL_60), (30, Kind.RENEWAL_30), (7, Kind.RENEWAL_7)])
def test_it_reminds_the_billing_contacts_at_60_30_and_7_days(run, mailoutbox, organisation, tier, days, kind):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(days))

    assert run(renewals.send_renewal_reminders, now=NOW) == 1

    [message] = mailoutbox
    assert message.to == [BILLING, CONTACT]
    renewal_date = renewals.long_date(subscription.current_period_end)
    assert message.subject == f"Tyne Analytics's Growth membership renews on {renewal_date}"
    for body in (message.body, _html(message)):
        assert "Growth" in body
        assert "£1,234.00 plus VAT a year" in body
        assert "your card will be charged" in body
        assert "http://127.0.0.1:8000/my/org/tyne-analytics/billing/" in body
    assert BillingNotice.objects.filter(
        subscription=subscription, kind=kind, key=timezone.localdate(subscription.current_period_end).isoformat()
    ).exists()


def test_it_names_the_renewal_date_as_members_read_it(run, mailoutbox, organisation, tier):
    _subscribe(organisation, tier, ends=_days_ahead(60))
    run(renewals.send_renewal_reminders, now=NOW)
    assert "15 March 2027" in mailoutbox[0].subject
    assert "renews on 15 March 2027" in mailoutbox[0].body


def test_it_tells_invoice_payers_about_the_invoice_and_their_po_number(run, mailoutbox, organisation, tier):
    _subscribe(organisation, tier, ends=_days_ahead(30), payment_method="invoice", po_number="PO-4471")

    run(renewals.send_renewal_reminders, now=NOW)

    [message] = mailoutbox
    for body in (message.body, _html(message)):
        assert "we will send an invoice, payable within 30 days, quoting your PO number PO-4471" in body
        assert "card will be charged" not in body


def test_it_names_the_tier_and_price_a_scheduled_downgrade_renews_at(run, mailoutbox, organisation, tier):
    starter = Tier.objects.create(name="Starter", slug="starter")
    TierPrice.objects.create(
        tier=starter,
        organisation_type=organisation.organisation_type,
        size_band=organisation.size_band,
        annual_pence=60_000,
    )
    _subscribe(organisation, tier, ends=_days_ahead(30), payment_method="invoice", scheduled_tier=starter)

    run(renewals.send_renewal_reminders, now=NOW)

    [message] = mailoutbox
    for body in _bodies(message):
        assert "Tyne Analytics's Starter membership" in body
        assert "moves from Growth to Starter at this renewal" in body
        assert "Price: £600.00 plus VAT a year." in body
        assert "£1,234.00" not in body


def test_it_asks_for_a_missing_po_number_only_where_one_is_needed(run, mailoutbox, tier):
    needs_po = _another(tier, "Council", ends=_days_ahead(30), payment_method="invoice")
    needs_po.organisation.needs_purchase_order = True
    needs_po.organisation.save()
    _another(tier, "Charity", ends=_days_ahead(30), payment_method="invoice")

    run(renewals.send_renewal_reminders, now=NOW)

    bodies = {message.to[0]: message.body for message in mailoutbox}
    assert "please reply to this e-mail with it" in bodies["billing@council.example"]
    assert "payable within 30 days." in bodies["billing@charity.example"]
    assert "PO number" not in bodies["billing@charity.example"]


def test_it_tells_a_membership_that_will_not_renew_that_it_ends(run, mailoutbox, organisation, tier):
    _subscribe(organisation, tier, ends=_days_ahead(30), cancel_at_period_end=True)

    run(renewals.send_renewal_reminders, now=NOW)

    [message] = mailoutbox
    assert message.subject == f"Tyne Analytics's Growth membership ends on {renewals.long_date(_days_ahead(30))}"
    for body in _bodies(message):
        assert f"Your membership ends on {renewals.long_date(_days_ahead(30))}" in body
        assert "Renew to keep your benefits" in body
        assert "will be charged" not in body
        assert "renews on" not in body


def test_it_falls_back_to_the_admins_when_there_is_no_billing_contact(run, mailoutbox, tier):
    organisation = make_organisation("Wear Robotics")
    add_member(organisation, make_user("boss@wear-robotics.example"), OrganisationMember.Role.ADMIN)
    add_member(organisation, make_user("staff@wear-robotics.example"))
    _subscribe(organisation, tier, ends=_days_ahead(7))

    run(renewals.send_renewal_reminders, now=NOW)

    assert mailoutbox[0].to == ["boss@wear-robotics.example"]


def test_it_writes_once_to_a_billing_contact_who_is_also_the_billing_address(db, organisation):
    organisation.billing_email = CONTACT.upper()
    assert renewals.billing_recipients(organisation) == [CONTACT.upper()]


def test_it_sends_each_reminder_once_however_often_the_job_runs(run, mailoutbox, organisation, tier):
    _subscribe(organisation, tier, ends=_days_ahead(30))

    assert run(renewals.send_renewal_reminders, now=NOW) == 1
    assert run(renewals.send_renewal_reminders, now=NOW) == 0
    assert run(renewals.send_renewal_reminders, now=NOW.replace(hour=23, minute=50)) == 0  # same day, later hour
    assert len(mailoutbox) == 1


def test_two_workers_running_the_job_at_once_send_one_reminder(transactional_db, mailoutbox, monkeypatch, tier):
    require(connection.vendor == "postgresql", "PostgreSQL (set DATABASE_URL) to run the job twice at once")
    subscription = _another(tier, "Race", ends=_days_ahead(30))
    both_found_it = threading.Barrier(2)
    lock = renewals._locked

    def lock_together(subscription_id):
        both_found_it.wait(timeout=10)  # both runs have read the subscription before either locks it
        return lock(subscription_id)

    monkeypatch.setattr(renewals, "_locked", lock_together)
    results = []

    in_two_threads(lambda: results.append(renewals.send_renewal_reminders(now=NOW)))

    assert sorted(results) == [0, 1]
    assert subscription.notices.count() == 1
    assert len(mailoutbox) == 1


def test_it_sends_60_30_and_7_once_each_over_daily_runs_at_varying_hours(run, mailoutbox, organisation, tier):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(80))
    for day in range(80):
        run(renewals.send_renewal_reminders, now=NOW + timedelta(days=day, hours=day % 12))

    kinds = list(subscription.notices.order_by("queued_at", "pk").values_list("kind", flat=True))
    assert kinds == [Kind.RENEWAL_60, Kind.RENEWAL_30, Kind.RENEWAL_7]
    assert len(mailoutbox) == 3


def test_it_catches_up_a_missed_30_day_reminder(run, mailoutbox, organisation, tier):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(25))
    BillingNotice.objects.create(
        subscription=subscription, kind=Kind.RENEWAL_60, key=renewals._period_key(subscription)
    )

    assert run(renewals.send_renewal_reminders, now=NOW) == 1

    assert subscription.notices.filter(kind=Kind.RENEWAL_30).exists()
    assert len(mailoutbox) == 1


def test_it_never_sends_the_60_day_reminder_after_the_30(run, mailoutbox, organisation, tier):
    # The job was down from day 61 to day 29: the 60-day reminder is lost for good, the 30 goes.
    subscription = _subscribe(organisation, tier, ends=_days_ahead(29))
    run(renewals.send_renewal_reminders, now=NOW)
    for day in range(1, 29):
        run(renewals.send_renewal_reminders, now=NOW + timedelta(days=day))

    kinds = list(subscription.notices.order_by("queued_at", "pk").values_list("kind", flat=True))
    assert kinds == [Kind.RENEWAL_30, Kind.RENEWAL_7]


def test_it_sends_no_earlier_reminder_once_a_nearer_one_went(run, mailoutbox, organisation, tier):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(45))
    BillingNotice.objects.create(
        subscription=subscription, kind=Kind.RENEWAL_30, key=renewals._period_key(subscription)
    )

    assert run(renewals.send_renewal_reminders, now=NOW) == 0
    assert mailoutbox == []


def test_it_sends_no_reminder_beyond_60_days_on_the_day_or_for_monthly_or_ended_memberships(run, mailoutbox, tier):
    _another(tier, "Far Off", ends=_days_ahead(61))
    _another(tier, "Renews Today", ends=_days_ahead(0, hour=23))
    _another(tier, "Monthly", ends=_days_ahead(7), interval=Subscription.Interval.MONTH)
    _another(tier, "Lapsed", ends=_days_ahead(7), status=Status.LAPSED)
    _another(tier, "Pending", ends=_days_ahead(7), status=Status.PENDING)

    assert run(renewals.send_renewal_reminders, now=NOW) == 0
    assert mailoutbox == []


def test_it_sends_nothing_when_the_renewal_was_settled_before_the_email_went(
    db, django_capture_on_commit_callbacks, mailoutbox, organisation, tier
):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(7))
    with django_capture_on_commit_callbacks() as queued:
        renewals.send_renewal_reminders(now=NOW)
    assert len(queued) == 1

    # Paid early: the period moved on before the worker picked the e-mail up.
    Subscription.objects.filter(pk=subscription.pk).update(current_period_end=_days_ahead(372))
    queued[0]()
    assert mailoutbox == []


def test_it_writes_names_in_plain_text_unescaped(run, mailoutbox, tier):
    organisation = make_organisation("Smith & Jones", billing_email="billing@smith-jones.example")
    _subscribe(organisation, tier, ends=_days_ahead(7))

    run(renewals.send_renewal_reminders, now=NOW)

    assert mailoutbox[0].subject.startswith("Smith & Jones's Growth membership")
    assert "Smith & Jones's Growth membership" in mailoutbox[0].body
    assert "Smith &amp; Jones" in _html(mailoutbox[0])


# Card charge notices ---------------------------------------------------------------------------------------


def test_it_gives_notice_of_a_card_charge_3_days_ahead_once(run, mailoutbox, organisation, tier):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(3))

    assert run(renewals.send_charge_notices, now=NOW) == 1
    assert run(renewals.send_charge_notices, now=NOW + timedelta(hours=12)) == 0

    [message] = mailoutbox
    charge_date = renewals.long_date(subscription.current_period_end)
    assert (
        message.subject
        == f"Your card will be charged £1,480.80 on {charge_date} for Tyne Analytics's Growth membership"
    )
    for body in (message.body, _html(message)):
        assert f"On {charge_date} we will charge £1,480.80" in " ".join(strip_tags(body).split())
        assert "£1,234.00 plus VAT at 20%" in body
        assert "http://127.0.0.1:8000/my/org/tyne-analytics/billing/" in body
    assert message.to == [BILLING, CONTACT]
    assert "To change the card, or to cancel" in message.body


def test_it_catches_up_a_missed_charge_notice_before_the_charge(run, mailoutbox, organisation, tier):
    _subscribe(organisation, tier, ends=_days_ahead(1))
    assert run(renewals.send_charge_notices, now=NOW) == 1


def test_it_gives_charge_notice_only_for_cards_that_will_be_charged(run, mailoutbox, tier):
    _another(tier, "Invoice Payer", ends=_days_ahead(3), payment_method="invoice")
    _another(tier, "No Auto Renew", ends=_days_ahead(3), auto_renew=False)
    _another(tier, "Cancelling", ends=_days_ahead(3), cancel_at_period_end=True)
    _another(tier, "Overdue", ends=_days_ahead(3), status=Status.PAST_DUE)
    _another(tier, "Too Early", ends=_days_ahead(4))
    monthly = _another(tier, "Monthly Card", ends=_days_ahead(3), interval=Subscription.Interval.MONTH)

    assert run(renewals.send_charge_notices, now=NOW) == 1

    assert mailoutbox[0].to == [monthly.organisation.billing_email]
    assert "for another month" in mailoutbox[0].body


# Failed payments -------------------------------------------------------------------------------------------


def test_it_asks_for_a_new_card_once_when_a_payment_fails(run, mailoutbox, organisation, tier):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(-1), status=Status.PAST_DUE)

    run(tasks.send_payment_failed_notice.delay, subscription.pk)
    run(renewals.send_payment_failed_notice, subscription.pk)

    [message] = mailoutbox
    assert message.to == [BILLING, CONTACT]
    assert "update your card" in message.subject
    for body in (message.body, _html(message)):
        assert "http://127.0.0.1:8000/my/org/tyne-analytics/billing/" in body
        assert "update the card" in body
    assert subscription.notices.filter(kind=Kind.PAYMENT_FAILED).count() == 1


def test_it_tells_an_invoice_payer_their_invoice_is_overdue_not_to_update_a_card(run, mailoutbox, organisation, tier):
    subscription = _subscribe(
        organisation, tier, ends=_days_ahead(-1), status=Status.PAST_DUE, payment_method="invoice", po_number="PO-7"
    )

    run(renewals.send_payment_failed_notice, subscription.pk)

    [message] = mailoutbox
    assert message.subject == "Invoice overdue for Tyne Analytics's Growth membership"
    for body in _bodies(message):
        assert "The invoice for Tyne Analytics's Growth membership" in body and "PO number PO-7, is now overdue" in body
        assert "card" not in body


def test_a_membership_stripe_does_not_bill_gets_no_charge_notice_and_is_told_how_it_will_pay(
    run, mailoutbox, settings, organisation, tier
):
    """A membership recorded before online payment (an import) has no card on file: nothing will charge it."""
    settings.DEMO_PAYMENTS = False
    _subscribe(organisation, tier, ends=_days_ahead(3))
    billed = _another(tier, "Billed Online", ends=_days_ahead(3), stripe_subscription_id="sub_billed")

    assert run(renewals.send_charge_notices, now=NOW) == 1
    assert [message.to[0] for message in mailoutbox] == [billed.organisation.billing_email]

    mailoutbox.clear()
    Subscription.objects.filter(organisation=organisation).update(current_period_end=_days_ahead(7))
    TierPrice.objects.create(  # a price it can be paid at online
        tier=tier, organisation_type=organisation.organisation_type, size_band=organisation.size_band, annual_pence=1
    )
    run(renewals.send_renewal_reminders, now=NOW)
    [message] = [message for message in mailoutbox if message.to[0] == BILLING]
    for body in _bodies(message):
        assert "not set up for payment online yet. You can set it up on your billing page" in body
        assert "or reply to this e-mail and we will arrange the renewal's payment with you" in body
        assert "charged automatically" not in body

    mailoutbox.clear()  # the renewal passes unpaid: grace, and the same plain words
    Subscription.objects.filter(organisation=organisation).update(current_period_end=_days_ahead(-2))
    run(renewals.start_grace_periods, now=NOW)
    [message] = [message for message in mailoutbox if message.to[0] == BILLING]
    for body in _bodies(message):
        assert "We have not received the renewal payment" in body and "we will arrange the payment with you" in body
        assert "card" not in body


def test_it_sends_no_payment_failed_email_for_a_subscription_in_good_standing(run, mailoutbox, organisation, tier):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(20))
    run(renewals.send_payment_failed_notice, subscription.pk)
    run(renewals.send_payment_failed_notice, 999_999)
    assert mailoutbox == []


def test_it_sends_no_payment_failed_email_once_the_card_was_fixed(
    db, django_capture_on_commit_callbacks, mailoutbox, organisation, tier
):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(-1), status=Status.PAST_DUE)
    with django_capture_on_commit_callbacks() as queued:
        renewals.send_payment_failed_notice(subscription.pk)

    Subscription.objects.filter(pk=subscription.pk).update(status=Status.ACTIVE)  # paid before the e-mail went
    queued[0]()
    assert mailoutbox == []


# Grace periods ---------------------------------------------------------------------------------------------


def test_it_moves_a_past_due_subscription_into_grace(run, mailoutbox, organisation, tier):
    ended = _days_ahead(-2)
    subscription = _subscribe(organisation, tier, ends=ended, status=Status.PAST_DUE)

    assert run(renewals.start_grace_periods, now=NOW) == 1
    assert run(renewals.start_grace_periods, now=NOW + timedelta(days=1)) == 0

    subscription.refresh_from_db()
    assert subscription.status == Status.GRACE
    assert subscription.grace_ends_at == ended + timedelta(days=30)
    audit = AuditEntry.objects.get(action="billing.subscription.grace_started")
    assert audit.organisation == organisation
    assert audit.changes["status"] == ["past_due", "grace"]
    [message] = mailoutbox
    assert f"benefits continue until {renewals.long_date(ended + timedelta(days=30))}" in message.subject
    assert "update the card" in message.body


def test_it_honours_the_grace_days_setting(run, settings, organisation, tier):
    settings.BILLING_GRACE_DAYS = 14
    ended = _days_ahead(-2)
    subscription = _subscribe(organisation, tier, ends=ended, status=Status.PAST_DUE)

    run(renewals.start_grace_periods, now=NOW)

    subscription.refresh_from_db()
    assert subscription.grace_ends_at == ended + timedelta(days=14)


def test_it_counts_grace_from_the_failed_renewal_when_stripe_has_moved_the_period_on(run, organisation, tier):
    renewed = _days_ahead(-1)
    subscription = _subscribe(
        organisation, tier, ends=renewed + timedelta(days=365), current_period_start=renewed, status=Status.PAST_DUE
    )

    run(renewals.start_grace_periods, now=NOW)

    subscription.refresh_from_db()
    assert subscription.grace_ends_at == renewed + timedelta(days=30)


def test_it_counts_an_invoice_payers_grace_from_the_invoice_due_date(run, organisation, tier):
    renewed, due = _days_ahead(-31), _days_ahead(-1)
    subscription = _subscribe(
        organisation,
        tier,
        ends=renewed + timedelta(days=365),
        current_period_start=renewed,
        status=Status.PAST_DUE,
        payment_method="invoice",
    )
    Invoice.objects.create(organisation=organisation, subscription=subscription, due_date=due, amount_due_pence=1)

    run(renewals.start_grace_periods, now=NOW)

    subscription.refresh_from_db()
    assert subscription.grace_ends_at == due + timedelta(days=30)


def test_it_moves_an_unpaid_invoice_renewal_into_grace_a_day_after_the_period_ends(run, mailoutbox, tier):
    unpaid = _another(tier, "Unpaid", ends=_days_ahead(-2), payment_method="invoice", po_number="PO-9")
    just_ended = _another(tier, "Just Ended", ends=NOW - timedelta(hours=2))
    leaving = _another(tier, "Leaving", ends=_days_ahead(-2), cancel_at_period_end=True)

    assert run(renewals.start_grace_periods, now=NOW) == 1

    statuses = dict(Subscription.objects.values_list("pk", "status"))
    assert statuses == {unpaid.pk: Status.GRACE, just_ended.pk: Status.ACTIVE, leaving.pk: Status.ACTIVE}
    [message] = mailoutbox
    assert "The invoice for Unpaid's Growth membership" in message.body
    assert "PO number PO-9" in message.body


def test_it_sends_no_grace_email_when_the_grace_period_is_already_over(run, mailoutbox, organisation, tier):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(-40), status=Status.PAST_DUE)

    assert run(renewals.start_grace_periods, now=NOW) == 1

    subscription.refresh_from_db()
    assert subscription.status == Status.GRACE  # the lapse step ends it next
    assert mailoutbox == []


# Lapses ----------------------------------------------------------------------------------------------------


def test_it_lapses_a_subscription_when_its_grace_period_ends(run, mailoutbox, organisation, tier):
    subscription = _subscribe(
        organisation, tier, ends=_days_ahead(-31), status=Status.GRACE, grace_ends_at=NOW - timedelta(hours=1)
    )

    assert run(renewals.lapse_expired, now=NOW) == 1
    assert run(renewals.lapse_expired, now=NOW + timedelta(days=1)) == 0

    subscription.refresh_from_db()
    assert subscription.status == Status.LAPSED
    assert subscription.ended_at == NOW
    audit = AuditEntry.objects.get(action="billing.subscription.lapsed")
    assert audit.organisation == organisation
    assert audit.changes["status"] == ["grace", "lapsed"]
    [message] = mailoutbox
    assert message.subject == "Tyne Analytics's Growth membership has lapsed"
    assert "We have not received payment" in message.body
    assert "lapsed on 14 January 2027" in message.body
    assert subscription.notices.filter(kind=Kind.LAPSED).count() == 1
    assert not renewals.is_entitled(organisation)


def test_it_leaves_a_grace_period_that_has_not_ended(run, mailoutbox, organisation, tier):
    subscription = _subscribe(
        organisation, tier, ends=_days_ahead(-10), status=Status.GRACE, grace_ends_at=NOW + timedelta(hours=1)
    )
    assert run(renewals.lapse_expired, now=NOW) == 0
    subscription.refresh_from_db()
    assert subscription.status == Status.GRACE
    assert mailoutbox == []


def test_it_lapses_a_new_invoice_membership_left_unpaid_past_the_grace_days(run, tier):
    unpaid = _another(tier, "Unpaid", ends=None, status=Status.PENDING, payment_method="invoice")
    recent = _another(tier, "Recent", ends=None, status=Status.PENDING, payment_method="invoice")
    card = _another(tier, "Card Checkout", ends=None, status=Status.PENDING)
    Subscription.objects.filter(pk__in=[unpaid.pk, card.pk]).update(created_at=NOW - timedelta(days=31))
    Subscription.objects.filter(pk=recent.pk).update(created_at=NOW - timedelta(days=10))

    assert run(renewals.lapse_expired, now=NOW) == 1

    statuses = dict(Subscription.objects.values_list("pk", "status"))
    assert statuses == {unpaid.pk: Status.LAPSED, recent.pk: Status.PENDING, card.pk: Status.PENDING}


def test_it_gives_a_new_invoice_membership_its_payment_terms_before_the_grace_days(run, organisation, tier):
    subscription = _subscribe(organisation, tier, ends=None, status=Status.PENDING, payment_method="invoice")
    Subscription.objects.filter(pk=subscription.pk).update(created_at=NOW - timedelta(days=35))
    Invoice.objects.create(organisation=organisation, subscription=subscription, due_date=_days_ahead(-5))

    assert run(renewals.lapse_expired, now=NOW) == 0
    assert run(renewals.lapse_expired, now=_days_ahead(26)) == 1


def test_it_ends_a_membership_set_not_to_renew_when_its_period_ends(run, mailoutbox, organisation, tier):
    ended = _days_ahead(-1)
    subscription = _subscribe(organisation, tier, ends=ended, auto_renew=False)

    assert run(renewals.lapse_expired, now=NOW) == 1

    subscription.refresh_from_db()
    assert subscription.status == Status.LAPSED
    assert mailoutbox[0].subject == "Tyne Analytics's Growth membership has ended"
    assert f"was set not to renew, and it ended on {renewals.long_date(ended)}" in mailoutbox[0].body


def test_the_daily_job_runs_grace_then_lapse_then_reminders(db, django_capture_on_commit_callbacks, mailoutbox, tier):
    now = timezone.now()
    long_overdue = _another(tier, "Long Overdue", ends=now - timedelta(days=40), status=Status.PAST_DUE)
    _another(tier, "Renewing Soon", ends=now + timedelta(days=3))

    with django_capture_on_commit_callbacks(execute=True):
        counts = tasks.run_renewal_jobs()

    assert counts == {
        "grace_started": 1,
        "lapsed": 1,
        "renewal_reminders": 1,
        "charge_notices": 1,
        "notices_redelivered": 0,
    }
    long_overdue.refresh_from_db()
    assert long_overdue.status == Status.LAPSED
    # Its grace ran out before the job saw it: one e-mail says it lapsed, none says grace began.
    subjects = sorted(message.subject for message in mailoutbox)
    assert len(subjects) == 3
    assert "Long Overdue's Growth membership has lapsed" in subjects


def test_it_checks_each_subscription_again_under_its_lock(run, mailoutbox, tier):
    # What the job's query found may have changed by the time the row is locked (another worker, a webhook):
    # each step decides again on the locked row.
    just_ended = _another(tier, "Just Ended", ends=NOW - timedelta(hours=2))
    invoice = _another(tier, "Invoice", ends=_days_ahead(3), payment_method="invoice")
    renewed = _another(tier, "Renewed", ends=_days_ahead(200))
    grace = _another(tier, "Grace", ends=_days_ahead(-5), status=Status.GRACE, grace_ends_at=_days_ahead(25))

    assert run(renewals._start_grace_period, just_ended.pk, NOW) is False
    assert run(renewals._send_charge_notice, invoice.pk, NOW) is False
    assert run(renewals._send_renewal_reminder, renewed.pk, NOW) is False
    assert run(renewals._lapse, grace.pk, NOW) is False
    assert set(Subscription.objects.values_list("status", flat=True)) == {Status.ACTIVE, Status.GRACE}
    assert mailoutbox == []


# Entitlement -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "entitled"),
    [
        (Status.ACTIVE, True),
        (Status.PAST_DUE, True),
        (Status.GRACE, True),
        (Status.PENDING, False),
        (Status.LAPSED, False),
        (Status.CANCELLED, False),
    ],
)
def test_it_entitles_only_active_past_due_and_grace_subscriptions(organisation, tier, status, entitled):
    _subscribe(organisation, tier, ends=_days_ahead(10), status=status)
    assert renewals.is_entitled(organisation) is entitled
    assert renewals.entitled_tier(organisation) == (tier if entitled else None)


def test_it_entitles_no_organisation_without_a_subscription(organisation):
    assert renewals.is_entitled(organisation) is False
    assert renewals.entitled_tier(organisation) is None


def test_it_follows_the_live_subscription_not_the_lapsed_history(organisation, tier):
    enterprise = Tier.objects.create(name="Enterprise", slug="enterprise")
    _subscribe(organisation, enterprise, ends=_days_ahead(-400), status=Status.LAPSED)
    _subscribe(organisation, tier, ends=_days_ahead(100))
    assert renewals.entitled_tier(organisation) == tier


# Odds and ends ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pence", "text"), [(123_400, "£1,234.00"), (5, "£0.05"), (0, "£0.00"), (99_999_99, "£99,999.99")]
)
def test_it_formats_pence_as_pounds(pence, text):
    assert billing.format_pence(pence) == text


def test_the_renewal_jobs_are_scheduled_daily(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["run-renewal-jobs"]
    assert entry["task"] == "membership.tasks.run_renewal_jobs"
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({6}, {30})
    registered = set(tasks.run_renewal_jobs.app.tasks)
    assert {
        entry["task"],
        "membership.tasks.send_billing_email",
        "membership.tasks.send_payment_failed_notice",
    } <= registered


# Delivery: at least once --------------------------------------------------------------------------------------


def test_it_marks_a_notice_delivered_once_its_email_has_gone_and_never_sends_it_again(
    run, mailoutbox, organisation, tier
):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(7))

    run(renewals.send_renewal_reminders, now=NOW)

    notice = subscription.notices.get()
    assert notice.delivered_at is not None
    tasks.send_billing_email(subscription.pk, notice.kind)  # the broker delivers the task a second time
    assert len(mailoutbox) == 1


def test_a_notice_whose_task_was_lost_is_sent_by_a_later_run(
    run, django_capture_on_commit_callbacks, mailoutbox, organisation, tier
):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(7))
    with django_capture_on_commit_callbacks():  # the process died after the commit, before queueing the e-mail
        renewals.send_renewal_reminders(now=NOW)
    notice = subscription.notices.get()
    assert (notice.delivered_at, mailoutbox) == (None, [])
    BillingNotice.objects.filter(pk=notice.pk).update(queued_at=NOW)

    assert run(renewals.redeliver_notices, now=NOW + timedelta(minutes=50)) == 0  # it may still be in the queue
    assert run(renewals.redeliver_notices, now=NOW + timedelta(hours=2)) == 1
    assert run(renewals.redeliver_notices, now=NOW + timedelta(hours=3)) == 0

    assert len(mailoutbox) == 1
    notice.refresh_from_db()
    assert notice.delivered_at is not None


def test_a_send_that_fails_leaves_the_notice_undelivered_and_the_retry_sends_it(
    db, django_capture_on_commit_callbacks, mailoutbox, monkeypatch, organisation, tier
):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(-2), status=Status.PAST_DUE)
    with django_capture_on_commit_callbacks():
        renewals.send_payment_failed_notice(subscription.pk)

    def smtp_down(*args, **kwargs):
        raise ConnectionRefusedError("SMTP is down")

    monkeypatch.setattr(renewals, "send_email", smtp_down)
    with pytest.raises(OSError):
        renewals.send_billing_email(subscription.pk, Kind.PAYMENT_FAILED)
    assert subscription.notices.get().delivered_at is None

    monkeypatch.undo()
    renewals.send_billing_email(subscription.pk, Kind.PAYMENT_FAILED)

    assert len(mailoutbox) == 1
    assert subscription.notices.get().delivered_at is not None


def test_a_notice_no_longer_true_is_not_queued_again(run, django_capture_on_commit_callbacks, mailoutbox, tier):
    paid_early = _another(tier, "Paid Early", ends=_days_ahead(7))
    lapsed = _another(tier, "Since Lapsed", ends=_days_ahead(7))
    with django_capture_on_commit_callbacks():
        renewals.send_renewal_reminders(now=NOW)
    BillingNotice.objects.update(queued_at=NOW)
    Subscription.objects.filter(pk=lapsed.pk).update(status=Status.LAPSED)
    Subscription.objects.filter(pk=paid_early.pk).update(current_period_end=_days_ahead(372))

    assert run(renewals.redeliver_notices, now=NOW + timedelta(hours=2)) == 1  # the task finds the period moved on
    assert mailoutbox == []
    assert run(renewals.redeliver_notices, now=NOW + timedelta(days=8)) == 0  # a week on, it is given up


def test_a_lapse_notice_not_yet_delivered_is_not_sent_once_the_organisation_has_rejoined(
    run, mailoutbox, organisation, tier
):
    lapsed = _subscribe(organisation, tier, ends=_days_ahead(-35), status=Status.LAPSED, ended_at=NOW)
    BillingNotice.objects.create(subscription=lapsed, kind=Kind.LAPSED, key=renewals._period_key(lapsed), queued_at=NOW)
    _subscribe(organisation, tier, ends=_days_ahead(365))  # it joined again meanwhile

    assert run(renewals.redeliver_notices, now=NOW + timedelta(hours=2)) == 0
    run(tasks.send_billing_email, lapsed.pk, Kind.LAPSED)  # a task queued before it rejoined

    assert mailoutbox == []


def test_two_workers_given_the_same_email_send_it_once(transactional_db, mailoutbox, monkeypatch, tier):
    require(connection.vendor == "postgresql", "PostgreSQL (set DATABASE_URL) to send one notice twice at once")
    subscription = _another(tier, "Race", ends=_days_ahead(7))
    BillingNotice.objects.create(subscription=subscription, kind=Kind.RENEWAL_7, key=renewals._period_key(subscription))

    two_workers_at_once(lambda: renewals.send_billing_email(subscription.pk, Kind.RENEWAL_7), monkeypatch, renewals)

    assert len(mailoutbox) == 1


def test_the_start_of_a_grace_period_is_recorded_and_delivered_once(run, mailoutbox, organisation, tier):
    subscription = _subscribe(organisation, tier, ends=_days_ahead(-2), status=Status.PAST_DUE)

    run(renewals.start_grace_periods, now=NOW)
    run(renewals.redeliver_notices, now=NOW + timedelta(hours=2))

    notice = subscription.notices.get(kind=Kind.GRACE_STARTED)
    assert notice.delivered_at is not None
    assert len(mailoutbox) == 1


# Entitlement between the daily runs ----------------------------------------------------------------------------


def test_a_grace_period_that_has_run_out_entitles_nothing_even_before_the_job_lapses_it(organisation, tier):
    _subscribe(
        organisation,
        tier,
        ends=_days_ahead(-31),
        status=Status.GRACE,
        grace_ends_at=timezone.now() - timedelta(hours=1),
    )
    assert renewals.is_entitled(organisation) is False
    assert renewals.entitled_tier(organisation) is None


@pytest.mark.parametrize("fields", [{"cancel_at_period_end": True}, {"auto_renew": False}])
def test_a_membership_set_not_to_renew_entitles_nothing_once_its_period_is_over(organisation, tier, fields):
    subscription = _subscribe(organisation, tier, ends=timezone.now() + timedelta(hours=1), **fields)
    assert renewals.is_entitled(organisation) is True
    Subscription.objects.filter(pk=subscription.pk).update(current_period_end=timezone.now() - timedelta(minutes=1))
    assert renewals.is_entitled(organisation) is False


def test_a_renewing_membership_keeps_its_benefits_while_the_renewal_settles(organisation, tier):
    _subscribe(organisation, tier, ends=timezone.now() - timedelta(hours=2))
    assert renewals.entitled_tier(organisation) == tier
