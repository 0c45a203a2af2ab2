"""Importing in the back office: upload, a preview of every row's outcome, then confirm; large files in the
background with a progress bar; only for staff holding the import permission."""

import os
import time

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from membership import importing
from membership.models import AuditEntry, MemberImport, MemberImportRow, Organisation, Tier, TierPrice
from membership.permissions import grant_engagement_permissions
from tests import factories
from tests.conftest import require
from tests.membership.import_files import ACME, STANDARD_ROWS, contact, write_csv

IMPORT = "/admin/engagement/import/"


@pytest.fixture
def growth(db) -> Tier:
    tier = Tier.objects.create(name="Growth", slug="growth")
    TierPrice.objects.create(tier=tier, organisation_type="sme", size_band="10-49", annual_pence=144_000)
    return tier


@pytest.fixture
def importer(client, staff_user):
    grant_engagement_permissions(Group.objects.get(name="Membership team"), can_import=True)
    client.force_login(staff_user)
    return client


def upload(client, path, **extra):
    with open(path, "rb") as handle:
        return client.post(IMPORT, {"file": SimpleUploadedFile(os.path.basename(path), handle.read())}, **extra)


@pytest.mark.django_db
def test_staff_upload_see_every_rows_outcome_and_then_import(importer, tmp_path, growth, staff_user):
    response = upload(importer, write_csv(tmp_path / "members.csv", STANDARD_ROWS))

    record = MemberImport.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{IMPORT}{record.pk}/"
    assert _stored(record).startswith(b"organisation_name,")  # kept in the database until it is imported
    assert record.status == MemberImport.Status.CHECKED and record.uploaded_by == staff_user
    assert Organisation.objects.count() == 0  # a preview writes nothing
    page = importer.get(response["Location"]).content.decode()
    assert "Ready to import" in page and "Import 3 rows" in page
    assert list(record.row_results.values_list("row_number", "outcome")) == [(2, "new"), (3, "new"), (4, "new")]
    assert "new organisation Acme Robotics Ltd" in page

    done = importer.post(f"{IMPORT}{record.pk}/confirm/", follow=True)

    record.refresh_from_db()
    assert record.status == MemberImport.Status.DONE
    assert "members.csv is imported." in done.content.decode()
    assert Organisation.objects.count() == 2
    assert AuditEntry.objects.get(action="membership.import.completed").actor == staff_user
    assert bytes(MemberImport.objects.values_list("content", flat=True).get()) == b""  # the file is not kept


def _stored(record) -> bytes:
    return bytes(MemberImport.objects.filter(pk=record.pk).values_list("content", flat=True).get())


@pytest.mark.django_db
def test_a_file_with_an_error_shows_the_row_and_cannot_be_imported(importer, tmp_path, growth):
    rows = [*STANDARD_ROWS, contact({**ACME, "renewal_date": "31/02/2027"}, "dee@acme-robotics.example", "Dee", "Ray")]
    upload(importer, write_csv(tmp_path / "members.csv", rows))
    record = MemberImport.objects.get()

    page = importer.get(f"{IMPORT}{record.pk}/?outcome=error").content.decode()
    refused = importer.post(f"{IMPORT}{record.pk}/confirm/", follow=True).content.decode()

    assert record.status == MemberImport.Status.INVALID
    assert _stored(record) == b""  # it can never be imported: its personal data goes
    assert "Error: 1" in page
    assert "<code>renewal_date</code>: “31/02/2027” is not a date" in page
    assert "<td>5</td>" in page and "ann.lee@acme-robotics.example" not in page  # only the error rows
    assert "Only a file that has been checked and has no errors can be imported." in refused
    assert Organisation.objects.count() == 0


@pytest.mark.django_db
def test_the_upload_form_keeps_its_errors_by_its_field(importer, tmp_path):
    path = tmp_path / "members.pdf"
    path.write_bytes(b"%PDF-1.4")

    response = upload(importer, path)

    assert response.status_code == 400
    assert "Choose a .csv or .xlsx file." in response.content.decode()
    assert not MemberImport.objects.exists()


@pytest.mark.django_db
def test_only_staff_holding_the_import_permission_may_import(client, staff_user, tmp_path, growth):
    grant_engagement_permissions(Group.objects.get(name="Membership team"))  # the workspace, not importing
    client.force_login(staff_user)
    path = write_csv(tmp_path / "members.csv", STANDARD_ROWS)

    page = client.get(IMPORT)
    posted = upload(client, path)

    assert page.status_code == 302 and page["Location"] == "/admin/"
    assert posted.status_code == 302 and posted["Location"] == "/admin/"
    assert not MemberImport.objects.exists() and Organisation.objects.count() == 0
    # And someone else's checked import cannot be confirmed by them either.
    importer = factories.make_staff("data@netech.example")
    importer.user_permissions.add(Permission.objects.get(codename="import_members"))
    record, _ = importing.start_import(SimpleUploadedFile("members.csv", path.read_bytes()), importer)
    preview = client.get(f"{IMPORT}{record.pk}/")  # its rows hold people's names and addresses
    assert preview.status_code == 302 and preview["Location"] == "/admin/"
    assert client.post(f"{IMPORT}{record.pk}/confirm/").status_code == 302
    record.refresh_from_db()
    assert record.status == MemberImport.Status.CHECKED and Organisation.objects.count() == 0


@pytest.mark.django_db
def test_a_large_file_is_checked_in_the_background_with_a_progress_bar(
    importer, tmp_path, growth, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(importing, "INLINE_MAX_BYTES", 100)  # every file is "large"
    path = write_csv(tmp_path / "members.csv", STANDARD_ROWS)

    with django_capture_on_commit_callbacks() as queued:
        response = upload(importer, path)
    waiting = importer.get(response["Location"]).content.decode()
    for callback in queued:  # the worker picks the task up
        callback()
    ready = importer.get(response["Location"]).content.decode()

    assert '<meta http-equiv="refresh" content="2">' in waiting
    assert '<progress class="engagement-progress" max="100" value="0"' in waiting
    assert "Checking every row" in waiting
    assert "Import 3 rows" in ready and "http-equiv" not in ready
    assert MemberImport.objects.get().status == MemberImport.Status.CHECKED


@pytest.mark.django_db
def test_a_broken_import_says_so_instead_of_running_for_ever(importer, tmp_path, growth, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(importing, "import_members", explode)
    upload(importer, write_csv(tmp_path / "members.csv", STANDARD_ROWS))

    record = MemberImport.objects.get()
    assert record.status == MemberImport.Status.FAILED
    assert "nothing was written" in record.problems[0]


@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_checks_and_imports_a_large_file(celery_worker, importer, tmp_path, monkeypatch):
    require(bool(os.environ.get("CELERY_BROKER_URL")), "a Celery broker (set CELERY_BROKER_URL)")
    tier = Tier.objects.create(name="Growth", slug="growth")
    TierPrice.objects.create(tier=tier, organisation_type="sme", size_band="10-49", annual_pence=144_000)
    monkeypatch.setattr(importing, "INLINE_MAX_BYTES", 100)
    response = upload(importer, write_csv(tmp_path / "members.csv", STANDARD_ROWS))
    record = MemberImport.objects.get()

    _wait_for(record, MemberImport.Status.CHECKED)
    importer.post(f"{IMPORT}{record.pk}/confirm/")
    _wait_for(record, MemberImport.Status.DONE)

    assert response.status_code == 302
    assert Organisation.objects.count() == 2
    assert MemberImportRow.objects.filter(member_import=record).count() == 3


def _wait_for(record: MemberImport, status: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        record.refresh_from_db()
        if record.status == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"the import stayed {record.status}")
