"""The back office for events: registrations per event, the check-in screen and the attendee export."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cms.events import services
from cms.events.admin_views import safe_cell
from cms.events.models import EventRegistration
from cms.events.tickets import ticket_code
from membership.models import ActivityEvent, ActivityKind, AuditEntry, OrganisationMember
from tests.factories import add_member, make_event, make_organisation, make_staff, make_user

pytestmark = pytest.mark.django_db
Status = EventRegistration.Status


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def door_staff(db):
    """Staff at the door: may see registrations and check people in."""
    user = make_staff("door@netech.example", first_name="Dora", last_name="Door")
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="cms", codename__in=["view_eventregistration", "change_eventregistration"]
        )
    )
    return user


@pytest.fixture
def event(db):
    return make_event("Members' Networking Night", capacity=10, starts_in=timedelta(hours=1))


@pytest.fixture
def attendee(event):
    organisation = make_organisation("Wear Valley Software")
    user = make_user("sam@wear-valley.example", first_name="Sam", last_name="Rivers")
    add_member(organisation, user, OrganisationMember.Role.MEMBER)
    return services.register_for_event(event, user, organisation=organisation, name="Sam Rivers")


def check_in_url(event) -> str:
    return f"/admin/event-registrations/{event.pk}/check-in/"


def test_scanning_a_ticket_checks_its_holder_in_and_records_attendance_once(client, door_staff, event, attendee):
    client.force_login(door_staff)

    response = client.post(check_in_url(event), {"code": ticket_code(attendee)}, follow=True)

    assert "Checked in: Sam Rivers (Wear Valley Software)." in response.content.decode()
    checked = EventRegistration.objects.get(pk=attendee.pk)
    assert checked.attended_at is not None and checked.checked_in_by == door_staff
    attended = ActivityEvent.objects.get(kind=ActivityKind.EVENT_ATTENDED)
    assert (attended.organisation, attended.person) == (attendee.organisation, attendee.user)

    again = client.post(check_in_url(event), {"code": ticket_code(attendee)}, follow=True)
    assert "Sam Rivers (Wear Valley Software) was already checked in, at" in again.content.decode()
    typed = client.post(check_in_url(event), {"code": attendee.reference.lower()}, follow=True)
    assert "was already checked in" in typed.content.decode()
    assert ActivityEvent.objects.filter(kind=ActivityKind.EVENT_ATTENDED).count() == 1
    assert AuditEntry.objects.filter(action="events.registration.attended").count() == 1


def test_a_forged_or_unknown_code_checks_nobody_in(client, door_staff, event, attendee):
    client.force_login(door_staff)
    other_event = make_event("Another Night")
    elsewhere = services.register_for_event(other_event, make_user("x@example.org"), organisation=None, name="X")

    for code in (f"{attendee.reference}:forged", "NOTATICKET", ticket_code(elsewhere)):
        response = client.post(check_in_url(event), {"code": code})
        assert response.status_code == 400
        assert "No ticket for this event matches that code." in response.content.decode()
        assert f'value="{code}"' in response.content.decode()  # what was scanned stays in the box

    assert not EventRegistration.objects.filter(attended_at__isnull=False).exists()
    assert not ActivityEvent.objects.filter(kind=ActivityKind.EVENT_ATTENDED).exists()


def test_staff_search_by_name_email_or_organisation_and_check_in_from_the_list(client, door_staff, event, attendee):
    services.register_for_event(event, make_user("jo@example.org"), organisation=None, name="Jo Bloggs")
    client.force_login(door_staff)

    for query in ("rivers", "sam@wear", "wear valley"):
        html = client.get(check_in_url(event), {"q": query}).content.decode()
        assert "Sam Rivers" in html and "Jo Bloggs" not in html

    response = client.post(check_in_url(event), {"registration": attendee.pk, "q": "rivers"})
    assert response["Location"] == f"{check_in_url(event)}?q=rivers"
    assert EventRegistration.objects.get(pk=attendee.pk).attended_at is not None


def test_a_search_with_control_characters_is_read_without_them(client, door_staff, event, attendee):
    """PostgreSQL refuses a NUL in a query: the door's search drops control characters instead of failing."""
    client.force_login(door_staff)
    html = client.get(check_in_url(event), {"q": "riv\x00ers"}).content.decode()
    assert "Sam Rivers" in html
    assert client.get(f"/admin/event-registrations/{event.pk}/", {"q": "\x00"}).status_code == 200
    response = client.post(check_in_url(event), {"registration": attendee.pk, "q": "riv\x00ers"})
    assert response["Location"] == f"{check_in_url(event)}?q=rivers"


