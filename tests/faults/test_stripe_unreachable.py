"""Drill: Stripe cannot be reached (its API address is a closed port) while members pay.

Joining (by card and by invoice), changing tier, switching to invoices and paying for an event place each go
through the real views. Every one tells the member, in the form they used and with what they chose or typed
still there, that payments are not available and nothing was charged; and nothing is half-written: the rows
that billing and events keep are the same before and after.
"""

import re

import pytest
from django.db.models import Model

from cms.events.models import EventRegistration
from config.models import QueuedTask
from membership.models import (
    ActivityEvent,
    AuditEntry,
    Invoice,
    Organisation,
    OrganisationMember,
    OrganisationType,
    StripeEvent,
    Subscription,
)
from tests import factories
from tests.faults.conftest import free_port

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

UNAVAILABLE = "Payments are not available just now. Nothing has been charged"
LEDGERS: list[type[Model]] = [
    Subscription,
    Invoice,
    AuditEntry,
    StripeEvent,
    ActivityEvent,
    EventRegistration,
    QueuedTask,
]


def _unreachable(settings) -> None:
    """Stripe's API at an address where nothing listens: every call is refused, as in an outage."""
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"


def _snapshot() -> dict:
    rows = {model.__name__: model.objects.count() for model in LEDGERS}
    rows["subscriptions"] = list(Subscription.objects.order_by("pk").values())
    rows["organisations"] = list(Organisation.objects.order_by("pk").values())
    return rows


def _page(response) -> str:
    return response.content.decode()


@pytest.fixture
def council(db) -> Organisation:
    organisation = factories.make_organisation(
        "Gateshead Council", organisation_type=OrganisationType.PUBLIC_SECTOR, needs_purchase_order=True
    )
    factories.add_member(
        organisation, factories.make_user("procurement@gateshead.example"), OrganisationMember.Role.ADMIN
    )
    return organisation


def test_joining_by_card_says_so_and_starts_nothing(client, settings, fake_stripe, robotics, growth, billing_admin):
    client.force_login(billing_admin)
    _unreachable(settings)
    before = _snapshot()

    response = client.post(
        f"/my/org/{robotics.slug}/billing/start/", {"tier": growth.pk, "interval": "month", "payment_method": "card"}
    )

    assert response.status_code == 400
    page = _page(response)
    assert UNAVAILABLE in page
    assert '<option value="month" selected>' in page  # the choice made is still there
    assert _snapshot() == before
    assert not fake_stripe.requests


def test_joining_by_invoice_keeps_the_purchase_order_number_typed(client, settings, fake_stripe, council, growth):
    client.force_login(council.memberships.get().user)
    _unreachable(settings)
    before = _snapshot()

    response = client.post(
        f"/my/org/{council.slug}/billing/start/",
        {"tier": growth.pk, "interval": "year", "payment_method": "invoice", "po_number": "PO-TYPED-4471"},
    )

    assert response.status_code == 400
    page = _page(response)
    assert UNAVAILABLE in page
    assert 'value="PO-TYPED-4471"' in page
    assert _snapshot() == before


def test_changing_tier_says_so_and_changes_nothing(client, settings, card_member, scale):
    client.force_login(card_member.admin)
    _unreachable(settings)
    before = _snapshot()

    response = client.post(f"/my/org/{card_member.organisation.slug}/billing/tier/", {"tier": scale.pk})

    assert response.status_code == 400
    page = _page(response)
    assert UNAVAILABLE in page
    assert re.search(rf'value="{scale.pk}" id="tier-{scale.pk}"[^>]* checked>', page)
    assert _snapshot() == before


def test_switching_to_invoices_keeps_the_purchase_order_number_typed(client, settings, card_member):
    client.force_login(card_member.admin)
    _unreachable(settings)
    before = _snapshot()

    response = client.post(
        f"/my/org/{card_member.organisation.slug}/billing/pay-by-invoice/", {"po_number": "PO-TYPED-88"}
    )

    assert response.status_code == 400
    page = _page(response)
    assert UNAVAILABLE in page
    assert 'value="PO-TYPED-88"' in page
    assert _snapshot() == before


def test_an_event_place_stays_held_to_pay_once_stripe_is_back(client, settings, fake_stripe):
    event = factories.make_event("Scale-up Summit", capacity=2, member_price_pence=1000, non_member_price_pence=2500)
    visitor = factories.make_user("visitor@example.org", first_name="Vic", last_name="Visitor")
    client.force_login(visitor)
    _unreachable(settings)
    before = _snapshot()

    response = client.post(f"/my/events/register/{event.pk}/", {"register_as": "individual", "name": "Vic Visitor"})

    # The place is held for its owner to pay (as when they leave Stripe's page): a defined state, released by the
    # hold's expiry job if never paid. Nothing about a payment is written.
    registration = EventRegistration.objects.get()
    assert response["Location"] == f"/my/events/{registration.pk}/"
    assert (registration.status, registration.stripe_checkout_session_id) == ("pending_payment", None)
    assert registration.hold_expires_at is not None and registration.name == "Vic Visitor"
    assert not AuditEntry.objects.filter(action__startswith="events.payment").exists()
    assert StripeEvent.objects.count() == before["StripeEvent"]
    page = _page(client.get(response["Location"]))
    assert UNAVAILABLE in page and "Pay £25.00" in page

    settings.STRIPE_API_BASE = fake_stripe.url
    assert client.post(f"/my/events/{registration.pk}/pay/")["Location"].startswith("https://checkout.stripe.test/")
