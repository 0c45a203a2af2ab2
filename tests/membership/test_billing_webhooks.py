"""The Stripe webhook: verified, recorded once, and acted on from Stripe's current state."""

import copy
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone

from membership import billing, renewals
from membership.engagement import recompute_scores
from membership.models import AuditEntry, Invoice, StripeEvent, Subscription
from tests.conftest import in_two_threads, require
from tests.fake_stripe import signed_event
from tests.membership.conftest import WEBHOOK_SECRET

WEBHOOK = "/billing/stripe/webhook/"
Status = Subscription.Status


def post(client, payload: bytes, signature: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post(WEBHOOK, payload, content_type="application/json", **headers)


def deliver(client, event_type: str, obj: dict, **kwargs):
    return post(client, *signed_event(event_type, obj, WEBHOOK_SECRET, **kwargs))


def actions(subscription: Subscription) -> list[str]:
    entries = AuditEntry.objects.filter(organisation_id=subscription.organisation_id).order_by("id")
    return list(entries.values_list("action", flat=True))


def audit(action: str) -> AuditEntry:
    return AuditEntry.objects.get(action=action)


def fresh(subscription: Subscription) -> Subscription:
    return Subscription.objects.get(pk=subscription.pk)


def moment(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


@pytest.fixture
def active(client, paid_checkout) -> SimpleNamespace:
    """Tyne Robotics' card membership, paid and confirmed by the checkout webhook."""
    assert deliver(client, "checkout.session.completed", paid_checkout.session).status_code == 200
    assert fresh(paid_checkout.subscription).status == Status.ACTIVE
    return paid_checkout


@pytest.fixture
def queued_notices(monkeypatch) -> list[int]:
    """Payment-failed e-mails queued by the webhook (the renewals work sends them)."""
    queued: list[int] = []
    monkeypatch.setattr("membership.tasks.send_payment_failed_notice", SimpleNamespace(delay=queued.append))
    return queued


# The lifecycle ----------------------------------------------------------------------------------------------


def test_it_activates_the_subscription_when_checkout_completes(client, paid_checkout, fake_stripe):
    response = deliver(client, "checkout.session.completed", paid_checkout.session)

    assert response.status_code == 200
    assert response.json() == {"status": "processed"}
    subscription = fresh(paid_checkout.subscription)
    item = paid_checkout.stripe_subscription["items"]["data"][0]
    assert subscription.status == Status.ACTIVE
    assert subscription.stripe_subscription_id == paid_checkout.stripe_subscription["id"]
    assert subscription.current_period_start == moment(item["current_period_start"])
    assert subscription.current_period_end == moment(item["current_period_end"])
    assert audit("billing.subscription.activated").changes == {"status": ["pending", "active"]}
    # A trigger: the session and the subscription were read back from Stripe.
    assert fake_stripe.calls("GET", f"/v1/checkout/sessions/{paid_checkout.session['id']}")
    assert fake_stripe.calls("GET", f"/v1/subscriptions/{paid_checkout.stripe_subscription['id']}")


def test_it_records_the_paid_invoice_even_when_it_comes_before_the_checkout(client, paid_checkout):
    assert deliver(client, "invoice.paid", paid_checkout.invoice).status_code == 200

    invoice = Invoice.objects.get(stripe_invoice_id=paid_checkout.invoice["id"])
    assert (invoice.status, invoice.amount_due_pence, invoice.amount_paid_pence) == ("paid", 144_000, 144_000)
    assert invoice.subscription_id == paid_checkout.subscription.pk
    assert invoice.paid_at is not None
    assert fresh(paid_checkout.subscription).status == Status.ACTIVE
    assert audit("billing.invoice.paid").changes == {"status": [None, "paid"]}

    deliver(client, "checkout.session.completed", paid_checkout.session)
    assert actions(paid_checkout.subscription).count("billing.subscription.activated") == 1


def test_a_failed_renewal_payment_makes_it_past_due_and_queues_one_notice(
    client, active, fake_stripe, queued_notices, django_capture_on_commit_callbacks
):
    failed = fake_stripe.renew(active.stripe_subscription["id"], paid=False)

    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(client, "invoice.payment_failed", failed).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):  # Stripe's next attempt fails too
        assert deliver(client, "invoice.payment_failed", failed).status_code == 200

    subscription = fresh(active.subscription)
    assert subscription.status == Status.PAST_DUE
    assert audit("billing.subscription.past_due").changes == {"status": ["active", "past_due"]}
    assert queued_notices == [subscription.pk]
    assert Invoice.objects.get(stripe_invoice_id=failed["id"]).status == Invoice.Status.OPEN


def test_a_failed_renewal_payment_queues_its_notice_when_the_subscription_update_comes_first(
    client, active, fake_stripe, queued_notices, django_capture_on_commit_callbacks
):
    subscription_id = active.stripe_subscription["id"]
    failed = fake_stripe.renew(subscription_id, paid=False)

    with django_capture_on_commit_callbacks(execute=True):  # Stripe sends both at once, in no fixed order
        assert deliver(client, "customer.subscription.updated", fake_stripe.get(subscription_id)).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(client, "invoice.payment_failed", failed).status_code == 200

    subscription = fresh(active.subscription)
    assert subscription.status == Status.PAST_DUE
    assert queued_notices == [subscription.pk]


def test_a_card_declined_on_an_invoice_not_yet_due_leaves_an_invoice_payer_its_days_to_pay(
    client, fake_stripe, invoice_member, queued_notices
):
    subscription = invoice_member.subscription
    stripe_id = subscription.stripe_subscription_id
    renewal = fake_stripe.renew(stripe_id, paid=False)
    fake_stripe.set(stripe_id, status="active")  # send_invoice: Stripe keeps it active until the invoice is overdue
    assert deliver(client, "invoice.finalized", renewal).status_code == 200

    fake_stripe.set(renewal["id"], attempt_count=1)  # someone tried a card on Stripe's invoice page: declined
    assert deliver(client, "invoice.payment_failed", fake_stripe.get(renewal["id"])).status_code == 200

    assert fresh(subscription).status == Status.ACTIVE
    assert queued_notices == []


def test_a_paid_retry_brings_a_past_due_membership_back(client, active, fake_stripe, queued_notices):
    failed = fake_stripe.renew(active.stripe_subscription["id"], paid=False)
    deliver(client, "invoice.payment_failed", failed)
    fake_stripe.set(failed["id"], status="paid", amount_paid=failed["amount_due"])
    fake_stripe.set(active.stripe_subscription["id"], status="active")

    deliver(client, "invoice.paid", failed)

    assert fresh(active.subscription).status == Status.ACTIVE
    assert actions(active.subscription)[-2:] == ["billing.invoice.paid", "billing.subscription.activated"]


def test_a_paid_retry_that_ends_a_grace_period_audits_the_grace_period_ending_too(
    client, active, fake_stripe, queued_notices
):
    stripe_id = active.stripe_subscription["id"]
    failed = fake_stripe.renew(stripe_id, paid=False)
    deliver(client, "invoice.payment_failed", failed)
    renewed_at = moment(fake_stripe.get(stripe_id)["items"]["data"][0]["current_period_start"])
    renewals.start_grace_periods(now=renewed_at + timedelta(days=2))
    in_grace = fresh(active.subscription)
    assert (in_grace.status, in_grace.grace_ends_at) == (Status.GRACE, renewed_at + timedelta(days=30))
    fake_stripe.set(failed["id"], status="paid", amount_paid=failed["amount_due"])
    fake_stripe.set(stripe_id, status="active")

    deliver(client, "invoice.paid", failed)

    subscription = fresh(active.subscription)
    assert (subscription.status, subscription.grace_ends_at) == (Status.ACTIVE, None)
    assert AuditEntry.objects.filter(action="billing.subscription.activated").latest("id").changes == {
        "status": ["grace", "active"],
        "grace_ends_at": [str(in_grace.grace_ends_at), None],
    }


@pytest.mark.parametrize(
    ("stripe_status", "ours", "action"),
    [
        ("past_due", Status.PAST_DUE, "billing.subscription.past_due"),
        ("unpaid", Status.PAST_DUE, "billing.subscription.past_due"),
        ("canceled", Status.CANCELLED, "billing.subscription.cancelled"),
    ],
)
def test_a_subscription_updated_at_stripe_takes_stripes_status(
    client, active, fake_stripe, stripe_status, ours, action
):
    fake_stripe.set(active.stripe_subscription["id"], status=stripe_status)

    deliver(client, "customer.subscription.updated", fake_stripe.get(active.stripe_subscription["id"]))

    subscription = fresh(active.subscription)
    assert subscription.status == ours
    ended = {"ended_at": [None, str(subscription.ended_at)]} if ours == Status.CANCELLED else {}
    assert audit(action).changes == {"status": ["active", ours], **ended}


def test_a_subscription_updated_at_stripe_changes_tier_price_and_renewal(client, active, fake_stripe, scale):
    scale.stripe_product_id = "prod_scale"
    scale.save()
    stripe_subscription = fake_stripe.set(active.stripe_subscription["id"], cancel_at_period_end=True)
    stripe_subscription["items"]["data"][0]["price"].update(product="prod_scale", unit_amount=300_000)

    deliver(client, "customer.subscription.updated", stripe_subscription)

    subscription = fresh(active.subscription)
    assert (subscription.tier, subscription.amount_pence, subscription.cancel_at_period_end) == (scale, 300_000, True)
    assert subscription.status == Status.ACTIVE
    assert audit("billing.subscription.updated").changes == {
        "tier": ["Growth", "Scale"],
        "amount_pence": [120_000, 300_000],
        "cancel_at_period_end": [False, True],
    }


def test_a_deleted_subscription_is_cancelled(client, active, fake_stripe):
    ended = int(time.time()) - 60
    fake_stripe.set(active.stripe_subscription["id"], status="canceled", ended_at=ended)

    deliver(client, "customer.subscription.deleted", fake_stripe.get(active.stripe_subscription["id"]))

    subscription = fresh(active.subscription)
    assert (subscription.status, subscription.ended_at) == (Status.CANCELLED, moment(ended))
    assert audit("billing.subscription.cancelled").changes == {
        "status": ["active", "cancelled"],
        "ended_at": [None, str(moment(ended))],
    }


# Duplicates and disorder ------------------------------------------------------------------------------------


def test_the_same_event_delivered_100_times_changes_things_once(client, paid_checkout, fake_stripe):
    payload, signature = signed_event(
        "checkout.session.completed", paid_checkout.session, WEBHOOK_SECRET, event_id="evt_once"
    )
    entries_before = AuditEntry.objects.count()

    answers = [post(client, payload, signature).json()["status"] for _ in range(100)]

    assert answers == ["processed"] + ["duplicate"] * 99
    assert StripeEvent.objects.filter(event_id="evt_once").count() == 1
    assert AuditEntry.objects.count() - entries_before == 1
    assert audit("billing.subscription.activated")
    assert len(fake_stripe.calls("GET", "/v1/checkout/sessions/")) == 1  # acted on once


def test_an_old_update_arriving_after_the_deletion_does_not_reactivate(client, active, fake_stripe):
    stale = copy.deepcopy(fake_stripe.get(active.stripe_subscription["id"]))  # says "active"
    fake_stripe.set(active.stripe_subscription["id"], status="canceled", ended_at=int(time.time()))
    deliver(client, "customer.subscription.deleted", fake_stripe.get(active.stripe_subscription["id"]))

    deliver(client, "customer.subscription.updated", stale, created=int(time.time()) - 3600)

    assert fresh(active.subscription).status == Status.CANCELLED
    assert actions(active.subscription).count("billing.subscription.activated") == 1
    assert actions(active.subscription).count("billing.subscription.cancelled") == 1


def test_stale_failure_events_do_not_undo_a_payment_that_went_through(client, active, fake_stripe, queued_notices):
    subscription_id = active.stripe_subscription["id"]
    failed = copy.deepcopy(fake_stripe.renew(subscription_id, paid=False))
    stale = copy.deepcopy(fake_stripe.get(subscription_id))  # says "past_due"
    # Stripe's retry succeeded before either event was delivered.
    fake_stripe.set(failed["id"], status="paid", amount_paid=failed["amount_due"])
    fake_stripe.set(subscription_id, status="active")

    deliver(client, "customer.subscription.updated", stale)
    deliver(client, "invoice.payment_failed", failed)

    assert fresh(active.subscription).status == Status.ACTIVE
    assert "billing.subscription.past_due" not in actions(active.subscription)
    assert queued_notices == []


def test_two_identical_deliveries_at_once_change_things_once(transactional_db, paid_checkout, monkeypatch):
    require(connection.vendor == "postgresql", "PostgreSQL (set DATABASE_URL) to deliver one event twice at once")
    payload, signature = signed_event(
        "checkout.session.completed", paid_checkout.session, WEBHOOK_SECRET, event_id="evt_twice"
    )
    handled, results = [], []
    act = billing.process_stripe_event

    def slow_handler(event):
        # Hold the first delivery's uncommitted ledger row while the second one tries to insert its own.
        handled.append(event["id"])
        time.sleep(0.5)
        return act(event)

    monkeypatch.setattr(billing, "process_stripe_event", slow_handler)
    start = threading.Barrier(2)

    def deliver_once():
        try:
            start.wait()
            results.append(billing.receive_stripe_webhook(payload, signature))
        except Exception as error:
            results.append(error)

    in_two_threads(deliver_once)

    assert sorted(result is None for result in results) == [False, True], results
    assert handled == ["evt_twice"]
    assert StripeEvent.objects.filter(event_id="evt_twice").count() == 1
    assert actions(paid_checkout.subscription).count("billing.subscription.activated") == 1
    assert fresh(paid_checkout.subscription).status == Status.ACTIVE


# What is refused, ignored or retried ------------------------------------------------------------------------


def _forged(session):
    return signed_event("checkout.session.completed", session, "whsec_someone_else")


def _stale(session):
    return signed_event("checkout.session.completed", session, WEBHOOK_SECRET, timestamp=int(time.time()) - 600)


def _tampered(session):
    payload, signature = signed_event("checkout.session.completed", session, WEBHOOK_SECRET)
    return payload.replace(b'"complete"', b'"open"'), signature


def _unsigned(session):
    return signed_event("checkout.session.completed", session, WEBHOOK_SECRET)[0], None


def _no_secret_configured(session, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    return signed_event("checkout.session.completed", session, WEBHOOK_SECRET)


@pytest.mark.parametrize("make", [_forged, _stale, _tampered, _unsigned, _no_secret_configured])
def test_a_delivery_that_cannot_be_trusted_answers_400_and_writes_nothing(
    client, paid_checkout, fake_stripe, settings, make
):
    arguments = (paid_checkout.session, settings) if make is _no_secret_configured else (paid_checkout.session,)
    payload, signature = make(*arguments)
    entries_before, requests_before = AuditEntry.objects.count(), len(fake_stripe.requests)

    response = post(client, payload, signature)

    assert response.status_code == 400
    assert "error" in response.json()
    assert StripeEvent.objects.count() == 0
    assert AuditEntry.objects.count() == entries_before
    assert len(fake_stripe.requests) == requests_before
    assert fresh(paid_checkout.subscription).status == Status.PENDING


def test_a_failing_handler_answers_500_keeps_nothing_and_the_redelivery_succeeds(
    client, paid_checkout, fake_stripe, caplog
):
    payload, signature = signed_event(
        "checkout.session.completed", paid_checkout.session, WEBHOOK_SECRET, event_id="evt_retry"
    )
    fake_stripe.fail(500)  # the re-read fails

    response = post(client, payload, signature)

    assert response.status_code == 500
    assert StripeEvent.objects.count() == 0
    assert fresh(paid_checkout.subscription).status == Status.PENDING
    assert "Stripe webhook failed" in caplog.text

    fake_stripe.recover()
    response = post(client, payload, signature)

    assert (response.status_code, response.json()) == (200, {"status": "processed"})
    assert StripeEvent.objects.get(event_id="evt_retry").processed_at is not None
    assert fresh(paid_checkout.subscription).status == Status.ACTIVE


def test_an_event_type_we_do_not_handle_is_recorded_and_answered_200(client, db, fake_stripe):
    response = deliver(client, "customer.tax_id.created", {"id": "txi_1", "object": "tax_id"}, event_id="evt_tax")

    assert (response.status_code, response.json()) == (200, {"status": "ignored"})
    event = StripeEvent.objects.get(event_id="evt_tax")
    assert (event.type, event.processed_at) == ("customer.tax_id.created", None)
    assert not AuditEntry.objects.exists()
    assert fake_stripe.requests == []


def test_the_webhook_takes_only_posts(client, db):
    assert client.get(WEBHOOK).status_code == 405


def test_without_stripe_keys_the_webhook_trusts_nothing_from_outside(client, settings, db):
    # The demo secret derives from SECRET_KEY, which may be the public default: demo events go in-process.
    settings.DEMO_PAYMENTS = True
    payload, signature = signed_event(
        "customer.subscription.deleted", {"id": "demo_sub_1"}, settings.STRIPE_WEBHOOK_SECRET
    )
    response = client.post(
        "/billing/stripe/webhook/", payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_an_invoice_event_reads_the_invoice_and_its_subscription_back_in_one_call(client, active, fake_stripe):
    renewal = fake_stripe.renew(active.stripe_subscription["id"], paid=True)
    reads_before = len(fake_stripe.calls("GET", "/v1/"))

    assert deliver(client, "invoice.paid", renewal).status_code == 200

    reads = fake_stripe.calls("GET", "/v1/")[reads_before:]
    assert [(r.path, r.params) for r in reads] == [
        (f"/v1/invoices/{renewal['id']}", {"expand": ["parent.subscription_details.subscription"]})
    ]
    subscription = fresh(active.subscription)
    item = fake_stripe.get(active.stripe_subscription["id"])["items"]["data"][0]
    assert subscription.current_period_end == moment(item["current_period_end"])
    assert Invoice.objects.get(stripe_invoice_id=renewal["id"]).status == Invoice.Status.PAID


def test_a_repeat_of_what_we_know_writes_nothing(client, active, fake_stripe, django_assert_max_num_queries):
    stripe_subscription = fake_stripe.get(active.stripe_subscription["id"])
    deliver(client, "customer.subscription.updated", stripe_subscription)
    row = Subscription.objects.filter(pk=active.subscription.pk).values().get()

    # The ledger row, the subscription's lock and the transaction: nothing is rewritten.
    with django_assert_max_num_queries(4):
        billing.receive_stripe_webhook(*_signed("customer.subscription.updated", stripe_subscription))

    assert Subscription.objects.filter(pk=active.subscription.pk).values().get() == row


def _signed(event_type: str, obj: dict) -> tuple[bytes, str]:
    return signed_event(event_type, obj, WEBHOOK_SECRET)


def test_a_paid_renewal_is_recorded_in_a_fixed_number_of_statements(
    client, active, fake_stripe, django_assert_num_queries
):
    recompute_scores()  # every organisation has its score row, as the nightly job leaves it
    period_end = fresh(active.subscription).current_period_end
    renewal = fake_stripe.renew(active.stripe_subscription["id"], paid=True)
    payload = _signed("invoice.paid", renewal)

    # The transaction (a savepoint here), the ledger row, the subscription's lock, the invoice's lock and its new
    # row, its audit entry, the activity (one insert, no savepoint of its own), the score settings and the score,
    # the renewed period and its audit entry. SQLite reads the score before writing it back: one more.
    with django_assert_num_queries(12 if connection.vendor == "postgresql" else 13):
        billing.receive_stripe_webhook(*payload)

    invoice = Invoice.objects.get(stripe_invoice_id=renewal["id"])
    assert invoice.status == Invoice.Status.PAID
    entry = AuditEntry.objects.filter(action="billing.invoice.paid").latest("id")
    assert entry.organisation_id == active.subscription.organisation_id
    assert renewal["number"] in entry.summary
    renewed = fresh(active.subscription).current_period_end
    assert renewed > period_end
    entry = AuditEntry.objects.get(action="billing.subscription.renewed")
    assert entry.changes == {
        "current_period_end": [timezone.localdate(period_end).isoformat(), timezone.localdate(renewed).isoformat()]
    }
    # The same renewal delivered again, or read again by the subscription's own event, is no second renewal.
    billing.receive_stripe_webhook(*_signed("invoice.paid", renewal))
    billing.receive_stripe_webhook(
        *_signed("customer.subscription.updated", fake_stripe.objects[active.stripe_subscription["id"]])
    )
    assert AuditEntry.objects.filter(action="billing.subscription.renewed").count() == 1
