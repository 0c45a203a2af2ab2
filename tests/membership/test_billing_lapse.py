"""After a lapse: Stripe is told never to renew it, a late payment for the lapsed period reinstates it, and a new
membership never runs alongside the old one at Stripe."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from membership import billing, billing_changes, renewals
from membership.models import AuditEntry, BillingNotice, Invoice, Subscription
from tests.membership.conftest import deliver, fresh

Status = Subscription.Status


def moment(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def actions(subscription: Subscription) -> list[str]:
    entries = AuditEntry.objects.filter(organisation_id=subscription.organisation_id).order_by("id")
    return list(entries.values_list("action", flat=True))


@pytest.fixture
def run(db, django_capture_on_commit_callbacks):
    """Run a job, then what it queued for after the commit (e-mails, the Stripe call), as a worker would."""

    def run(job, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return job(*args, **kwargs)

    return run


@pytest.fixture
def lapsed_card(client, run, fake_stripe, card_member) -> dict:
    """The card renewal failed, Stripe kept retrying, the grace period ran out and the membership lapsed."""
    stripe_id = card_member.subscription.stripe_subscription_id
    failed = fake_stripe.renew(stripe_id, paid=False)
    with_failure = run(deliver, client, "invoice.payment_failed", failed)
    assert with_failure.status_code == 200
    renewed_at = moment(fake_stripe.get(stripe_id)["items"]["data"][0]["current_period_start"])
    run(renewals.start_grace_periods, now=renewed_at + timedelta(days=2))
    assert run(renewals.lapse_expired, now=renewed_at + timedelta(days=31)) == 1
    assert fresh(card_member.subscription).status == Status.LAPSED
    return failed


def test_a_lapse_for_want_of_payment_tells_stripe_never_to_renew_it(fake_stripe, card_member, lapsed_card, run):
    subscription = card_member.subscription
    path = f"/v1/subscriptions/{subscription.stripe_subscription_id}"

    [call] = fake_stripe.calls("POST", path)
    assert (call.params, call.idempotency_key) == ({"cancel_at_period_end": "true"}, f"lapse-sub-{subscription.pk}")
    assert fake_stripe.get(subscription.stripe_subscription_id)["cancel_at_period_end"] is True
    assert "billing.subscription.renewal_stopped" in actions(subscription)
    # Run again (a retried task): nothing more is asked of Stripe.
    billing_changes.stop_renewing_after_lapse(subscription.pk)
    assert len(fake_stripe.calls("POST", path)) == 1


def test_a_membership_that_simply_was_not_renewed_asks_nothing_of_stripe(fake_stripe, card_member, run):
    subscription = card_member.subscription
    Subscription.objects.filter(pk=subscription.pk).update(cancel_at_period_end=True)

    assert run(renewals.lapse_expired, now=subscription.current_period_end + timedelta(minutes=5)) == 1

    assert not fake_stripe.calls("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")


def test_a_membership_stripe_ends_as_it_was_set_to_lapses_with_its_email_as_the_job_would(
    client, run, fake_stripe, card_member, mailoutbox
):
    subscription = card_member.subscription
    stripe_id = subscription.stripe_subscription_id
    billing_changes.cancel_at_period_end(card_member.organisation, card_member.admin)
    assert deliver(client, "customer.subscription.updated", fake_stripe.get(stripe_id)).status_code == 200
    ended = fresh(subscription).current_period_end

    # At the period's end Stripe ends it and says so at once, before the daily job runs.
    fake_stripe.set(stripe_id, status="canceled", ended_at=int(ended.timestamp()))
    assert run(deliver, client, "customer.subscription.deleted", fake_stripe.get(stripe_id)).status_code == 200
    assert run(renewals.lapse_expired, now=ended + timedelta(hours=6)) == 0

    subscription = fresh(subscription)
    assert (subscription.status, subscription.ended_at) == (Status.LAPSED, ended)
    assert subscription.notices.filter(kind=BillingNotice.Kind.LAPSED).count() == 1
    assert [message.subject for message in mailoutbox if "has ended" in message.subject]
    assert actions(subscription)[-1] == "billing.subscription.lapsed"


def _stripe_gives_up(fake_stripe, stripe_id: str, ended: datetime, reason: str | None) -> dict:
    """Stripe's retries of the renewal ran out and its settings end the subscription there and then."""
    details = {"reason": reason} if reason else None
    return fake_stripe.set(
        stripe_id,
        status="canceled",
        ended_at=int(ended.timestamp()),
        canceled_at=int(ended.timestamp()),
        cancellation_details=details,
    )


