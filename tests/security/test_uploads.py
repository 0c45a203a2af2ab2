"""Every upload is checked by its content, its size and (for images) its dimensions, whatever its name says.

A refused file gets a message on the form and nothing is written: no row, no file in the media folder.
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from wagtail.documents import get_document_model
from wagtail.images import get_image_model

from benefits.models import Perk, PerkCode, Provider
from membership.models import MemberImport, Organisation
from tests.security.conftest import (
    HTML_PAGE,
    SVG_WITH_SCRIPT,
    image_bytes,
    padded,
    xlsx_bytes,
    zip_bytes,
)

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


@pytest.fixture(autouse=True)
def _own_media_folder(settings, tmp_path):
    """Each test starts with an empty media folder (others in the run leave demo images in the shared one), so
    "no file under it" means this test's upload wrote nothing."""
    settings.MEDIA_ROOT = tmp_path / "media"


def _files_under(settings, folder: str) -> list:
    root = settings.MEDIA_ROOT / folder
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# Organisation logos (the member portal) --------------------------------------------------------------------------

BAD_LOGOS = [
    pytest.param("logo.png", HTML_PAGE, "Upload a valid image", id="html-named-png"),
    pytest.param("logo.png", SVG_WITH_SCRIPT, "Upload a valid image", id="svg-named-png"),
    pytest.param("logo.svg", SVG_WITH_SCRIPT, "Upload a valid image", id="svg"),
    pytest.param("logo.png", image_bytes(fmt="JPEG"), "named .png but holds JPEG", id="jpeg-named-png"),
    pytest.param("logo.jpg", image_bytes(fmt="GIF"), "must be a PNG, JPEG or WebP image", id="gif-named-jpg"),
    pytest.param("logo.png", padded(image_bytes(), 2 * MB + 1), "2 MB or smaller", id="over-2mb"),
    pytest.param("logo.png", image_bytes(4001, 20, mode="1"), "at most 4000 pixels", id="too-wide"),
    pytest.param("logo.webp", image_bytes(20, 4001, fmt="WEBP", mode="RGB"), "at most 4000 pixels", id="too-high"),
]


def _profile(organisation: Organisation, **extra) -> dict:
    return {
        "name": organisation.name,
        "organisation_type": organisation.organisation_type,
        "size_band": organisation.size_band,
        "town": organisation.town,
        "public_fields": ["description", "logo"],
        **extra,
    }


def _message_shown(response, message: str) -> bool:
    from html import unescape

    return message in unescape(response.content.decode())


@pytest.mark.parametrize(("name", "content", "message"), BAD_LOGOS)
def test_it_refuses_an_organisation_logo_that_is_not_what_it_claims(
    client, org_admin, settings, name, content, message
):
    organisation = org_admin.memberships.get().organisation
    client.force_login(org_admin)

    response = client.post(
        f"/my/org/{organisation.slug}/profile/", _profile(organisation, logo=SimpleUploadedFile(name, content))
    )

    assert response.status_code == 200 and _message_shown(response, message)
    organisation.refresh_from_db()
    assert not organisation.logo
    assert _files_under(settings, "logos") == []


@pytest.mark.parametrize(("name", "content", "message"), BAD_LOGOS[:2] + BAD_LOGOS[-2:])
def test_it_refuses_a_bad_logo_when_an_organisation_is_created(client, outsider, settings, name, content, message):
    client.force_login(outsider)
    data = {"name": "Hexham Bytes", "organisation_type": "sme", "size_band": "1-9", "public_fields": ["logo"]}

    response = client.post("/my/organisations/new/", {**data, "logo": SimpleUploadedFile(name, content)})

    assert response.status_code == 200 and _message_shown(response, message)
    assert not Organisation.objects.filter(name="Hexham Bytes").exists()
    assert _files_under(settings, "logos") == []


