"""The staff CRM in the Wagtail admin: organisations, their record, people, follow-ups and the home panel."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from membership import services
from membership.models import (
    AuditEntry,
    FollowUp,
    Note,
    Organisation,
    OrganisationMember,
    OrganisationType,
    SizeBand,
    Specialism,
    Subscription,
    Tier,
)
from membership.permissions import grant_membership_team_permissions, membership_team_permissions
from tests import factories

INDEX = "/admin/membership/organisation/"
PEOPLE = "/admin/membership/people/"
FOLLOW_UPS = "/admin/membership/follow-ups/"
EXPORT_HEADER = [
    "Name",
    "Slug",
    "Type",
    "Size",
    "Town",
    "Postcode",
    "Local authority",
    "Website",
    "Company number",
    "Account manager e-mail",
    "Tier",
    "Status",
    "Renews",
    "Active contacts",
    "Created",
]


@pytest.fixture
def crm_staff(staff_user):
    """The engagement manager, with the membership team's CRM permissions."""
    grant_membership_team_permissions(Group.objects.get(name="Membership team"))
    return staff_user


@pytest.fixture
def crm(client, crm_staff):
    client.force_login(crm_staff)
    return client


@pytest.fixture
def tyne(staff_user):
    """Tyne Analytics with an admin, a colleague and a former colleague, one note and some history."""
    organisation = factories.make_organisation(
        "Tyne Analytics", organisation_type=OrganisationType.SME, account_manager=staff_user, postcode="NE1 4XF"
    )
    admin = factories.make_user("noah@tyne-analytics.example", first_name="Noah", last_name="Patel")
    colleague = factories.make_user("mia.robson@tyne-analytics.example", first_name="Mia", last_name="Robson")
    former = factories.make_user("old.hand@tyne-analytics.example", first_name="Olive", last_name="Hand")
    factories.add_member(organisation, admin, OrganisationMember.Role.ADMIN)
    OrganisationMember.objects.create(organisation=organisation, user=colleague, job_title="Data engineer")
    services.remove_member(factories.add_member(organisation, former), admin)
    services.add_note(organisation, staff_user, kind="call", date=timezone.localdate(), body="Keen on the AI perk.")
    return organisation


def record(organisation: Organisation) -> str:
    return reverse("crm_organisations:record", args=[organisation.pk])


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


# The organisations listing --------------------------------------------------------------------------


def test_it_filters_organisations_by_type(crm):
    factories.make_organisation("Code Club North East", organisation_type=OrganisationType.CHARITY)
    factories.make_organisation("Cheviot Cyber", organisation_type=OrganisationType.SME)

    response = crm.get(INDEX, {"organisation_type": OrganisationType.CHARITY})

    assert response.status_code == 200
    assert "Code Club North East" in response.text
    assert "Cheviot Cyber" not in response.text


def test_it_filters_organisations_by_town_and_account_manager(crm, crm_staff):
    factories.make_organisation("Hexham Hardware", town="Hexham", account_manager=crm_staff)
    factories.make_organisation("Hexham Bakery Tech", town="Hexham")
    factories.make_organisation("Durham Data", town="Durham", account_manager=crm_staff)

    response = crm.get(INDEX, {"town": "Hexham", "account_manager": crm_staff.pk})

    assert "Hexham Hardware" in response.text
    assert "Hexham Bakery Tech" not in response.text
    assert "Durham Data" not in response.text


def test_it_finds_organisations_by_part_of_their_name(crm, tyne):
    factories.make_organisation("Wearside Robotics", town="Sunderland")

    response = crm.get(INDEX, {"q": "tyne"})

    assert "Tyne Analytics" in response.text
    assert "Wearside Robotics" not in response.text


def test_it_links_each_organisation_to_its_record_and_counts_active_contacts(crm, tyne):
    response = crm.get(INDEX)

    assert f'href="{record(tyne)}"' in response.text
    listed = response.context["object_list"]
    assert [o.active_contacts for o in listed if o.pk == tyne.pk] == [2]  # the former colleague not counted


