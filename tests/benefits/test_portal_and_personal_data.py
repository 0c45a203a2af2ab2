"""Perks in the member portal, and what a person's redemptions mean for their personal data."""

import pytest
from django.urls import reverse

from accounts.services import delete_account, export_personal_data
from benefits import services
from benefits.models import Perk, PerkCode, Redemption
from membership.models import OrganisationMember
from tests.benefits.conftest import make_perk, person_at

pytestmark = pytest.mark.django_db


def test_the_portal_perks_page_shows_your_codes_and_admins_see_colleagues(client, growth_member, provider):
    organisation = growth_member.memberships.get().organisation
    admin = person_at(organisation, "boss@tyne-analytics.example", OrganisationMember.Role.ADMIN)
    perk = make_perk(provider, "Cloud credits", codes=2)
    mine = services.redeem_perk(perk, growth_member, organisation).redemption
    services.redeem_perk(perk, admin, organisation)
    url = reverse("benefits:organisation_perks", args=[organisation.slug])

    client.force_login(growth_member)
    as_member = client.get(url).content.decode()
    client.force_login(admin)
    as_admin = client.get(url).content.decode()

    assert mine.code in as_member
    assert "Redeemed by colleagues" not in as_member
    assert "Redeemed by colleagues" in as_admin
    assert "Mia" in as_admin
    assert mine.code not in as_admin  # a colleague's code stays theirs
    assert f'href="{url}"' in as_member  # the portal menu links to it


def test_the_export_lists_redemptions_and_deleting_the_account_keeps_the_count(growth_member, provider):
    organisation = growth_member.memberships.get().organisation
    perk = make_perk(provider, "Tax review", Perk.Method.CONTACT)
    services.redeem_perk(perk, growth_member, organisation, "Call me on 07700 900123")

    exported = export_personal_data(growth_member)["perk_redemptions"]
    assert exported[0]["perk"] == "Tax review"
    assert exported[0]["message"] == "Call me on 07700 900123"

    delete_account(growth_member)

    redemption = Redemption.objects.get()
    assert (redemption.person, redemption.message) == (None, "")
    perk.refresh_from_db()
    assert perk.redemption_count == 1


def test_a_code_stays_issued_after_the_person_is_erased(growth_member, provider):
    organisation = growth_member.memberships.get().organisation
    perk = make_perk(provider, "Cloud credits", codes=1)
    services.redeem_perk(perk, growth_member, organisation)

    delete_account(growth_member)

    assert PerkCode.objects.filter(redemption__isnull=True).count() == 0
