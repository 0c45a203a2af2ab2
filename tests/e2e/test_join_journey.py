"""An organisation admin joins a tier, pays at the demo checkout and finds the invoice, in a real browser."""

import pytest
from playwright.sync_api import Page, expect

from membership.models import AuditEntry, OrganisationMember, StripeEvent, Subscription, Tier, TierPrice
from tests.e2e.journeys import header, log_in
from tests.factories import PASSWORD, add_member, make_organisation, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_joins_pays_at_the_demo_checkout_and_sees_the_invoice(page: Page, live_server, settings):
    settings.SITE_URL = live_server.url
    settings.DEMO_PAYMENTS = True
    base = live_server.url
    growth = Tier.objects.create(name="Growth", slug="growth", seat_limit=10, benefits="Two flagship places")
    TierPrice.objects.create(tier=growth, organisation_type="startup", size_band="1-9", annual_pence=63_000)
    admin = make_user("noah@bede-robotics.example", first_name="Noah", last_name="Patel")
    organisation = make_organisation("Bede Robotics", organisation_type="startup", size_band="1-9")
    add_member(organisation, admin, OrganisationMember.Role.ADMIN)

    log_in(page, base, admin.email, PASSWORD)
    main_nav = header(page)
    expect(main_nav.get_by_role("button", name="Log out")).to_be_visible()

    main_nav.get_by_role("link", name="Join").click()
    expect(page.get_by_text("£630")).to_be_visible()  # priced for a 1-9 person start-up
    page.get_by_role("button", name="Join Growth").click()

    expect(page.get_by_text("Demo payment: no card is charged.")).to_be_visible()
    page.get_by_role("button", name="Pay (demo)").click()

    page.wait_for_url(f"{base}/my/org/{organisation.slug}/billing/?checkout=success")
    expect(page.get_by_role("heading", name="Growth membership")).to_be_visible()
    expect(page.locator(".status")).to_have_text("Active")
    invoices = page.get_by_role("table")
    expect(invoices).to_contain_text("£756")  # £630 with VAT at 20%, as Stripe charges it
    expect(invoices).to_contain_text("Paid")

    subscription = Subscription.objects.get(organisation=organisation)
    assert subscription.status == Subscription.Status.ACTIVE
    # The demo payment arrived through the webhook path, and the activation is audited.
    assert StripeEvent.objects.filter(type="checkout.session.completed").exists()
    assert AuditEntry.objects.filter(organisation=organisation, action__startswith="billing.subscription").exists()
