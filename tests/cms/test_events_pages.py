"""Event pages: they create, render and are edited in the back office; lists run a fixed number of queries."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from wagtail.models import PageViewRestriction

from cms.events import services
from cms.events.models import EventIndexPage, EventPage, EventRegistration
from membership.models import Tier
from tests.factories import add_member, make_event, make_event_index, make_organisation, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Many people register here and none logs in with a password: a fast hasher keeps the tests quick.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _register(event: EventPage, number: int) -> EventRegistration:
    user = make_user(f"guest{number}@example.org", first_name="Guest", last_name=str(number))
    return services.register_for_event(event, user, organisation=None, name=user.get_full_name())


def test_it_lists_upcoming_events_soonest_first_and_past_ones_apart(client):
    make_event("Later", starts_in=timedelta(days=30))
    make_event("Sooner", starts_in=timedelta(days=3))
    make_event("Last month", starts_in=timedelta(days=-30))

    html = client.get("/events/").content.decode()

    assert html.index("Sooner") < html.index("Later") < html.index("Past events") < html.index("Last month")
    assert "40 places left" in html
    assert [e.title for e in EventPage.objects.upcoming()] == ["Sooner", "Later"]
    assert [e.title for e in EventPage.objects.past()] == ["Last month"]


def test_an_unpublished_event_is_not_listed_as_upcoming(client):
    make_event("Draft event", live=False)
    assert not EventPage.objects.upcoming().exists()
    assert "Draft event" not in client.get("/events/").content.decode()


def test_the_programme_does_not_name_an_event_its_page_would_refuse(client):
    """An event restricted to a group or a password in Wagtail's privacy settings stays out of the events list for
    anyone its page refuses: its title, date, venue and summary are not public."""
    make_event("Open Breakfast")
    board_only = make_event("Board Away Day", summary="The board plans the secret merger.")
    password_only = make_event("Sponsors Dinner")
    board = Group.objects.create(name="Advisory board")
    PageViewRestriction.objects.create(page=board_only, restriction_type=PageViewRestriction.GROUPS).groups.set([board])
    PageViewRestriction.objects.create(
        page=password_only, restriction_type=PageViewRestriction.PASSWORD, password="s3cret"
    )

    html = client.get("/events/").content.decode()
    assert "Open Breakfast" in html
    assert "Board Away Day" not in html and "secret merger" not in html
    assert "Sponsors Dinner" not in html

    member_of_board = make_user("chair@board.example")
    member_of_board.groups.add(board)
    client.force_login(member_of_board)
    html = client.get("/events/").content.decode()
    assert "Board Away Day" in html  # the page would let them in, so the list names it
    assert "Sponsors Dinner" not in html


def test_the_event_page_shows_times_in_the_events_time_zone_and_prices(client):
    start = datetime(2031, 7, 8, 17, 0, tzinfo=UTC)  # 18:00 in London (BST)
    tier = Tier.objects.create(name="Growth", slug="growth")
    event = make_event(
        "Summer Social",
        starts_at=start,
        member_price_pence=1500,
        non_member_price_pence=3000,
        free_for_tiers=[tier],
    )

    html = client.get(event.url).content.decode()

    assert "Tuesday 8 July 2031, 18:00 to 20:00 BST" in html
    assert "Europe/London time" in html
    assert "Members: £15.00 (free for Growth members)" in html
    assert "Non-members: £30.00" in html
    assert "Log in to register" in html

    event.time_zone = "America/New_York"
    event.save()
    html = client.get(event.url).content.decode()
    assert "Tuesday 8 July 2031, 13:00 to 15:00 EDT" in html


def test_the_online_link_is_shown_only_to_people_with_a_confirmed_place(client):
    event = make_event("Remote Meetup", venue_name="", venue_address="", online_url="https://meet.example.org/ne-tech")
    attendee = make_user("attendee@example.org", first_name="Ada", last_name="Hall")
    stranger = make_user("stranger@example.org")
    registration = services.register_for_event(event, attendee, organisation=None, name="Ada Hall")

    assert "meet.example.org" not in client.get(event.url).content.decode()
    client.force_login(stranger)
    assert "meet.example.org" not in client.get(event.url).content.decode()
    client.force_login(attendee)
    ticket = client.get(f"/my/events/{registration.pk}/").content.decode()
    assert "https://meet.example.org/ne-tech" in ticket


def test_it_refuses_an_event_that_ends_before_it_starts_or_has_nowhere_to_be():
    start = timezone.now() + timedelta(days=3)
    event = EventPage(title="Backwards", slug="backwards", starts_at=start, ends_at=start, capacity=5, summary="x")
    with pytest.raises(ValidationError) as refused:
        event.full_clean()
    assert "The event must end after it starts." in refused.value.message_dict["ends_at"]
    assert "Give a venue, an online link, or both." in refused.value.message_dict["venue_name"]


def test_editors_create_events_in_the_back_office(client, superuser):
    index = make_event_index()
    client.force_login(superuser)

    response = client.get(f"/admin/pages/add/cms/eventpage/{index.pk}/")
    assert response.status_code == 200
    for label in ("Places and registration", "free for members of", "Time zone", "online link"):
        assert label.lower() in response.content.decode().lower()

    event = make_event("Edited Event")
    response = client.get(f"/admin/pages/{event.pk}/edit/")
    assert response.status_code == 200
    assert f"/admin/event-registrations/{event.pk}/" in response.content.decode()


def test_events_go_only_under_the_events_index():
    assert EventPage.parent_page_types == ["cms.EventIndexPage"]
    assert EventIndexPage.subpage_types == ["cms.EventPage"]


def _queries(client, url: str) -> int:
    client.get(url)  # warm the site's cached root paths, as a running site has them
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def _grow(events: int, registrations_each: int, offset: int) -> None:
    tier = Tier.objects.get_or_create(name="Growth", slug="growth")[0]
    for number in range(events):
        event = make_event(
            f"Event {offset + number}", starts_in=timedelta(days=2 + offset + number), free_for_tiers=[tier]
        )
        for guest in range(registrations_each):
            _register(event, (offset + number) * 1000 + guest)
    for number in range(events):
        make_event(f"Past {offset + number}", starts_in=timedelta(days=-10 - offset - number))


def test_the_event_index_runs_the_same_queries_when_events_grow_tenfold(client):
    _grow(events=1, registrations_each=2, offset=0)
    small = _queries(client, "/events/")
    _grow(events=9, registrations_each=2, offset=100)
    assert EventPage.objects.upcoming().count() == 10
    assert _queries(client, "/events/") == small


def test_an_event_page_runs_the_same_queries_when_registrations_grow_tenfold(client):
    member = make_user("member@tyne-analytics.example", first_name="Mia", last_name="Robson")
    add_member(make_organisation("Tyne Analytics"), member)
    event = make_event("Busy Event", capacity=500)
    for number in range(3):
        _register(event, number)
    client.force_login(member)
    small = _queries(client, event.url)
    for number in range(3, 30):
        _register(event, number)
    _grow(events=5, registrations_each=1, offset=200)
    assert _queries(client, event.url) == small


def test_editors_preview_a_new_event_before_it_is_saved(rf, superuser):
    index = make_event_index()
    start = timezone.now() + timedelta(days=5)
    event = EventPage(title="Preview Night", slug="preview-night", starts_at=start, ends_at=start + timedelta(hours=2))
    event.capacity, event.summary, event.venue_name = 30, "A preview.", "The Catalyst"
    event.path, event.depth = index.path + "0099", index.depth + 1  # where the add form would put it

    request = rf.get("/")
    request.user = superuser
    response = event.make_preview_request(request)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Preview Night" in html and "30 of 30 left" in html