def test_it_sorts_organisations_by_town_and_by_when_they_were_created(crm):
    now = timezone.now()
    factories.make_organisation("Blyth Bytes", town="Blyth", created_at=now - timedelta(days=2))
    factories.make_organisation("Alnwick Apps", town="Alnwick", created_at=now - timedelta(days=1))
    factories.make_organisation("Consett Code", town="Consett", created_at=now - timedelta(days=3))

    def names(ordering: str) -> list[str]:
        return [o.name for o in crm.get(INDEX, {"ordering": ordering}).context["object_list"]]

    assert names("town") == ["Alnwick Apps", "Blyth Bytes", "Consett Code"]
    assert names("-created_at") == ["Alnwick Apps", "Blyth Bytes", "Consett Code"]
    assert names("created_at") == ["Consett Code", "Blyth Bytes", "Alnwick Apps"]


def test_it_exports_organisations_as_csv(crm, tyne, crm_staff):
    factories.make_organisation("Wearside Robotics", organisation_type=OrganisationType.STARTUP)

    response = crm.get(INDEX, {"export": "csv"})

    assert response.status_code == 200
    header, *rows = csv_rows(response)
    assert header == EXPORT_HEADER
    assert [row[0] for row in rows] == ["Tyne Analytics", "Wearside Robotics"]
    tyne_row = dict(zip(header, rows[0], strict=True))
    assert tyne_row["Type"] == "SME"
    assert tyne_row["Account manager e-mail"] == crm_staff.email
    assert tyne_row["Active contacts"] == "2"


def test_it_exports_only_what_the_filters_show(crm, tyne):
    factories.make_organisation("Wearside Robotics", organisation_type=OrganisationType.STARTUP)

    response = crm.get(INDEX, {"export": "csv", "organisation_type": OrganisationType.STARTUP})

    assert [row[0] for row in csv_rows(response)[1:]] == ["Wearside Robotics"]


def test_it_exports_organisations_as_a_workbook(crm, tyne):
    response = crm.get(INDEX, {"export": "xlsx"})

    assert response.status_code == 200
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(workbook.active.iter_rows(values_only=True))
    assert list(rows[0]) == EXPORT_HEADER
    assert len(rows) == 2
    assert rows[1][0] == "Tyne Analytics"
    assert rows[1][13] == 2


def _bulk_organisations(count: int, start: int, manager) -> None:
    Organisation.objects.bulk_create(
        Organisation(
            name=f"Organisation {number:04}",
            slug=f"organisation-{number}",
            organisation_type=OrganisationType.SME,
            size_band=SizeBand.SMALL,
            town="Gateshead",
            account_manager=manager,
        )
        for number in range(start, start + count)
    )


def _listing_queries(client, **params) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(INDEX, params)
    assert response.status_code == 200
    return len(queries)


def test_it_lists_50_and_500_organisations_with_the_same_queries(crm, tyne, crm_staff):
    tyne.specialisms.add(Specialism.objects.create(name="AI", slug="ai"))
    tyne.tags.add("at risk")
    _bulk_organisations(50, 0, crm_staff)
    few = _listing_queries(crm), _listing_queries(crm, q="organisation", town="Gateshead")

    _bulk_organisations(450, 50, crm_staff)
    many = _listing_queries(crm), _listing_queries(crm, q="organisation", town="Gateshead")

    assert few == many


# The organisation record ----------------------------------------------------------------------------


def test_it_shows_the_record_with_contacts_history_and_notes(crm, tyne):
    services.record_audit("membership.test.older", "Something older happened", organisation=tyne)
    services.record_audit("membership.test.newer", "Something newer happened", organisation=tyne)

    response = crm.get(record(tyne))

    assert response.status_code == 200
    html = response.text
    assert "mia.robson@tyne-analytics.example" in html and "Data engineer" in html
    assert "No subscription yet" in html
    former = html.split("Former contacts", 1)[1]
    assert "Olive Hand" in former and "Former contact" in former
    assert "Olive Hand" not in html.split("Former contacts", 1)[0].split("Contacts", 1)[1]
    assert html.index("Something newer happened") < html.index("Something older happened")
    assert "Olive Hand left Tyne Analytics" in html or "removed Olive Hand" in html
    assert "Keen on the AI perk." in html
    assert reverse("crm_organisations:edit", args=[tyne.pk]) in html


