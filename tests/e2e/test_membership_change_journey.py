"""An organisation admin upgrades, sets the membership to end and keeps it again, in a real browser (demo mode)."""

import pytest
from playwright.sync_api import Page, expect

from membership import billing
from membership.models import OrganisationMember, StripeEvent, Subscription, Tier, TierPrice
from tests.e2e.journeys import log_in
from tests.factories import PASSWORD, add_member, make_organisation, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_upgrades_then_cancels_and_keeps_the_membership(page: Page, live_server, settings):
    settings.SITE_URL = live_server.url
    settings.DEMO_PAYMENTS = True
    base = live_server.url
    growth = Tier.objects.create(name="Growth", slug="growth", sort_order=1)
    scale = Tier.objects.create(name="Scale", slug="scale", sort_order=2, seat_limit=25)
    for tier, pence in ((growth, 63_000), (scale, 150_000)):
        TierPrice.objects.create(tier=tier, organisation_type="startup", size_band="1-9", annual_pence=pence)
    admin = make_user("noah@bede-robotics.example", first_name="Noah", last_name="Patel")
    organisation = make_organisation("Bede Robotics", organisation_type="startup", size_band="1-9")
    add_member(organisation, admin, OrganisationMember.Role.ADMIN)
    billing.pay_demo_checkout(Subscription.objects.get(pk=_start(organisation, growth, admin)))

    log_in(page, base, admin.email, PASSWORD)
    page.goto(f"{base}/my/org/{organisation.slug}/billing/")
    expect(page.get_by_role("heading", name="Growth membership")).to_be_visible()

    tier_change = page.get_by_role("region", name="Change tier")
    tier_change.get_by_label("Scale: £1,500 a year + VAT (upgrade, up to 25 colleagues)").check()
    tier_change.get_by_role("button", name="Change tier").click()

    expect(page.get_by_text("Bede Robotics is moving to Scale")).to_be_visible()
    expect(page.get_by_role("heading", name="Scale membership")).to_be_visible()
    expect(page.get_by_role("table")).to_contain_text("Paid")  # the prorated difference, charged (demo)

    page.get_by_role("button", name="Cancel at the end of the period").click()
    expect(page.get_by_text("This membership is set to end on")).to_be_visible()
    page.get_by_role("button", name="Keep my membership").click()
    expect(page.get_by_text("will renew as before")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel at the end of the period")).to_be_visible()

    subscription = Subscription.objects.get(organisation=organisation)
    assert (subscription.tier, subscription.cancel_at_period_end) == (scale, False)
    assert StripeEvent.objects.filter(type="customer.subscription.updated").count() == 3


def _start(organisation, tier, admin) -> int:
    billing.start_card_checkout(organisation, tier, "year", admin)
    return Subscription.objects.get(organisation=organisation).pk