@pytest.mark.parametrize(
    ("ours", "reason"),
    [
        (Status.PAST_DUE, "payment_failed"),
        (Status.GRACE, "payment_failed"),
        (Status.PAST_DUE, None),  # no reason given: ending while unpaid says enough
        (Status.ACTIVE, "payment_failed"),  # the failures' own events not here yet
    ],
)
def test_a_membership_stripe_ends_for_want_of_payment_lapses_with_its_email_once(
    client, run, fake_stripe, card_member, mailoutbox, ours, reason
):
    subscription = card_member.subscription
    stripe_id = subscription.stripe_subscription_id
    failed = fake_stripe.renew(stripe_id, paid=False)
    if ours != Status.ACTIVE:
        assert run(deliver, client, "invoice.payment_failed", failed).status_code == 200
    renewed_at = moment(fake_stripe.get(stripe_id)["items"]["data"][0]["current_period_start"])
    if ours == Status.GRACE:
        run(renewals.start_grace_periods, now=renewed_at + timedelta(days=2))
    assert fresh(subscription).status == ours

    # Three weeks on, before the grace period is over, Stripe stops retrying and ends the subscription.
    ended = renewed_at + timedelta(days=21)
    gave_up = _stripe_gives_up(fake_stripe, stripe_id, ended, reason)
    assert run(deliver, client, "customer.subscription.deleted", gave_up).status_code == 200

    lapsed = fresh(subscription)
    assert (lapsed.status, lapsed.ended_at) == (Status.LAPSED, ended)
    entry = AuditEntry.objects.get(organisation_id=subscription.organisation_id, action="billing.subscription.lapsed")
    assert entry.changes["status"] == [ours, Status.LAPSED]
    assert "was not paid" in entry.summary
    assert "billing.subscription.cancelled" not in actions(subscription)
    assert lapsed.notices.filter(kind=BillingNotice.Kind.LAPSED).count() == 1
    assert [message.subject for message in mailoutbox if "has lapsed" in message.subject] == [
        "Tyne Robotics's Growth membership has lapsed"
    ]
    # Redelivered, and the daily job coming to it later: nothing more is recorded or sent.
    assert run(deliver, client, "customer.subscription.deleted", gave_up).status_code == 200
    assert run(renewals.lapse_expired, now=renewed_at + timedelta(days=40)) == 0
    assert actions(subscription).count("billing.subscription.lapsed") == 1
    assert BillingNotice.objects.filter(subscription=subscription, kind=BillingNotice.Kind.LAPSED).count() == 1
    assert len([message for message in mailoutbox if "has lapsed" in message.subject]) == 1


def test_a_membership_the_member_cancels_at_stripe_while_unpaid_is_cancelled_not_lapsed(
    client, run, fake_stripe, card_member, mailoutbox
):
    subscription = card_member.subscription
    stripe_id = subscription.stripe_subscription_id
    failed = fake_stripe.renew(stripe_id, paid=False)
    assert run(deliver, client, "invoice.payment_failed", failed).status_code == 200

    # The admin cancels in Stripe's customer portal, at once, rather than fix the card.
    ended = moment(int(time.time()))
    cancelled = _stripe_gives_up(fake_stripe, stripe_id, ended, "cancellation_requested")
    assert run(deliver, client, "customer.subscription.deleted", cancelled).status_code == 200

    subscription = fresh(subscription)
    assert (subscription.status, subscription.ended_at) == (Status.CANCELLED, ended)
    assert actions(subscription)[-1] == "billing.subscription.cancelled"
    assert "billing.subscription.lapsed" not in actions(subscription)
    assert not subscription.notices.filter(kind=BillingNotice.Kind.LAPSED).exists()
    assert not [message for message in mailoutbox if "has lapsed" in message.subject]