@pytest.mark.parametrize(("stripe_id", "offline"), [(None, True), ("sub_billed", False)])
def test_the_record_shows_the_price_to_the_penny_and_a_membership_the_team_must_bill(
    client, staff_user, tyne, settings, stripe_id, offline
):
    settings.DEMO_PAYMENTS = False
    client.force_login(factories.make_staff("finance@netech.example", superuser=True))
    Subscription.objects.create(
        organisation=tyne,
        tier=Tier.objects.create(name="Growth", slug="growth"),
        status=Subscription.Status.ACTIVE,
        amount_pence=123_456,
        current_period_end=timezone.now() + timedelta(days=90),
        stripe_subscription_id=stripe_id,
    )

    html = client.get(record(tyne)).text

    assert "£1,234.56 a year ex VAT" in html
    assert ("not billed online: the team arranges each payment" in html) is offline


def test_it_answers_404_for_an_unknown_organisation(crm):
    response = crm.get(reverse("crm_organisations:record", args=[999_999]))

    assert response.status_code == 404


def test_it_adds_a_note(crm, tyne, crm_staff):
    response = crm.post(
        record(tyne),
        {"action": "add_note", "note-kind": "meeting", "note-date": "2025-03-04", "note-body": "Met at the expo."},
    )

    assert response.status_code == 302
    assert response["Location"] == record(tyne) + "#notes-section"
    note = Note.objects.get(body="Met at the expo.")
    assert (note.organisation, note.author, note.kind, str(note.date)) == (tyne, crm_staff, "meeting", "2025-03-04")
    assert "Note added." in crm.get(response["Location"]).text


def test_it_keeps_what_was_typed_when_a_note_has_errors(crm, tyne):
    response = crm.post(
        record(tyne),
        {"action": "add_note", "note-kind": "call", "note-date": "not a date", "note-body": "Call about renewal"},
    )

    assert response.status_code == 200
    assert "Call about renewal" in response.text
    assert response.context["note_form"].errors["date"]
    assert not Note.objects.filter(body="Call about renewal").exists()


def test_it_adds_a_follow_up(crm, tyne, crm_staff):
    colleague = factories.make_staff("finance@netech.example", first_name="Tom", last_name="Reed")
    due = timezone.localdate() + timedelta(days=7)

    response = crm.post(
        record(tyne),
        {
            "action": "add_follow_up",
            "follow_up-title": "Send the renewal quote",
            "follow_up-due_date": due.isoformat(),
            "follow_up-assignee": colleague.pk,
        },
    )

    assert response.status_code == 302
    follow_up = FollowUp.objects.get(title="Send the renewal quote")
    assert (follow_up.organisation, follow_up.created_by, follow_up.assignee) == (tyne, crm_staff, colleague)
    assert follow_up.due_date == due and not follow_up.done


def test_it_keeps_what_was_typed_when_a_follow_up_has_errors(crm, tyne):
    response = crm.post(
        record(tyne),
        {"action": "add_follow_up", "follow_up-title": "Chase the PO number", "follow_up-due_date": ""},
    )

    assert response.status_code == 200
    assert 'value="Chase the PO number"' in response.text
    assert set(response.context["follow_up_form"].errors) == {"due_date", "assignee"}
    assert not FollowUp.objects.exists()


def test_it_marks_a_follow_up_done_and_open_again(crm, tyne, crm_staff):
    follow_up = services.add_follow_up(
        tyne, crm_staff, title="Call Noah", due_date=timezone.localdate(), assignee=crm_staff
    )
    done_url = reverse("crm_follow_ups:done", args=[follow_up.pk])

    response = crm.post(done_url, {"done": "1", "next": record(tyne)})

    assert response.status_code == 302 and response["Location"] == record(tyne)
    follow_up.refresh_from_db()
    assert follow_up.done
    crm.post(done_url, {"done": "0"})
    follow_up.refresh_from_db()
    assert not follow_up.done


