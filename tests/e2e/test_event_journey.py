"""A member registers for an event under their organisation and sees the confirmation, in a real browser."""

import pytest
from playwright.sync_api import Page, expect

from cms.events.models import EventRegistration
from membership.models import ActivityEvent, ActivityKind, OrganisationMember, Subscription, Tier
from tests.e2e.journeys import header, log_in
from tests.factories import PASSWORD, add_member, make_event, make_organisation, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_member_registers_for_an_event_and_sees_the_confirmation(page: Page, live_server, settings, mailoutbox):
    settings.SITE_URL = live_server.url
    base = live_server.url
    growth = Tier.objects.create(name="Growth", slug="growth")
    organisation = make_organisation("Bede Robotics", organisation_type="startup", size_band="1-9")
    Subscription.objects.create(organisation=organisation, tier=growth, status="active", amount_pence=63_000)
    member = make_user("noah@bede-robotics.example", first_name="Noah", last_name="Patel")
    add_member(organisation, member, OrganisationMember.Role.MEMBER)
    event = make_event(
        "Members' Winter Networking Evening",
        capacity=150,
        member_price_pence=1000,
        non_member_price_pence=2500,
        free_for_tiers=[growth],
        venue_name="BALTIC Centre for Contemporary Art",
        venue_address="Gateshead Quays\nSouth Shore Road\nGateshead NE8 3BA",
    )

    log_in(page, base, member.email, PASSWORD)
    expect(header(page).get_by_role("button", name="Log out")).to_be_visible()
    page.goto(f"{base}/events/")
    page.get_by_role("link", name=event.title).click()

    expect(page.get_by_role("heading", name=event.title, level=1)).to_be_visible()
    expect(page.get_by_text("150 of 150 left")).to_be_visible()
    choice = page.get_by_label("Bede Robotics: Free (included in Bede Robotics's Growth membership)")
    expect(choice).to_be_checked()
    expect(page.get_by_label("Name on your badge")).to_have_value("Noah Patel")
    page.get_by_role("button", name="Register").click()

    expect(page.get_by_role("heading", name="You are registered")).to_be_visible()
    expect(page.get_by_text("You are registered. Your ticket is on its way to your inbox.")).to_be_visible()
    registration = EventRegistration.objects.get(user=member)
    expect(page.get_by_role("img", name=f"QR code of ticket {registration.reference}")).to_be_visible()
    expect(page.get_by_text("Free (included in your membership)")).to_be_visible()

    header(page).get_by_role("link", name="My events").click()
    expect(page.get_by_role("link", name=event.title)).to_be_visible()
    expect(page.get_by_role("cell", name="Confirmed")).to_be_visible()

    assert registration.status == EventRegistration.Status.CONFIRMED
    assert registration.organisation == organisation and registration.price_pence == 0
    assert ActivityEvent.objects.filter(kind=ActivityKind.EVENT_REGISTERED, organisation=organisation).count() == 1
    assert [m.subject for m in mailoutbox] == [f"Your ticket for {event.title}"]
