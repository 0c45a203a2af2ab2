"""A member filters the perks catalogue, redeems a perk, sees the code and finds it under My redemptions."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from benefits.models import Category, Perk, PerkCode, Provider, Redemption
from membership.models import OrganisationMember, Subscription, Tier
from tests.e2e.journeys import header, log_in
from tests.factories import PASSWORD, add_member, make_organisation, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _perk(provider, title, category, **fields) -> Perk:
    return Perk.objects.create(
        provider=provider,
        title=title,
        slug=title.lower().replace(" ", "-"),
        category=category,
        summary=f"{title}, for members.",
        value_line="20% off for 12 months",
        terms="One per person.",
        status=Perk.Status.PUBLISHED,
        **fields,
    )


def test_a_member_filters_redeems_and_finds_the_code_again(page: Page, live_server):
    base = live_server.url
    growth = Tier.objects.create(name="Growth", slug="growth")
    member = make_user("mia@tyne-analytics.example", first_name="Mia", last_name="Robson")
    organisation = make_organisation("Tyne Analytics")
    add_member(organisation, member, OrganisationMember.Role.MEMBER)
    now = timezone.now()
    Subscription.objects.create(
        organisation=organisation,
        tier=growth,
        status=Subscription.Status.ACTIVE,
        amount_pence=90_000,
        current_period_start=now - timedelta(days=30),
        current_period_end=now + timedelta(days=335),
    )
    cloud = Provider.objects.create(name="Cloudforge", slug="cloudforge")
    desks = Provider.objects.create(name="Quayside Works", slug="quayside-works")
    credits = _perk(cloud, "Cloud credits", Category.SOFTWARE, method=Perk.Method.UNIQUE_CODE)
    PerkCode.objects.bulk_create([PerkCode(perk=credits, code=f"CF-{n:04d}") for n in range(3)])
    _perk(desks, "Hot desks", Category.WORKSPACE, method=Perk.Method.SHARED_CODE, shared_code="DESK10")

    log_in(page, base, member.email, PASSWORD)
    expect(header(page).get_by_role("button", name="Log out")).to_be_visible()
    header(page).get_by_role("link", name="Perks").click()
    cards = page.locator(".perk-card")
    expect(cards).to_have_count(2)

    page.get_by_label("Category").select_option(label="Software and cloud")
    page.get_by_role("button", name="Show perks").click()
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("Cloud credits")
    expect(page.get_by_text("DESK10")).to_have_count(0)

    cards.first.get_by_role("link", name="Cloud credits").click()
    expect(page.get_by_role("heading", name="Cloud credits")).to_be_visible()
    expect(page.get_by_test_id("perk-code")).to_have_count(0)
    page.get_by_role("button", name="Redeem and get the code").click()

    expect(page.get_by_text("Redeemed. Your code is below")).to_be_visible()
    expect(page.get_by_test_id("perk-code")).to_have_text("CF-0000")

    page.get_by_role("link", name="My redemptions").first.click()
    expect(page.get_by_role("heading", name="My redemptions")).to_be_visible()
    row = page.get_by_role("row", name="Cloud credits")
    expect(row).to_contain_text("CF-0000")
    expect(row).to_contain_text("Tyne Analytics")

    redemption = Redemption.objects.get()
    assert (redemption.person, redemption.code) == (member, "CF-0000")
