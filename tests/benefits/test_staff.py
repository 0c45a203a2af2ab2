"""The back office's Perks menu: the perk list, code-pool upload and the redemptions report."""

import csv
import io

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from benefits import services
from benefits.models import PerkCode, Redemption
from benefits.permissions import grant_perks_team_permissions
from membership.models import AuditEntry
from tests.benefits.conftest import make_perk, person_at

pytestmark = pytest.mark.django_db


@pytest.fixture
def perks_staff(client, staff_user):
    grant_perks_team_permissions(Group.objects.get(name="Membership team"))
    client.force_login(staff_user)
    return staff_user


def upload(client, perk, text: str, **data):
    file = SimpleUploadedFile("codes.csv", text.encode(), content_type="text/csv")
    return client.post(reverse("benefits_perks:codes", args=[perk.pk]), {"file": file, **data})


def test_staff_upload_a_pool_of_codes(client, perks_staff, provider):
    perk = make_perk(provider, "Cloud credits", codes=0)

    response = upload(client, perk, "code\nAAA-1\nAAA-2\nAAA-3\n")

    assert response.status_code == 302
    assert sorted(PerkCode.objects.values_list("code", flat=True)) == ["AAA-1", "AAA-2", "AAA-3"]
    assert AuditEntry.objects.get(action="benefits.codes.added").changes == {"codes_left": [0, 3]}


def test_a_file_with_duplicates_adds_nothing_until_staff_choose_to_skip_them(client, perks_staff, provider):
    perk = make_perk(provider, "Cloud credits", codes=0)
    PerkCode.objects.create(perk=perk, code="OLD-1")

    response = upload(client, perk, "NEW-1\nNEW-2\nNEW-1\nOLD-1\n")

    assert response.status_code == 400
    content = response.content.decode()
    assert "1 repeated within the file: NEW-1" in content
    assert "1 already in the pool: OLD-1" in content
    assert PerkCode.objects.count() == 1

    response = upload(client, perk, "NEW-1\nNEW-2\nNEW-1\nOLD-1\n", skip_duplicates="on")
    assert response.status_code == 302
    assert sorted(PerkCode.objects.values_list("code", flat=True)) == ["NEW-1", "NEW-2", "OLD-1"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00bad", "The file is not UTF-8 text."),
        (("X" * 101).encode(), "Row 1: the code is longer than 100 characters."),
        (b"code\n\n", "The file has no new codes."),
    ],
)
def test_a_bad_code_file_is_explained_and_adds_nothing(client, perks_staff, provider, content, message):
    perk = make_perk(provider, "Cloud credits", codes=0)
    file = SimpleUploadedFile("codes.csv", content, content_type="text/csv")

    response = client.post(reverse("benefits_perks:codes", args=[perk.pk]), {"file": file, "skip_duplicates": "on"})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not PerkCode.objects.exists()


def test_staff_without_the_perks_permissions_cannot_upload(client, staff_user, provider):
    perk = make_perk(provider, "Cloud credits", codes=0)
    client.force_login(staff_user)

    response = upload(client, perk, "AAA-1\n")

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert not PerkCode.objects.exists()


def test_the_perk_list_shows_codes_left_and_flags_a_low_pool(
    client, perks_staff, provider, django_assert_max_num_queries
):
    make_perk(provider, "Plenty", codes=30)
    make_perk(provider, "Nearly gone", codes=2)

    with django_assert_max_num_queries(30):
        response = client.get(reverse("benefits_perks:index"))

    content = response.content.decode()
    assert response.status_code == 200
    assert "30" in content
    assert "2 (low)" in content


def _redeemed(growth_member, community_member, provider):
    first = make_perk(provider, '=HYPERLINK("http://evil.example")', codes=3)
    second = make_perk(provider, "Second perk", codes=3)
    for perk in (first, second):
        services.redeem_perk(perk, growth_member, growth_member.memberships.get().organisation)
    services.redeem_perk(first, community_member, community_member.memberships.get().organisation)
    colleague = person_at(growth_member.memberships.get().organisation, "c@tyne-analytics.example")
    services.redeem_perk(first, colleague, growth_member.memberships.get().organisation)
    return first, second


def test_the_report_counts_redemptions_per_perk_and_provider(
    client, perks_staff, growth_member, community_member, provider
):
    first, _ = _redeemed(growth_member, community_member, provider)

    per_perk = client.get(reverse("benefits_report:index"), {"group": "perk"}).context["rows"]
    per_provider = client.get(reverse("benefits_report:index"), {"group": "provider"}).context["rows"]
    per_org = client.get(reverse("benefits_report:index"), {"group": "organisation"}).context["rows"]

    assert [(r["label"], r["redemptions"], r["organisations"]) for r in per_perk] == [
        (first.title, 3, 2),
        ("Second perk", 1, 1),
    ]
    assert [(r["label"], r["redemptions"]) for r in per_provider] == [("Cloudforge", 4)]
    assert [(r["label"], r["redemptions"]) for r in per_org] == [("Tyne Analytics", 3), ("Wear Start", 1)]


def test_the_report_filters_by_period_and_exports_safe_csv(
    client, perks_staff, growth_member, community_member, provider
):
    _redeemed(growth_member, community_member, provider)
    Redemption.objects.filter(perk__title="Second perk").update(created_at="2025-01-15T10:00Z")

    recent = client.get(reverse("benefits_report:index"), {"start": "2026-01-01", "group": "perk"})
    assert [r["label"] for r in recent.context["rows"]] == ['=HYPERLINK("http://evil.example")']

    exported = client.get(reverse("benefits_report:index"), {"start": "2026-01-01", "group": "perk", "export": "csv"})
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0][:3] == ["Perk", "Redemptions", "Organisations"]
    assert rows[1][:3] == ['\'=HYPERLINK("http://evil.example")', "3", "2"]

    bad = client.get(reverse("benefits_report:index"), {"start": "2026-02-01", "end": "2026-01-01"})
    assert bad.status_code == 400
    assert "The period cannot end before it starts." in bad.content.decode()


def test_members_cannot_see_the_report(client, growth_member):
    client.force_login(growth_member)
    response = client.get(reverse("benefits_report:index"))
    assert response.status_code in (302, 403)
    assert response.status_code == 403 or response["Location"] != reverse("benefits_report:index")


def test_redemptions_are_in_the_engagement_export_with_safe_cells(
    client, perks_staff, growth_member, community_member, provider
):
    import csv as csv_module

    from membership.permissions import grant_membership_team_permissions

    grant_membership_team_permissions(Group.objects.get(name="Membership team"))
    _redeemed(growth_member, community_member, provider)

    response = client.get("/admin/engagement/export/", {"export": "redemptions", "format": "csv"})

    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv_module.reader(io.StringIO(text)))
    assert rows[0] == ["perk", "provider", "organisation_name", "contact_email", "redeemed_on"]
    assert len(rows) == 5
    assert rows[1][:3] == ['\'=HYPERLINK("http://evil.example")', "Cloudforge", "Tyne Analytics"]
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