def test_a_request_larger_than_any_form_takes_is_refused_before_it_is_read(client, outsider, back_office, settings):
    """Otherwise Django writes the whole upload to a temporary file before the form's own size check refuses it."""
    settings.MAX_REQUEST_BYTES, settings.MAX_BACK_OFFICE_REQUEST_BYTES = 64 * 1024, 128 * 1024
    client.force_login(outsider)
    data = {"name": "Hexham Bytes", "organisation_type": "sme", "size_band": "1-9"}
    huge = SimpleUploadedFile("logo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 70 * 1024)

    response = client.post("/my/organisations/new/", {**data, "logo": huge})

    assert response.status_code == 413 and "over 64.0\xa0KB" in response.text
    assert "it was not read and nothing has been changed" in response.text
    assert not Organisation.objects.filter(name="Hexham Bytes").exists()
    assert _files_under(settings, "logos") == []
    # Staff logged in to the back office have its larger limit, for imports (``back_office`` is the same client).
    big = {"file": SimpleUploadedFile("m.csv", HEADER + b"x" * 70 * 1024)}
    assert client.post("/admin/engagement/import/", big).status_code == 413  # not for a member
    back_office.force_login(back_office.user)
    big["file"].seek(0)
    assert back_office.post("/admin/engagement/import/", big).status_code != 413
    checked = MemberImport.objects.count()
    bigger = SimpleUploadedFile("m.csv", HEADER + b"x" * 140 * 1024)
    assert back_office.post("/admin/engagement/import/", {"file": bigger}).status_code == 413
    assert MemberImport.objects.count() == checked
    # Only for staff logged in: anyone else posting to the back office's addresses has the site's limit.
    client.logout()
    assert client.post("/admin/login/", {"file": SimpleUploadedFile("m.csv", b"x" * 70 * 1024)}).status_code == 413
    client.force_login(outsider)
    assert client.post("/my/organisations/new/", data).status_code == 302  # a form of ordinary size goes through


def test_a_real_logo_of_each_kind_is_kept(client, org_admin, settings):
    organisation = org_admin.memberships.get().organisation
    client.force_login(org_admin)
    for name, fmt in [("logo.png", "PNG"), ("logo.jpeg", "JPEG"), ("logo.webp", "WEBP")]:
        upload = SimpleUploadedFile(name, image_bytes(4000, 30, fmt=fmt))
        response = client.post(f"/my/org/{organisation.slug}/profile/", _profile(organisation, logo=upload))
        assert response.status_code == 302, name
    assert len(_files_under(settings, "logos")) == 3


# Provider logos (the back office) --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "content", "message"), BAD_LOGOS)
def test_it_refuses_a_provider_logo_that_is_not_what_it_claims(back_office, settings, name, content, message):
    data = {"name": "Cloudforge", "slug": "cloudforge", "website": "", "contact_email": "", "description": ""}

    response = back_office.post("/admin/benefits/providers/new/", {**data, "logo": SimpleUploadedFile(name, content)})

    assert response.status_code == 200 and _message_shown(response, message)
    assert not Provider.objects.exists()
    assert _files_under(settings, "perk-providers") == []


def test_a_provider_with_a_real_logo_is_saved(back_office, settings):
    data = {"name": "Cloudforge", "slug": "cloudforge", "website": "", "contact_email": "", "description": ""}
    upload = SimpleUploadedFile("cloudforge.png", image_bytes())
    response = back_office.post("/admin/benefits/providers/new/", {**data, "logo": upload})
    assert response.status_code == 302
    assert Provider.objects.get().logo.name.startswith("perk-providers/")


# A perk's pool of codes (CSV) ------------------------------------------------------------------------------------


@pytest.fixture
def perk(db) -> Perk:
    provider = Provider.objects.create(name="Cloudforge", slug="cloudforge")
    return Perk.objects.create(
        provider=provider, title="Cloud credits", slug="cloud-credits", summary="s", value_line="v", terms="t"
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        pytest.param("codes.csv", HTML_PAGE, "holds a web page or SVG markup", id="html-named-csv"),
        pytest.param("codes.csv", SVG_WITH_SCRIPT, "holds a web page or SVG markup", id="svg-named-csv"),
        pytest.param("codes.csv", image_bytes(), "is not UTF-8 text", id="png-named-csv"),
        pytest.param("codes.csv", b"AAA-1\nAAA\x00-2\n", "is not UTF-8 text", id="nul-bytes"),
        pytest.param("codes.csv", xlsx_bytes([["AAA-1"]]), "is not UTF-8 text", id="xlsx-named-csv"),
        pytest.param("codes.html", b"AAA-1\n", "Choose a .csv file", id="html-extension"),
        pytest.param("codes.csv", b"A\n" * (5 * MB // 2 + 1), "larger than 5 MB", id="over-5mb"),
    ],
)
def test_it_refuses_a_code_file_that_is_not_a_csv(back_office, perk, name, content, message):
    response = back_office.post(f"/admin/benefits/perks/{perk.pk}/codes/", {"file": SimpleUploadedFile(name, content)})

    assert response.status_code == 400 and _message_shown(response, message)
    assert not PerkCode.objects.exists()


def test_a_csv_of_codes_is_still_accepted(back_office, perk):
    upload = SimpleUploadedFile("codes.csv", "\ufeffcode\nAAA-1\nMZ-2\n".encode())
    response = back_office.post(f"/admin/benefits/perks/{perk.pk}/codes/", {"file": upload})
    assert response.status_code == 302
    assert sorted(PerkCode.objects.values_list("code", flat=True)) == ["AAA-1", "MZ-2"]


# Member imports (CSV or XLSX) ------------------------------------------------------------------------------------

HEADER = b"organisation_name,contact_email\nAcme Robotics Ltd,ada@acme.example\n"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        pytest.param("members.csv", HTML_PAGE, "holds a web page or SVG markup", id="html-named-csv"),
        pytest.param("members.csv", SVG_WITH_SCRIPT, "holds a web page or SVG markup", id="svg-named-csv"),
        pytest.param("members.csv", image_bytes(), "is not UTF-8 text", id="png-named-csv"),
        pytest.param("members.xlsx", HEADER, "is named .xlsx but is not a .xlsx file", id="csv-named-xlsx"),
        pytest.param("members.xlsx", HTML_PAGE, "is named .xlsx but is not a .xlsx file", id="html-named-xlsx"),
        pytest.param(
            "members.xlsx",
            zip_bytes({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"}),
            "is named .xlsx but is not a .xlsx file",
            id="docx-named-xlsx",
        ),
        pytest.param("members.xlsx", zip_bytes({"evil.html": HTML_PAGE}), "is not a .xlsx file", id="zip-named-xlsx"),
        pytest.param("members.html", HEADER, "Choose a .csv or .xlsx file", id="html-extension"),
    ],
)
def test_it_refuses_an_import_file_that_is_not_a_spreadsheet(back_office, name, content, message):
    response = back_office.post("/admin/engagement/import/", {"file": SimpleUploadedFile(name, content)})

    assert response.status_code == 400 and _message_shown(response, message)
    assert not MemberImport.objects.exists()


def test_it_refuses_an_import_file_over_the_size_limit(back_office, monkeypatch):
    from membership.admin_forms import MemberImportForm

    monkeypatch.setattr(MemberImportForm, "MAX_BYTES", 1024)
    response = back_office.post("/admin/engagement/import/", {"file": SimpleUploadedFile("m.csv", HEADER * 40)})
    assert response.status_code == 400 and _message_shown(response, "larger than 50 MB")
    assert not MemberImport.objects.exists()


def test_it_refuses_a_workbook_that_unpacks_to_far_more_than_any_real_one(back_office):
    """A "zip bomb": a small file whose parts unpack to gigabytes, to swamp whatever reads it."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            for _ in range(110):
                sheet.write(b"<row/>" * 174_763)  # about 1 MB each: 110 MB, a few hundred KB once packed
    bomb = buffer.getvalue()
    assert len(bomb) < 1024 * 1024

    response = back_office.post("/admin/engagement/import/", {"file": SimpleUploadedFile("members.xlsx", bomb)})

    assert response.status_code == 400 and _message_shown(response, "far more than a real .xlsx file")
    assert not MemberImport.objects.exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [("members.csv", HEADER), ("members.xlsx", xlsx_bytes([["organisation_name"], ["Acme Robotics Ltd"]]))],
)
def test_a_real_spreadsheet_is_accepted_for_checking(back_office, name, content):
    response = back_office.post("/admin/engagement/import/", {"file": SimpleUploadedFile(name, content)})
    assert response.status_code == 302
    assert MemberImport.objects.get().filename == name


# Wagtail images and documents ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        pytest.param("photo.png", HTML_PAGE, "The extension does not match", id="html-named-png"),
        pytest.param("photo.png", SVG_WITH_SCRIPT, "The extension does not match", id="svg-named-png"),
        pytest.param("photo.svg", SVG_WITH_SCRIPT, "Not a supported image format", id="svg"),
        pytest.param("photo.png", image_bytes(fmt="JPEG"), "The extension does not match", id="jpeg-named-png"),
        pytest.param("photo.png", padded(image_bytes(), 5 * MB + 1), "This file is too big", id="over-5mb"),
        pytest.param("photo.png", image_bytes(8000, 5001, mode="1"), "too many pixels", id="over-40-megapixels"),
    ],
)
@pytest.mark.parametrize("url", ["/admin/images/add/", "/admin/images/multiple/add/"])
def test_it_refuses_a_back_office_image_that_is_not_what_it_claims(back_office, settings, url, name, content, message):
    from wagtail.models import Collection

    data = {"title": "Photo", "collection": Collection.get_first_root_node().pk}
    field = "files[]" if "multiple" in url else "file"  # the multiple uploader posts each file on its own
    response = back_office.post(url, {**data, field: SimpleUploadedFile(name, content)})

    assert response.status_code in (200, 400) and _message_shown(response, message)
    assert not get_image_model().objects.exists()
    assert _files_under(settings, "original_images") == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        pytest.param("report.pdf", HTML_PAGE, "named .pdf but is not a PDF", id="html-named-pdf"),
        pytest.param("report.csv", HTML_PAGE, "holds a web page or SVG markup", id="html-named-csv"),
        pytest.param("report.txt", SVG_WITH_SCRIPT, "holds a web page or SVG markup", id="svg-named-txt"),
        pytest.param("report.csv", image_bytes(), "is not UTF-8 text", id="png-named-csv"),
        pytest.param("report.docx", HTML_PAGE, "named .docx but is not a .docx file", id="html-named-docx"),
        pytest.param("report.xlsx", b"%PDF-1.7\n", "named .xlsx but is not a .xlsx file", id="pdf-named-xlsx"),
        pytest.param("report.odt", zip_bytes({"a.html": HTML_PAGE}), "not a .odt file", id="zip-named-odt"),
        pytest.param("report.rtf", HTML_PAGE, "not an RTF document", id="html-named-rtf"),
        pytest.param("report.zip", HTML_PAGE, "named .zip but is not a .zip file", id="html-named-zip"),
        pytest.param("report.html", HTML_PAGE, "must be one of: CSV, DOCX", id="html"),
        pytest.param("report.svg", SVG_WITH_SCRIPT, "must be one of: CSV, DOCX", id="svg"),
        pytest.param("report.pdf", padded(b"%PDF-1.7\n", 20 * MB + 1), "This file is too big", id="over-20mb"),
    ],
)
@pytest.mark.parametrize("url", ["/admin/documents/add/", "/admin/documents/multiple/add/"])
def test_it_refuses_a_back_office_document_that_is_not_what_it_claims(
    back_office, settings, url, name, content, message
):
    from wagtail.models import Collection

    data = {"title": "Report", "collection": Collection.get_first_root_node().pk}
    field = "files[]" if "multiple" in url else "file"
    response = back_office.post(url, {**data, field: SimpleUploadedFile(name, content)})

    assert response.status_code in (200, 400) and _message_shown(response, message)
    assert not get_document_model().objects.exists()
    assert _files_under(settings, "documents") == []


@pytest.mark.parametrize("url", ["/admin/images/multiple/add/", "/admin/documents/multiple/add/"])
def test_the_multiple_uploader_answers_a_post_without_a_file_with_400(back_office, url):
    from wagtail.models import Collection

    response = back_office.post(url, {"title": "Nothing", "collection": Collection.get_first_root_node().pk})

    assert response.status_code == 400 and b"Must upload a file" in response.content
    assert not get_image_model().objects.exists() and not get_document_model().objects.exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("report.pdf", b"%PDF-1.7\n%%EOF\n"),
        ("report.csv", b"name,town\nAcme,Hexham\n"),
        ("report.xlsx", xlsx_bytes([["name"], ["Acme"]])),
        ("report.rtf", b"{\\rtf1 Hello}"),
        ("report.zip", zip_bytes({"a.txt": b"hello"})),
    ],
)
def test_real_documents_are_kept(back_office, name, content):
    from wagtail.models import Collection

    data = {"title": "Report", "collection": Collection.get_first_root_node().pk}
    response = back_office.post("/admin/documents/add/", {**data, "file": SimpleUploadedFile(name, content)})
    assert response.status_code == 302
    assert get_document_model().objects.get().file.name.endswith(name.rsplit(".", 1)[1])