def test_stripe_ending_a_membership_the_job_has_lapsed_already_changes_nothing(
    client, run, fake_stripe, card_member, lapsed_card, mailoutbox
):
    subscription = card_member.subscription
    entries_before = AuditEntry.objects.count()

    gave_up = _stripe_gives_up(fake_stripe, subscription.stripe_subscription_id, timezone.now(), "payment_failed")
    assert run(deliver, client, "customer.subscription.deleted", gave_up).status_code == 200

    assert fresh(subscription).status == Status.LAPSED
    assert AuditEntry.objects.count() == entries_before
    assert subscription.notices.filter(kind=BillingNotice.Kind.LAPSED).count() == 1
    assert len([message for message in mailoutbox if "has lapsed" in message.subject]) == 1


def test_a_late_card_payment_for_the_lapsed_period_reinstates_the_membership(
    client, fake_stripe, card_member, lapsed_card
):
    subscription, organisation = card_member.subscription, card_member.organisation
    assert not renewals.is_entitled(organisation)
    lapsed = fresh(subscription)
    # Stripe's last retry went through after all.
    paid = fake_stripe.set(lapsed_card["id"], status="paid", amount_paid=lapsed_card["amount_due"])
    fake_stripe.set(subscription.stripe_subscription_id, status="active")

    assert deliver(client, "invoice.paid", paid).status_code == 200

    reinstated = fresh(subscription)
    assert (reinstated.status, reinstated.ended_at, reinstated.grace_ends_at) == (Status.ACTIVE, None, None)
    assert reinstated.cancel_at_period_end is True  # the lapse stopped the renewal; the admin may take that back
    entry = AuditEntry.objects.get(action="billing.subscription.reinstated")
    assert entry.changes == {
        "status": ["lapsed", "active"],
        "grace_ends_at": [str(lapsed.grace_ends_at), None],
        "ended_at": [str(lapsed.ended_at), None],
    }
    assert renewals.is_entitled(organisation)
    assert renewals.entitled_tier(organisation).name == "Growth"
    assert Invoice.objects.get(stripe_invoice_id=paid["id"]).status == Invoice.Status.PAID
    # The admin keeps it renewing, as before the lapse.
    billing_changes.resume_membership(organisation, card_member.admin)
    assert fake_stripe.get(subscription.stripe_subscription_id)["cancel_at_period_end"] is False


def test_events_about_a_lapsed_membership_that_is_still_unpaid_change_nothing(
    client, fake_stripe, card_member, lapsed_card
):
    subscription = card_member.subscription
    entries_before = AuditEntry.objects.count()

    deliver(client, "customer.subscription.updated", fake_stripe.get(subscription.stripe_subscription_id))
    deliver(client, "invoice.payment_failed", lapsed_card)
    deliver(client, "invoice.paid", lapsed_card)  # a forged-looking trigger: Stripe's own copy says it is open

    assert fresh(subscription).status == Status.LAPSED
    assert AuditEntry.objects.count() == entries_before


def test_a_payment_for_a_period_that_has_ended_records_the_money_but_does_not_reinstate(
    client, fake_stripe, card_member, lapsed_card
):
    subscription = card_member.subscription
    stripe_subscription = fake_stripe.set(subscription.stripe_subscription_id, status="active")
    stripe_subscription["items"]["data"][0]["current_period_end"] = int(time.time()) - 3600
    paid = fake_stripe.set(lapsed_card["id"], status="paid", amount_paid=lapsed_card["amount_due"])

    deliver(client, "invoice.paid", paid)

    assert fresh(subscription).status == Status.LAPSED
    assert Invoice.objects.get(stripe_invoice_id=paid["id"]).status == Invoice.Status.PAID
    assert "billing.invoice.paid_after_lapse" in actions(subscription)
    assert "billing.subscription.reinstated" not in actions(subscription)


