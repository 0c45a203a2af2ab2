"""Billing fixtures: a local fake Stripe, two priced tiers and an organisation that pays."""

from types import SimpleNamespace

import pytest

from membership import billing
from membership.models import (
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