def test_it_keeps_a_viewer_from_changing_follow_ups_or_editing_or_deleting_the_organisation(client, tyne):
    """Staff who may only view organisations: each id-taking back-office address that changes something refuses
    them (the back office answers a refusal with its home page and a message)."""
    manager = factories.make_staff("manager@netech.example")
    follow_up = services.add_follow_up(
        tyne, manager, title="Call Noah", due_date=timezone.localdate(), assignee=manager
    )
    reader = factories.make_staff("reader@netech.example")
    reader.user_permissions.add(*[p for p in membership_team_permissions() if p.codename == "view_organisation"])
    client.force_login(reader)

    done = client.post(reverse("crm_follow_ups:done", args=[follow_up.pk]), {"done": "1"})
    edit = client.post(reverse("crm_organisations:edit", args=[tyne.pk]), _form_data(tyne, name="Hijacked"))
    delete = client.post(reverse("crm_organisations:delete", args=[tyne.pk]))
    pages = [client.get(reverse(f"crm_organisations:{name}", args=[tyne.pk])) for name in ("edit", "delete")]

    assert all(r.status_code == 302 and r["Location"] == "/admin/" for r in [done, edit, delete, *pages])
    follow_up.refresh_from_db()
    tyne.refresh_from_db()
    assert not follow_up.done and tyne.name == "Tyne Analytics"
    assert Organisation.objects.filter(pk=tyne.pk).exists()


def test_it_refuses_a_post_without_a_csrf_token(crm_staff, tyne):
    client = Client(enforce_csrf_checks=True)
    client.force_login(crm_staff)

    response = client.post(
        record(tyne), {"action": "add_note", "note-kind": "call", "note-date": "2025-03-04", "note-body": "Forged"}
    )

    assert response.status_code == 403
    assert not Note.objects.filter(body="Forged").exists()


# Edits through the admin form are audited ------------------------------------------------------------


def _form_data(organisation: Organisation, **changes) -> dict:
    data = {
        "name": organisation.name,
        "slug": organisation.slug,
        "organisation_type": organisation.organisation_type,
        "size_band": organisation.size_band,
        "town": organisation.town,
        "postcode": organisation.postcode,
        "account_manager": organisation.account_manager_id or "",
        "tags": "",
    }
    return {**data, **changes}


def test_it_audits_an_edit_with_what_changed(crm, tyne, crm_staff):
    response = crm.post(
        reverse("crm_organisations:edit", args=[tyne.pk]),
        _form_data(tyne, town="Gateshead", seat_limit="10", tags='"at risk", renewal'),
    )

    assert response.status_code == 302, response.context["form"].errors if response.context else ""
    assert response["Location"] == record(tyne)
    entry = AuditEntry.objects.get(action="membership.organisation.updated")
    assert entry.actor == crm_staff and entry.organisation == tyne
    assert entry.changes["town"] == ["Newcastle upon Tyne", "Gateshead"]
    assert entry.changes["seat_limit"] == [None, 10]
    assert entry.changes["tags"] == [[], ["at risk", "renewal"]]
    assert "postcode" not in entry.changes


def test_it_audits_an_organisation_created_in_the_admin(crm, crm_staff):
    response = crm.post(
        reverse("crm_organisations:add"),
        {"name": "Roker Robotics", "slug": "", "organisation_type": "startup", "size_band": "1-9", "tags": ""},
    )

    assert response.status_code == 302
    organisation = Organisation.objects.get(name="Roker Robotics")
    assert response["Location"] == record(organisation)
    assert organisation.slug == "roker-robotics"
    entry = AuditEntry.objects.get(organisation=organisation)
    assert (entry.action, entry.actor) == ("membership.organisation.created", crm_staff)


def test_it_writes_no_audit_entry_for_an_edit_that_changes_nothing(crm, tyne):
    crm.post(reverse("crm_organisations:edit", args=[tyne.pk]), _form_data(tyne))

    assert not AuditEntry.objects.filter(action="membership.organisation.updated").exists()


def test_it_audits_an_organisation_deleted_in_the_admin(client, superuser, tyne):
    client.force_login(superuser)

    response = client.post(reverse("crm_organisations:delete", args=[tyne.pk]))

    assert response.status_code == 302
    assert not Organisation.objects.filter(pk=tyne.pk).exists()
    entry = AuditEntry.objects.get(action="membership.organisation.deleted")
    assert entry.actor == superuser and "Tyne Analytics" in entry.summary