def test_a_late_payment_does_not_reinstate_once_the_organisation_has_joined_again(
    client, fake_stripe, card_member, lapsed_card, scale
):
    subscription = card_member.subscription
    Subscription.objects.create(
        organisation=card_member.organisation, tier=scale, status=Status.ACTIVE, amount_pence=300_000
    )
    paid = fake_stripe.set(lapsed_card["id"], status="paid", amount_paid=lapsed_card["amount_due"])
    fake_stripe.set(subscription.stripe_subscription_id, status="active")

    assert deliver(client, "invoice.paid", paid).status_code == 200

    assert fresh(subscription).status == Status.LAPSED
    entry = AuditEntry.objects.get(action="billing.invoice.paid_after_lapse")
    assert "refund or credit" in entry.summary


def test_finance_recording_a_late_bank_transfer_reinstates_an_invoiced_membership(
    client, run, fake_stripe, invoice_member, staff_user
):
    subscription = invoice_member.subscription
    renewal = fake_stripe.renew(subscription.stripe_subscription_id, paid=False)
    assert deliver(client, "invoice.finalized", renewal).status_code == 200
    due = moment(renewal["due_date"])
    run(renewals.start_grace_periods, now=due + timedelta(days=1))
    run(renewals.lapse_expired, now=due + timedelta(days=31))
    lapsed = fresh(subscription)
    assert lapsed.status == Status.LAPSED
    invoice = Invoice.objects.get(stripe_invoice_id=renewal["id"])

    billing.mark_invoice_paid_out_of_band(invoice, staff_user, "BACS 99-LATE")

    reinstated = fresh(subscription)
    assert reinstated.status == Status.ACTIVE
    entry = AuditEntry.objects.get(action="billing.subscription.reinstated")
    assert (entry.actor, entry.changes) == (
        staff_user,
        {
            "status": ["lapsed", "active"],
            "grace_ends_at": [str(lapsed.grace_ends_at), None],
            "ended_at": [str(lapsed.ended_at), None],
        },
    )
    assert fake_stripe.get(renewal["id"])["paid_out_of_band"] is True
    # Stripe's invoice.paid that follows changes no status; it brings over what the lapse told Stripe: no renewal.
    entries = AuditEntry.objects.count()
    deliver(client, "invoice.paid", fake_stripe.get(renewal["id"]))
    assert (fresh(subscription).status, fresh(subscription).cancel_at_period_end) == (Status.ACTIVE, True)
    assert list(AuditEntry.objects.order_by("id")[entries:].values_list("action", "changes")) == [
        ("billing.subscription.updated", {"cancel_at_period_end": [False, True]})
    ]


def test_joining_again_after_a_lapse_ends_the_old_subscription_at_stripe_first(
    fake_stripe, card_member, lapsed_card, scale
):
    subscription = card_member.subscription
    stripe_id = subscription.stripe_subscription_id

    billing.start_card_checkout(card_member.organisation, scale, "year", card_member.admin)

    [cancel] = fake_stripe.calls("DELETE", f"/v1/subscriptions/{stripe_id}")
    assert cancel.idempotency_key == f"end-lapsed-sub-{subscription.pk}"
    assert fake_stripe.get(stripe_id)["status"] == "canceled"
    assert "billing.subscription.ended_at_stripe" in actions(subscription)
    # Leaving that checkout and starting again does not cancel twice.
    billing.start_card_checkout(card_member.organisation, scale, "year", card_member.admin)
    assert len(fake_stripe.calls("DELETE", f"/v1/subscriptions/{stripe_id}")) == 1


def test_in_demo_mode_a_lapse_calls_no_stripe(run, demo, robotics, growth, billing_admin, client):
    url = billing.start_card_checkout(robotics, growth, "year", billing_admin)
    client.force_login(billing_admin)
    client.post(url, {"pay": "1"})
    subscription = Subscription.objects.get(organisation=robotics)
    Subscription.objects.filter(pk=subscription.pk).update(
        status=Status.GRACE, grace_ends_at=subscription.current_period_end - timedelta(days=1)
    )

    assert run(renewals.lapse_expired, now=subscription.current_period_end) == 1

    assert fresh(subscription).status == Status.LAPSED
    assert demo.requests == []
