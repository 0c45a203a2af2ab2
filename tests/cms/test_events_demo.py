"""seed_demo's events: a realistic programme, past and upcoming, with registrations and attendance; idempotent."""

import pytest
from django.core.management import call_command

from cms.events.models import EventPage, EventRegistration
from membership.models import ActivityEvent, ActivityKind


def _counts() -> dict:
    return {
        "events": EventPage.objects.count(),
        "registrations": EventRegistration.objects.count(),
        "attended": EventRegistration.objects.filter(attended_at__isnull=False).count(),
        "activity": ActivityEvent.objects.filter(kind__startswith="event_").count(),
    }


@pytest.mark.django_db
def test_seed_demo_adds_past_and_upcoming_events_with_registrations_once(client, capsys):
    call_command("seed_demo", orgs=30, quiet_login=True)
    first = _counts()
    call_command("seed_demo", orgs=30, quiet_login=True)
    assert _counts() == first

    upcoming, past = EventPage.objects.upcoming(), EventPage.objects.past()
    assert upcoming.count() >= 4 and past.count() >= 3
    assert all(event.registrations.exists() for event in past)
    assert EventRegistration.objects.filter(event__in=past, attended_at__isnull=False).exists()
    # The engagement demo adds a history of its own (keys "demo:..."); the registrations record theirs once each.
    attended = ActivityEvent.objects.filter(kind=ActivityKind.EVENT_ATTENDED, key__startswith="event_attended:event:")
    assert attended.count() == first["attended"]
    assert EventRegistration.objects.filter(status=EventRegistration.Status.WAITLISTED).exists()
    towns = " ".join(EventPage.objects.values_list("venue_address", flat=True))
    for town in ("Newcastle upon Tyne", "Sunderland", "Gateshead", "Middlesbrough", "Durham"):
        assert town in towns
    html = client.get("/events/").content.decode()
    assert "Members&#x27; Winter Networking Evening" in html and "Past events" in html