# The home panel --------------------------------------------------------------------------------------


def test_it_shows_my_open_follow_ups_on_the_admin_home_overdue_first(crm, tyne, crm_staff):
    other = factories.make_staff("finance@netech.example")
    today = timezone.localdate()
    services.add_follow_up(tyne, crm_staff, title="Next week call", due_date=today + timedelta(7), assignee=crm_staff)
    services.add_follow_up(
        tyne, crm_staff, title="Late renewal chase", due_date=today - timedelta(3), assignee=crm_staff
    )
    services.add_follow_up(tyne, crm_staff, title="Somebody else job", due_date=today, assignee=other)
    finished = services.add_follow_up(tyne, crm_staff, title="Already done", due_date=today, assignee=crm_staff)
    services.set_follow_up_done(finished, True)

    html = crm.get("/admin/").text

    panel = html.split('id="my-follow-ups-section"', 1)[1].split("</section>", 1)[0]
    assert panel.index("Late renewal chase") < panel.index("Next week call")
    late_row = panel.split("Late renewal chase", 1)[1].split("</tr>", 1)[0]
    assert "Overdue" in late_row
    assert "Overdue" not in panel.split("Next week call", 1)[1].split("</tr>", 1)[0]
    assert "Somebody else job" not in panel and "Already done" not in panel
    assert f"{record(tyne)}#follow-ups-section" in panel


def test_it_says_nothing_is_due_when_nothing_is(crm):
    html = crm.get("/admin/").text

    assert "Nothing due." in html.split('id="my-follow-ups-section"', 1)[1]


def test_it_shows_my_follow_ups_with_a_fixed_number_of_queries(crm, tyne, crm_staff):
    def home_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            crm.get("/admin/")
        return len(queries)

    due = timezone.localdate()
    services.add_follow_up(tyne, crm_staff, title="One", due_date=due, assignee=crm_staff)
    one = home_queries()
    for number in range(30):
        other = factories.make_organisation(f"Other {number}")
        services.add_follow_up(other, crm_staff, title=f"Task {number}", due_date=due, assignee=crm_staff)

    assert home_queries() == one + 1  # one more: the count behind "All 31 of your open follow-ups"


# People and follow-up listings -----------------------------------------------------------------------


def test_it_finds_people_by_part_of_their_email_address(crm, tyne):
    response = crm.get(PEOPLE, {"q": "mia.rob"})

    assert response.status_code == 200
    assert "mia.robson@tyne-analytics.example" in response.text
    assert "noah@tyne-analytics.example" not in response.text
    assert f'href="{record(tyne)}"' in response.text


def test_it_filters_people_by_status(crm, tyne):
    response = crm.get(PEOPLE, {"status": "former"})

    assert [m.user.email for m in response.context["object_list"]] == ["old.hand@tyne-analytics.example"]


def test_it_exports_people(crm, tyne):
    header, *rows = csv_rows(crm.get(PEOPLE, {"export": "csv", "status": "active"}))

    assert header == ["First name", "Last name", "E-mail", "Organisation", "Role", "Job title", "Since", "Left"]
    assert sorted(row[2] for row in rows) == ["mia.robson@tyne-analytics.example", "noah@tyne-analytics.example"]


def test_it_lists_open_follow_ups_and_filters_overdue_ones(crm, tyne, crm_staff):
    today = timezone.localdate()
    services.add_follow_up(tyne, crm_staff, title="Late one", due_date=today - timedelta(1), assignee=crm_staff)
    services.add_follow_up(tyne, crm_staff, title="Future one", due_date=today + timedelta(1), assignee=crm_staff)
    done = services.add_follow_up(tyne, crm_staff, title="Done one", due_date=today, assignee=crm_staff)
    services.set_follow_up_done(done, True)

    everything = crm.get(FOLLOW_UPS).text
    overdue = crm.get(FOLLOW_UPS, {"overdue": "true"}).text

    assert "Late one" in everything and "Future one" in everything and "Done one" not in everything
    assert "Late one" in overdue and "Future one" not in overdue


