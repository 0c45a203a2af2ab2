"""An event as an iCalendar file, attached to confirmation e-mails and offered as a download.

Times carry the event's own time zone (a TZID with its VTIMEZONE), so calendars show them correctly wherever
the reader is.
"""

from django.conf import settings
from django.utils import timezone
from django.utils.html import strip_tags
from icalendar import Calendar, Event

from cms.events.models import EventPage, EventRegistration


def event_calendar(event: EventPage, registration: EventRegistration | None = None) -> bytes:
    """A one-event calendar. With a confirmed ``registration`` it includes the online link, which only people
    with a place may see."""
    calendar = Calendar()
    calendar.add("prodid", f"-//{settings.WAGTAIL_SITE_NAME}//Events//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    calendar.add_component(_vevent(event, registration))
    calendar.add_missing_timezones()
    return calendar.to_ical()


def _vevent(event: EventPage, registration: EventRegistration | None) -> Event:
    host = settings.SITE_URL.split("://", 1)[-1].split("/", 1)[0]
    vevent = Event()
    vevent.add("uid", f"event-{event.pk}@{host}")
    vevent.add("dtstamp", timezone.now())
    vevent.add("dtstart", event.local_starts_at)
    vevent.add("dtend", event.local_ends_at)
    vevent.add("summary", event.title)
    url = event.get_full_url() or settings.SITE_URL
    show_link = registration is not None and registration.status == EventRegistration.Status.CONFIRMED
    description = [event.summary, strip_tags(event.description).strip(), url]
    if show_link and event.online_url:
        description.append(f"Join online: {event.online_url}")
    if registration is not None:
        description.append(f"Ticket reference: {registration.reference}")
    vevent.add("description", "\n\n".join(part for part in description if part))
    vevent.add("url", url)
    location = event.venue_line
    if not location and show_link:
        location = event.online_url
    if location:
        vevent.add("location", location)
    return vevent
