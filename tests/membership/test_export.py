"""Exports of organisations, contacts and subscriptions as CSV or XLSX, safe to open in a spreadsheet."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from openpyxl import load_workbook
from wagtail import hooks

from accounts.models import User
from membership.exports import MemberExport
from membership.models import OrganisationMember, Subscription, Tier
from membership.permissions import grant_membership_team_permissions
from membership.resources import OrganisationExportResource, neutralise
from tests import factories

pytestmark = pytest.mark.django_db

EXPORT = "/admin/engagement/export/"
DANGEROUS = ['=HYPERLINK("http://evil.example")', "+44 191 000 0000", "-2+3", "@SUM(A1:A2)", "\tTabbed", "\rReturn"]


@pytest.fixture
def team(client, staff_user):
    grant_membership_team_permissions(Group.objects.get(name="Membership team"))
    client.force_login(staff_user)
    return client


@pytest.fixture
def hostile(db):
    """An organisation whose details were typed to run as formulas in a spreadsheet."""
    organisation = factories.make_organisation(
        DANGEROUS[0], town=DANGEROUS[1], postcode="-2+3", company_number="01234567"
    )
    person = factories.make_user("ann@hostile.example", first_name=DANGEROUS[3], last_name=DANGEROUS[4])
    OrganisationMember.objects.create(organisation=organisation, user=person, job_title=DANGEROUS[5])
    tier = Tier.objects.create(name="@Growth", slug="growth")
    Subscription.objects.create(
        organisation=organisation,
        tier=tier,
        status="active",
        amount_pence=90_000,
        current_period_end=timezone.now() + timedelta(days=30),
        po_number="=1+1",
    )
    return organisation


def test_neutralise_prefixes_what_a_spreadsheet_would_run():
    assert [neutralise(value) for value in DANGEROUS] == ["'" + value for value in DANGEROUS]
    assert neutralise("Tyne Analytics") == "Tyne Analytics"
    assert neutralise(-2) == -2  # numbers are numbers
    assert neutralise("") == ""


def _csv(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("export", ["organisations", "contacts", "subscriptions"])
def test_exported_cells_that_start_with_a_formula_character_are_neutralised_in_csv(team, hostile, export):
    response = team.get(EXPORT, {"export": export, "format": "csv"})

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith(f'attachment; filename="{export}-')
    cells = [cell for row in _csv(response) for cell in row]
    assert cells, "the export is empty"
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert any(cell.startswith("'=") or cell.startswith("'@") for cell in cells)


def test_exported_cells_are_neutralised_in_a_workbook_too(team, hostile):
    for export in ("organisations", "contacts", "subscriptions"):
        response = team.get(EXPORT, {"export": export, "format": "xlsx"})
        sheet = load_workbook(io.BytesIO(response.content)).active
        values = [cell.value for row in sheet.iter_rows() for cell in row if isinstance(cell.value, str)]
        assert all(not value.startswith(("=", "+", "-", "@", "\t", "\r")) for value in values), export
        assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)

    organisations = load_workbook(io.BytesIO(team.get(EXPORT, {"export": "organisations", "format": "xlsx"}).content))
    header, row = list(organisations.active.iter_rows(values_only=True))
    assert dict(zip(header, row, strict=True))["name"] == "'" + DANGEROUS[0]


def test_a_formula_behind_a_control_character_is_neutralised_too(team, hostile):
    """A workbook cannot hold the control character, so it is left out: what follows it must not then run."""
    assert neutralise("\x01=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert neutralise("\x1f\x08+1") == "'+1"
    assert neutralise("Line one\nLine two\tend") == "Line one\nLine two\tend"  # white space a cell may hold
    hostile.town = "\x1f=1+1"
    hostile.name = "\x01=HYPERLINK(1)"
    hostile.save(update_fields=["town", "name"])

    for kind in ("csv", "xlsx"):
        response = team.get(EXPORT, {"export": "organisations", "format": kind})
        if kind == "csv":
            header, row = _csv(response)
        else:
            sheet = load_workbook(io.BytesIO(response.content)).active
            assert all(cell.data_type != "f" for line in sheet.iter_rows() for cell in line)
            header, row = sheet.iter_rows(values_only=True)
        cells = dict(zip(header, row, strict=True))
        assert (cells["name"], cells["town"]) == ("'=HYPERLINK(1)", "'=1+1"), kind


@pytest.mark.parametrize("listing", ["people", "organisation"])
def test_a_control_character_does_not_break_the_crm_listings_workbooks(team, hostile, listing):
    User.objects.filter(email="ann@hostile.example").update(first_name="\x08=Ann")
    Subscription.objects.update(po_number="PO\x01")

    response = team.get(f"/admin/membership/{listing}/", {"export": "xlsx"})

    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    assert all(cell.data_type != "f" for line in sheet.iter_rows() for cell in line)
    if listing == "people":
        assert "'=Ann" in [cell for line in sheet.iter_rows(values_only=True) for cell in line]


def test_a_control_character_in_stored_text_does_not_break_a_workbook(team, hostile):
    OrganisationMember.objects.update(job_title="CEO\x08")  # typed somewhere else than the import

    response = team.get(EXPORT, {"export": "contacts", "format": "xlsx"})

    header, row = list(load_workbook(io.BytesIO(response.content)).active.iter_rows(values_only=True))
    assert dict(zip(header, row, strict=True))["job_title"] == "CEO"


def test_the_contacts_export_has_the_import_columns(team, hostile):
    rows = _csv(team.get(EXPORT, {"export": "contacts", "format": "csv"}))

    assert rows[0] == [
        "organisation_name",
        "company_number",
        "contact_email",
        "contact_first_name",
        "contact_last_name",
        "job_title",
        "role",
        "since",
    ]
    assert rows[1][2:4] == ["ann@hostile.example", "'@SUM(A1:A2)"]


def test_each_export_needs_its_own_permission(client, hostile):
    reader = factories.make_staff("reader@netech.example")
    reader.user_permissions.add(Permission.objects.get(codename="view_organisation"))
    client.force_login(reader)

    page = client.get(EXPORT).content.decode()

    assert "Download organisations" in page and "Download subscriptions" not in page
    assert client.get(EXPORT, {"export": "subscriptions", "format": "csv"}).status_code == 404
    assert client.get(EXPORT, {"export": "organisations", "format": "pdf"}).status_code == 404


def test_staff_without_any_export_are_refused(client, staff_without_mfa, staff_user):
    client.force_login(staff_user)  # staff, with no view permission on anything exportable

    response = client.get(EXPORT)

    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_another_app_registers_its_export_with_a_hook(team, hostile):
    def redemptions():
        return MemberExport(
            "redemptions", "Perk redemptions", OrganisationExportResource, "membership.view_organisation"
        )

    with hooks.register_temporarily("register_member_export", redemptions):
        page = team.get(EXPORT).content.decode()
        rows = _csv(team.get(EXPORT, {"export": "redemptions", "format": "csv"}))

    assert "Download perk redemptions" in page
    assert rows[1][1] == "'" + DANGEROUS[0]


def test_an_export_takes_the_same_queries_for_ten_or_a_hundred_organisations(team, staff_user):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            for export in ("organisations", "contacts", "subscriptions"):
                _csv(team.get(EXPORT, {"export": export, "format": "csv"}))
        return len(captured)

    tier = Tier.objects.create(name="Growth", slug="growth")

    def add(start: int, count: int) -> None:
        for n in range(start, start + count):
            organisation = factories.make_organisation(f"Organisation {n}", account_manager=staff_user)
            factories.add_member(organisation, User.objects.create(email=f"person{n}@example.org"))
            Subscription.objects.create(organisation=organisation, tier=tier, status="active", amount_pence=1)

    add(0, 10)
    few = queries()
    add(10, 90)
    assert queries() == few


def test_the_crm_listings_own_downloads_are_neutralised_too(team, hostile):
    organisations = team.get("/admin/membership/organisation/", {"export": "csv"})
    people = team.get("/admin/membership/people/", {"export": "xlsx"})

    rows = list(csv.reader(io.StringIO(b"".join(organisations.streaming_content).decode("utf-8-sig"))))
    assert rows[1][0] == "'" + DANGEROUS[0]
    assert rows[1][4] == "'" + DANGEROUS[1]  # the town
    sheet = load_workbook(io.BytesIO(b"".join(people.streaming_content))).active
    values = [cell.value for row in sheet.iter_rows() for cell in row if isinstance(cell.value, str)]
    assert "'" + DANGEROUS[3] in values
    assert any(value.startswith("'") and value.endswith("Return") for value in values)  # XML turns CR into LF