def test_only_confirmed_places_of_this_event_can_be_checked_in(client, door_staff, event, attendee):
    other_event = make_event("Elsewhere")
    elsewhere = services.register_for_event(other_event, make_user("y@example.org"), organisation=None, name="Y")
    full = make_event("Full House", capacity=1, starts_in=timedelta(hours=2))
    services.register_for_event(full, make_user("z@example.org"), organisation=None, name="Z")
    waiting = services.register_for_event(full, make_user("w@example.org"), organisation=None, name="Wai Ting")
    client.force_login(door_staff)

    assert client.post(check_in_url(event), {"registration": elsewhere.pk}).status_code == 404
    response = client.post(check_in_url(full), {"code": waiting.reference}, follow=True)
    assert "Wai Ting has no confirmed place (on the waitlist)." in response.content.decode()
    assert not EventRegistration.objects.filter(attended_at__isnull=False).exists()


def test_checking_in_needs_the_change_permission_and_lists_need_view(client, event, attendee):
    viewer = make_staff("viewer@netech.example")
    viewer.user_permissions.add(
        Permission.objects.get(content_type__app_label="cms", codename="view_eventregistration")
    )
    nobody = make_staff("nobody@netech.example")

    client.force_login(nobody)
    for url in ("/admin/event-registrations/", f"/admin/event-registrations/{event.pk}/", check_in_url(event)):
        assert client.get(url).status_code in (302, 403), url
    assert client.get(f"/admin/event-registrations/{event.pk}/attendees.csv").status_code in (302, 403)

    client.force_login(viewer)
    assert client.get(f"/admin/event-registrations/{event.pk}/").status_code == 200
    assert client.post(check_in_url(event), {"code": attendee.reference}).status_code in (302, 403)
    assert EventRegistration.objects.get(pk=attendee.pk).attended_at is None


def test_the_registrations_list_filters_by_status_and_links_the_export(client, door_staff):
    full = make_event("Sold Out", capacity=1)
    services.register_for_event(full, make_user("in@example.org"), organisation=None, name="In Side")
    services.register_for_event(full, make_user("out@example.org"), organisation=None, name="Out Side")
    client.force_login(door_staff)

    html = client.get(f"/admin/event-registrations/{full.pk}/").content.decode()
    assert "1 confirmed" in html and "1 on the waitlist" in html
    assert f"/admin/event-registrations/{full.pk}/attendees.csv" in html
    waiting = client.get(f"/admin/event-registrations/{full.pk}/", {"status": "waitlisted"}).content.decode()
    assert "Out Side" in waiting and "In Side" not in waiting

    overview = client.get("/admin/event-registrations/").content.decode()
    assert "Sold Out" in overview


def test_the_export_neutralises_cells_a_spreadsheet_would_run(client, door_staff, event):
    for number, name in enumerate(['=HYPERLINK("http://evil")', "+44 191 000", "-1", "@SUM(A1)", "\tTab", "Plain"]):
        services.register_for_event(event, make_user(f"csv{number}@example.org"), organisation=None, name=name)
    client.force_login(door_staff)

    response = client.get(f"/admin/event-registrations/{event.pk}/attendees.csv")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:5] == ["Reference", "Name", "E-mail", "Organisation", "Status"]
    names = sorted(row[1] for row in rows[1:])
    assert names == sorted(['\'=HYPERLINK("http://evil")', "'+44 191 000", "'-1", "'@SUM(A1)", "Plain", "Tab"])
    assert safe_cell("\tTab") == "'\tTab" and safe_cell("\rX") == "'\rX" and safe_cell(42) == "42"


def test_registration_lists_run_a_fixed_number_of_queries(client, door_staff, event):
    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    client.force_login(door_staff)
    urls = [f"/admin/event-registrations/{event.pk}/", check_in_url(event), "/admin/event-registrations/"]
    for number in range(2):
        organisation = make_organisation(f"Org {number}")
        services.register_for_event(event, make_user(f"q{number}@example.org"), organisation=None, name=f"Q {number}")
        add_member(organisation, EventRegistration.objects.latest("pk").user)
    for url in urls:
        queries(url)  # warm the admin's caches
    small = [queries(url) for url in urls]
    for number in range(2, 20):
        services.register_for_event(event, make_user(f"q{number}@example.org"), organisation=None, name=f"Q {number}")
        make_event(f"More {number}")
    assert [queries(url) for url in urls] == small


def test_event_pages_in_the_page_tree_lead_to_registrations_and_check_in(client, door_staff, superuser, event):
    client.force_login(superuser)
    html = client.get(f"/admin/pages/{event.get_parent().pk}/").content.decode()
    assert f"/admin/event-registrations/{event.pk}/" in html
    assert f"/admin/event-registrations/{event.pk}/check-in/" in html


def test_attendance_is_in_the_engagement_export(client, door_staff, event, attendee):
    import csv
    import io

    client.force_login(door_staff)
    services.check_in(attendee, door_staff)

    response = client.get("/admin/engagement/export/", {"export": "attendance", "format": "csv"})

    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0] == ["event", "event_date", "name", "email", "organisation_name", "status", "checked_in_on"]
    assert rows[1][:5] == [
        "Members' Networking Night",
        event.local_starts_at.date().isoformat(),
        "Sam Rivers",
        "sam@wear-valley.example",
        "Wear Valley Software",
    ]
    assert rows[1][6] == timezone.localdate().isoformat()  # checked in today
