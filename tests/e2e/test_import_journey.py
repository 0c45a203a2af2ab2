"""The engagement manager imports a spreadsheet in a real browser: uploads it, sees the preview with an error row,
fixes the file, uploads it again and imports it."""

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import Page, expect

from membership.models import AuditEntry, MemberImport, Organisation, OrganisationMember, Tier, TierPrice
from membership.permissions import grant_engagement_permissions, grant_membership_team_permissions
from tests.e2e.journeys import log_in_staff
from tests.factories import PASSWORD, make_staff, totp_secret
from tests.membership.import_files import ACME, STANDARD_ROWS, contact, write_csv

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_staff_upload_a_file_see_the_error_row_fix_it_and_import(page: Page, live_server, tmp_path):
    base = live_server.url
    tier = Tier.objects.create(name="Growth", slug="growth")
    TierPrice.objects.create(tier=tier, organisation_type="sme", size_band="10-49", annual_pence=144_000)
    manager = make_staff("engagement@netech.example", first_name="Priya", last_name="Shah")
    team = Group.objects.get(name="Membership team")
    grant_membership_team_permissions(team)
    grant_engagement_permissions(team, can_import=True)
    bad_row = contact({**ACME, "renewal_date": "31/02/2027"}, "dee.ray@acme-robotics.example", "Dee", "Ray")
    broken = write_csv(tmp_path / "members.csv", [*STANDARD_ROWS, bad_row])

    log_in_staff(page, base, manager.email, PASSWORD, totp_secret(manager))
    page.goto(f"{base}/admin/engagement/")
    expect(page.get_by_role("heading", name="Engagement")).to_be_visible()
    page.get_by_role("link", name="Import a spreadsheet").click()

    page.get_by_label("Spreadsheet (CSV or Excel .xlsx)").set_input_files(str(broken))
    page.get_by_role("button", name="Upload and check").click()

    # The preview: nothing written, the bad row named by its number with the cell's message.
    expect(page.get_by_text("Has errors")).to_be_visible()
    rows = page.get_by_role("table", name="What each row would do")
    error_row = rows.get_by_role("row").filter(has_text="dee.ray@acme-robotics.example")
    expect(error_row.get_by_role("cell").first).to_have_text("5")
    expect(error_row).to_contain_text("renewal_date: “31/02/2027” is not a date")
    expect(rows.get_by_role("row").filter(has_text="ann.lee@acme-robotics.example")).to_contain_text("New")
    expect(page.get_by_role("button", name="Import 4 rows")).to_have_count(0)
    assert Organisation.objects.count() == 0

    # Fixed in the spreadsheet and uploaded again.
    fixed = write_csv(tmp_path / "members-fixed.csv", [*STANDARD_ROWS, {**bad_row, "renewal_date": "31/03/2027"}])
    page.get_by_role("link", name="Upload a file").click()
    page.get_by_label("Spreadsheet (CSV or Excel .xlsx)").set_input_files(str(fixed))
    page.get_by_role("button", name="Upload and check").click()
    expect(page.get_by_text("Ready to import")).to_be_visible()
    page.get_by_role("button", name="Import 4 rows").click()

    expect(page.get_by_text("members-fixed.csv is imported.")).to_be_visible()
    expect(page.get_by_text("every row below has been imported")).to_be_visible()
    assert Organisation.objects.count() == 2
    assert OrganisationMember.objects.filter(organisation__company_number="01234567").count() == 3
    assert list(MemberImport.objects.order_by("pk").values_list("status", flat=True)) == ["invalid", "done"]
    assert AuditEntry.objects.filter(action="membership.import.completed", actor=manager).count() == 1