def _follow_up_staff(email: str, *codenames: str):
    person = factories.make_staff(email)
    person.user_permissions.add(*[p for p in membership_team_permissions() if p.codename in codenames])
    return person


@pytest.mark.parametrize("allowed", [False, True])
def test_it_lists_follow_ups_only_to_staff_who_may_view_them(client, tyne, allowed):
    """Adding follow-ups does not carry reading them: the listing, its results, its export, the organisation
    record's list, the admin home panel and the menu each need ``view_followup``."""
    manager = factories.make_staff("manager@netech.example")
    services.add_follow_up(tyne, manager, title="Chase the board", due_date=timezone.localdate(), assignee=manager)
    codenames = ["view_organisation", "add_followup"] + (["view_followup"] if allowed else [])
    adder = _follow_up_staff("adder@netech.example", *codenames)
    services.add_follow_up(tyne, manager, title="Mine to do", due_date=timezone.localdate(), assignee=adder)
    client.force_login(adder)

    listings = [client.get(url) for url in (FOLLOW_UPS, f"{FOLLOW_UPS}results/", f"{FOLLOW_UPS}?export=csv")]
    page, home = client.get(record(tyne)).text, client.get("/admin/").text

    if allowed:
        assert all(response.status_code == 200 for response in listings)
    else:
        assert all(r.status_code == 302 and r["Location"] == "/admin/" for r in listings)
    for private in ["Chase the board", "Mine to do"]:
        assert (private in page) is allowed, private
    assert ("Mine to do" in home) is allowed
    assert (f'"{FOLLOW_UPS}"' in home) is allowed  # the CRM menu's Follow-ups item
    assert "Add a follow-up" in page


def test_it_lets_staff_add_a_follow_up_they_may_not_read(client, tyne):
    adder = _follow_up_staff("adder@netech.example", "view_organisation", "add_followup")
    client.force_login(adder)

    response = client.post(
        record(tyne),
        {
            "action": "add_follow_up",
            "follow_up-title": "Send the renewal quote",
            "follow_up-due_date": timezone.localdate().isoformat(),
            "follow_up-assignee": adder.pk,
        },
    )

    assert response.status_code == 302
    assert FollowUp.objects.get().title == "Send the renewal quote"
    assert "You may add follow-ups but not read them." in client.get(record(tyne)).text


def test_it_marks_a_follow_up_done_only_for_staff_who_may_change_follow_ups(client, tyne):
    """The one follow-up address that takes an id: staff who may add and view follow-ups, but not change them,
    are refused; an unknown id is a 404; there is no address to edit or delete one."""
    manager = factories.make_staff("manager@netech.example")
    follow_up = services.add_follow_up(
        tyne, manager, title="Call Noah", due_date=timezone.localdate(), assignee=manager
    )
    done_url = reverse("crm_follow_ups:done", args=[follow_up.pk])
    client.force_login(_follow_up_staff("adder@netech.example", "view_organisation", "add_followup", "view_followup"))

    refused = client.post(done_url, {"done": "1"})
    client.force_login(_follow_up_staff("changer@netech.example", "view_organisation", "change_followup"))
    unknown = client.post(reverse("crm_follow_ups:done", args=[follow_up.pk + 1000]), {"done": "1"})
    by_get = client.get(done_url)
    others = [client.get(f"{FOLLOW_UPS}{follow_up.pk}/{view}/") for view in ("edit", "delete")]

    assert refused.status_code == 302 and refused["Location"] == "/admin/"
    follow_up.refresh_from_db()
    assert not follow_up.done
    assert unknown.status_code == 404 and by_get.status_code == 405
    assert all(response.status_code == 404 for response in others)


def test_it_makes_a_specialism_slug_from_its_name(crm):
    response = crm.post(reverse("crm_specialisms:add"), {"name": "Quantum Computing", "slug": ""})

    assert response.status_code == 302
    assert Specialism.objects.get(name="Quantum Computing").slug == "quantum-computing"


# Who may see it ---------------------------------------------------------------------------------------


def _crm_urls(organisation: Organisation) -> list[str]:
    return [INDEX, f"{INDEX}?export=csv", record(organisation), PEOPLE, FOLLOW_UPS, "/admin/membership/specialisms/"]


