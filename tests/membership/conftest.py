"""Billing fixtures: a local fake Stripe, priced tiers, and organisations that pay by card and by invoice."""

from types import SimpleNamespace

import pytest

from membership import billing
from membership.models import (
    Invoice,
    Organisation,
    OrganisationMember,
    OrganisationType,
    SizeBand,
    Subscription,
    Tier,
    TierPrice,
)
from tests import factories
from tests.fake_stripe import FakeStripe

WEBHOOK_SECRET = "whsec_test"


@pytest.fixture
def fake_stripe(settings):
    """Stripe, faked on 127.0.0.1: billing talks to it with the real client, outside demo mode."""
    fake = FakeStripe().start()
    settings.STRIPE_API_BASE = fake.url
    settings.STRIPE_SECRET_KEY = "sk_test_fake"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.DEMO_PAYMENTS = False
    yield fake
    fake.stop()


@pytest.fixture
def demo(settings):
    """Demo mode, with a fake Stripe listening only to prove that nothing calls it."""
    fake = FakeStripe().start()
    settings.DEMO_PAYMENTS = True
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = "whsec_demo_for_tests"
    settings.STRIPE_API_BASE = fake.url
    yield fake
    fake.stop()


def _tier(name: str, annual: int, monthly: int | None) -> Tier:
    tier = Tier.objects.create(name=name, slug=name.lower(), monthly_billing=monthly is not None)
    for kind in (OrganisationType.SME, OrganisationType.PUBLIC_SECTOR):
        TierPrice.objects.create(
            tier=tier, organisation_type=kind, size_band=SizeBand.SMALL, annual_pence=annual, monthly_pence=monthly
        )
    return tier


@pytest.fixture
def growth(db) -> Tier:
    return _tier("Growth", 120_000, 11_000)


@pytest.fixture
def scale(db) -> Tier:
    return _tier("Scale", 300_000, None)


@pytest.fixture
def billing_admin(db):
    """The admin who pays for Tyne Robotics' membership."""
    user = factories.make_user("ops@tyne-robotics.example", first_name="Ada", last_name="Hall")
    organisation = factories.make_organisation("Tyne Robotics", billing_email="accounts@tyne-robotics.example")
    factories.add_member(organisation, user, OrganisationMember.Role.ADMIN)
    return user


@pytest.fixture
def robotics(billing_admin) -> Organisation:
    return Organisation.objects.get(slug="tyne-robotics")


@pytest.fixture
def paid_checkout(fake_stripe, robotics, growth, billing_admin) -> SimpleNamespace:
    """A card checkout started through the service and paid at Stripe; no webhook delivered yet."""
    billing.start_card_checkout(robotics, growth, Subscription.Interval.YEAR, billing_admin)
    subscription = Subscription.objects.get(organisation=robotics)
    session, stripe_subscription, invoice = fake_stripe.complete_checkout(subscription.stripe_checkout_session_id)
    return SimpleNamespace(
        subscription=subscription, session=session, stripe_subscription=stripe_subscription, invoice=invoice
    )


def deliver(client, event_type: str, obj: dict, **kwargs):
    """Deliver one signed Stripe event to the webhook, as Stripe would."""
    from tests.fake_stripe import signed_event

    payload, signature = signed_event(event_type, obj, WEBHOOK_SECRET, **kwargs)
    return client.post(
        "/billing/stripe/webhook/", payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )


@pytest.fixture
def starter(db) -> Tier:
    return _tier("Starter", 60_000, 6_000)


def fresh(subscription: Subscription) -> Subscription:
    return Subscription.objects.get(pk=subscription.pk)


@pytest.fixture
def card_member(client, paid_checkout, robotics, billing_admin) -> SimpleNamespace:
    """Tyne Robotics pays Growth by card, £1,200 a year, confirmed by Stripe's webhook."""
    assert deliver(client, "checkout.session.completed", paid_checkout.session).status_code == 200
    subscription = fresh(paid_checkout.subscription)
    assert subscription.status == Subscription.Status.ACTIVE
    robotics.refresh_from_db()
    return SimpleNamespace(subscription=subscription, organisation=robotics, admin=billing_admin)


@pytest.fixture
def invoice_member(client, fake_stripe, growth) -> SimpleNamespace:
    """Gateshead Council pays Growth by invoice with a PO number; its first invoice is paid."""
    admin = factories.make_user("procurement@gateshead.example")
    organisation = factories.make_organisation(
        "Gateshead Council", organisation_type=OrganisationType.PUBLIC_SECTOR, needs_purchase_order=True
    )
    factories.add_member(organisation, admin, OrganisationMember.Role.ADMIN)
    subscription = billing.start_invoice_subscription(organisation, growth, admin, "PO-7781")
    invoice = Invoice.objects.get(subscription=subscription)
    paid = fake_stripe.set(invoice.stripe_invoice_id, status="paid", amount_paid=invoice.amount_due_pence)
    fake_stripe.get(subscription.stripe_subscription_id)["latest_invoice"] = paid["id"]
    assert deliver(client, "invoice.paid", paid).status_code == 200
    subscription = fresh(subscription)
    assert (subscription.status, subscription.payment_method) == (Subscription.Status.ACTIVE, "invoice")
    organisation.refresh_from_db()
    return SimpleNamespace(subscription=subscription, organisation=organisation, admin=admin)