def test_it_keeps_members_out_of_the_crm(client, member, crm_staff):
    tyne = Organisation.objects.get(memberships__user=member)  # even their own organisation's record
    services.add_note(tyne, crm_staff, kind="call", date=timezone.localdate(), body="Staff only.")
    follow_up = services.add_follow_up(
        tyne, crm_staff, title="Private", due_date=timezone.localdate(), assignee=crm_staff
    )
    client.force_login(member)

    for url in _crm_urls(tyne):
        response = client.get(url)
        assert response.status_code in (302, 403), url
        assert response.status_code == 403 or "login" in response["Location"], url
    client.post(record(tyne), {"action": "add_note", "note-kind": "call", "note-date": "2025-03-04", "note-body": "x"})
    client.post(reverse("crm_follow_ups:done", args=[follow_up.pk]), {"done": "1"})
    client.post(reverse("crm_organisations:edit", args=[tyne.pk]), _form_data(tyne, name="Hijacked"))

    assert Note.objects.filter(organisation=tyne).count() == 1
    follow_up.refresh_from_db()
    tyne.refresh_from_db()
    assert not follow_up.done and tyne.name == "Tyne Analytics"


def test_it_keeps_staff_without_crm_permissions_out_of_the_record(client, staff_user, tyne):
    client.force_login(staff_user)

    response = client.get(record(tyne))
    client.post(record(tyne), {"action": "add_note", "note-kind": "call", "note-date": "2025-03-04", "note-body": "x"})

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert Note.objects.filter(organisation=tyne).count() == 1
    assert client.get(INDEX).status_code == 302


def test_it_lets_a_viewer_read_the_record_but_not_add_to_it(client, tyne):
    reader = factories.make_staff("reader@netech.example")
    reader.user_permissions.add(*[p for p in membership_team_permissions() if p.codename == "view_organisation"])
    client.force_login(reader)

    page = client.get(record(tyne))
    client.post(record(tyne), {"action": "add_note", "note-kind": "call", "note-date": "2025-03-04", "note-body": "x"})

    assert page.status_code == 200 and "Add a note" not in page.text
    assert Note.objects.filter(organisation=tyne).count() == 1


@pytest.mark.parametrize("allowed", [False, True])
def test_it_shows_notes_the_audit_trail_and_the_price_only_to_staff_allowed_each(client, tyne, allowed):
    """Viewing organisations does not carry reading CRM notes, the audit trail or what a member pays: the group
    editor offers each apart."""
    tier = Tier.objects.create(name="Growth", slug="growth")
    Subscription.objects.create(
        organisation=tyne,
        tier=tier,
        status=Subscription.Status.ACTIVE,
        amount_pence=120_000,
        payment_method=Subscription.PaymentMethod.INVOICE,
        po_number="PO-77321",
    )
    services.record_audit("membership.test.private", "The billing e-mail became ceo@tyne.example", organisation=tyne)
    reader = factories.make_staff("reader@netech.example")
    codenames = ["view_organisation"] + (["view_note", "view_auditentry", "view_subscription"] if allowed else [])
    reader.user_permissions.add(*[p for p in membership_team_permissions() if p.codename in codenames])
    client.force_login(reader)

    html = client.get(record(tyne)).text

    assert "Growth" in html and "Active" in html  # the membership itself is CRM information
    for private in ["Keen on the AI perk.", "ceo@tyne.example", "PO-77321", "£1,200 a year ex VAT"]:
        assert (private in html) is allowed, private


def test_it_grants_the_team_exactly_the_crm_permissions(db):
    group = Group.objects.create(name="CRM")

    grant_membership_team_permissions(group)
    grant_membership_team_permissions(group)

    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {"view_organisation", "change_organisation", "add_note", "change_followup", "view_auditentry"} <= codenames
    assert "delete_organisation" not in codenames and "change_organisationmember" not in codenames
    assert {"change_tier", "delete_tierprice", "view_subscription", "change_invoice"} <= codenames
    assert "change_subscription" not in codenames  # subscriptions change only through billing
    assert len(codenames) == 24
