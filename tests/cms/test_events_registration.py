"""Registering for events: prices by membership, places and the waitlist, cancellation, tickets and privacy."""

from datetime import timedelta
from email.mime.image import MIMEImage

import icalendar
import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from wagtail.models import PageViewRestriction

from cms.events import services
from cms.events.models import EventRegistration
from cms.events.services import EventError
from cms.events.tickets import reference_from_code, ticket_code
from membership.models import ActivityEvent, ActivityKind, AuditEntry, OrganisationMember, Subscription, Tier
from tests.factories import add_member, make_event, make_organisation, make_user

pytestmark = pytest.mark.django_db
Status = EventRegistration.Status


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def growth(db) -> Tier:
    return Tier.objects.create(name="Growth", slug="growth")


@pytest.fixture
def community(db) -> Tier:
    return Tier.objects.create(name="Community", slug="community")


def subscribe(organisation, tier: Tier, status: str = Subscription.Status.ACTIVE) -> Subscription:
    now = timezone.now()
    return Subscription.objects.create(
        organisation=organisation,
        tier=tier,
        status=status,
        amount_pence=90_000,
        current_period_start=now - timedelta(days=30),
        current_period_end=now + timedelta(days=335),
    )


def person(email: str, organisation=None, **names):
    user = make_user(email, **names)
    if organisation is not None:
        add_member(organisation, user, OrganisationMember.Role.MEMBER)
    return user


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run what a block queues for after its commit (the e-mails) as it ends, as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def register(committed):
    def register(event, user, organisation=None, name="A Person") -> EventRegistration:
        with committed():
            return services.register_for_event(event, user, organisation=organisation, name=name)

    return register


@pytest.fixture
def cancel(committed):
    def cancel(registration, actor) -> EventRegistration:
        with committed():
            return services.cancel_registration(registration, actor)

    return cancel


# Prices ----------------------------------------------------------------------------------------------------------


def test_members_of_an_included_tier_attend_free_others_pay_member_or_non_member_price(growth, community):
    event = make_event(member_price_pence=1500, non_member_price_pence=4000, free_for_tiers=[growth])
    growing, small, lapsed = (make_organisation(n) for n in ("Growing Ltd", "Small Ltd", "Lapsed Ltd"))
    subscribe(growing, growth)
    subscribe(small, community)
    subscribe(lapsed, growth, status=Subscription.Status.LAPSED)

    included, member, non_member = (services.price_for(event, o) for o in (growing, small, lapsed))
    individual = services.price_for(event, None)

    assert (included.pricing, included.price_pence) == ("included", 0)
    assert included.reason == "included in Growing Ltd's Growth membership"
    assert (member.pricing, member.price_pence) == ("member", 1500)
    assert (non_member.pricing, non_member.price_pence) == ("non_member", 4000)
    assert non_member.reason == "Lapsed Ltd's membership is not active, so the non-member price applies"
    assert (individual.pricing, individual.price_pence) == ("non_member", 4000)


def test_an_organisation_in_grace_keeps_member_pricing(growth):
    event = make_event(member_price_pence=1500, non_member_price_pence=4000)
    organisation = make_organisation("Graceful Ltd")
    subscribe(organisation, growth, status=Subscription.Status.GRACE)
    assert services.price_for(event, organisation).price_pence == 1500


def test_the_event_page_tells_a_lapsed_organisations_member_why_they_pay_more(client, growth):
    event = make_event(member_price_pence=1500, non_member_price_pence=4000)
    lapsed = make_organisation("Lapsed Ltd")
    subscribe(lapsed, growth, status=Subscription.Status.LAPSED)
    client.force_login(person("ex@lapsed.example", lapsed))

    html = client.get(event.url).content.decode()

    assert "Lapsed Ltd: £40.00 (Lapsed Ltd&#x27;s membership is not active, so the non-member price applies)" in html
    assert "Myself, as an individual: £40.00" in html


# Registering -----------------------------------------------------------------------------------------------------


def test_a_member_registers_under_their_organisation_and_it_counts_as_activity(client, mailoutbox, growth, committed):
    organisation = make_organisation("Tyne Analytics")
    subscribe(organisation, growth)
    member = person("mia@tyne-analytics.example", organisation, first_name="Mia", last_name="Robson")
    event = make_event(free_for_tiers=[growth])
    client.force_login(member)

    with committed():
        response = client.post(
            f"/my/events/register/{event.pk}/", {"register_as": str(organisation.pk), "name": "Mia Robson"}
        )

    registration = EventRegistration.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/my/events/{registration.pk}/"
    assert (registration.status, registration.organisation, registration.pricing) == (
        Status.CONFIRMED,
        organisation,
        "included",
    )
    activity = ActivityEvent.objects.get(kind=ActivityKind.EVENT_REGISTERED)
    assert (activity.organisation, activity.person, activity.detail) == (organisation, member, event.title)
    assert AuditEntry.objects.filter(action="events.registration.confirmed", organisation=organisation).exists()
    assert len(mailoutbox) == 1
    page = client.get(response["Location"]).content.decode()
    assert "You are registered" in page and registration.reference in page


def test_the_public_register_as_individuals_with_a_verified_account(client, mailoutbox, committed):
    event = make_event()
    visitor = person("visitor@example.org")
    client.force_login(visitor)

    with committed():
        client.post(f"/my/events/register/{event.pk}/", {"register_as": "individual", "name": "Vic Visitor"})

    registration = EventRegistration.objects.get()
    assert (registration.organisation, registration.name, registration.email) == (None, "Vic Visitor", visitor.email)
    assert registration.status == Status.CONFIRMED
    assert not ActivityEvent.objects.exists()  # no organisation to credit
    assert mailoutbox[0].to == ["visitor@example.org"]


def test_an_unverified_account_cannot_register(register):
    event = make_event()
    with pytest.raises(EventError, match="verify your e-mail"):
        register(event, make_user("new@example.org", verified=False))
    assert not EventRegistration.objects.exists()


def test_a_refused_registration_says_why_on_the_event_page_with_the_badge_name_as_typed(client):
    event = make_event()
    client.force_login(make_user("new@example.org", verified=False))

    response = client.post(f"/my/events/register/{event.pk}/", {"register_as": "individual", "name": "Dr Nia Okafor"})

    assert response.status_code == 400
    page = response.content.decode()
    assert "Please verify your e-mail address before registering" in page
    assert 'value="Dr Nia Okafor"' in page
    assert not EventRegistration.objects.exists()


def test_someone_cannot_register_under_an_organisation_they_do_not_belong_to(client, register):
    event = make_event()
    theirs = make_organisation("Someone Else Ltd")
    outsider = person("outsider@example.org")

    with pytest.raises(EventError, match="only register under an organisation you belong to"):
        register(event, outsider, theirs)

    client.force_login(outsider)
    response = client.post(f"/my/events/register/{event.pk}/", {"register_as": str(theirs.pk), "name": "Out Sider"})
    assert response.status_code == 400  # not one of the choices offered to this user
    assert "Select a valid choice" in response.content.decode()
    assert 'value="Out Sider"' in response.content.decode()  # what was typed is kept
    assert not EventRegistration.objects.exists()


@pytest.mark.parametrize("restriction_type", [PageViewRestriction.GROUPS, PageViewRestriction.PASSWORD])
def test_an_event_behind_page_privacy_cannot_be_registered_for_by_its_id(client, restriction_type):
    """Editors can restrict an event's page to groups or to a password; registering by the page's id must not get
    round that, with its ticket and its online link."""
    event = make_event("Board away day", online_url="https://meet.example.org/board-only")
    restriction = PageViewRestriction.objects.create(page=event, restriction_type=restriction_type, password="s3cret")
    board = Group.objects.create(name="Advisory board")
    restriction.groups.set([board])
    outsider = person("outsider@elsewhere.example")
    client.force_login(outsider)
    assert "board-only" not in client.get(event.url).text  # the page itself is refused

    form = {"register_as": "individual", "name": "Out Sider"}
    assert client.post(f"/my/events/register/{event.pk}/", form).status_code == 404
    assert client.get(f"/my/events/register/{event.pk}/").status_code == 404
    assert not EventRegistration.objects.exists()

    if restriction_type == PageViewRestriction.GROUPS:  # one of the group registers as before
        outsider.groups.add(board)
        assert client.post(f"/my/events/register/{event.pk}/", form).status_code == 302
        assert EventRegistration.objects.get().user == outsider


def test_a_blank_badge_name_is_refused_and_the_choice_kept(client):
    event = make_event()
    organisation = make_organisation("Chooser Ltd")
    client.force_login(person("blank@chooser.example", organisation))
    response = client.post(f"/my/events/register/{event.pk}/", {"register_as": "individual", "name": "  "})
    assert response.status_code == 400
    html = response.content.decode()
    assert "This field is required." in html
    assert 'value="individual" id="id_register_as_1" required checked>' in html
    assert f'value="{organisation.pk}" id="id_register_as_0" required>' in html
    assert "Chooser Ltd: Free</label>" in html  # nothing to explain when it is free for all
    assert not EventRegistration.objects.exists()


def test_one_registration_per_person_per_event(client, register):
    event = make_event()
    user = person("twice@example.org")
    register(event, user)
    with pytest.raises(EventError, match="already registered"):
        register(event, user)

    client.force_login(user)
    response = client.post(f"/my/events/register/{event.pk}/", {"register_as": "individual", "name": "Twice"})
    assert response.status_code == 302
    assert EventRegistration.objects.count() == 1


def test_registration_is_refused_outside_its_window(register):
    opens = timezone.now() + timedelta(days=2)
    not_yet = make_event("Not Yet", registration_opens_at=opens)
    closed = make_event("Closed", registration_closes_at=timezone.now() - timedelta(hours=1))
    started = make_event("Started", starts_in=timedelta(hours=-1), hours=3)
    user = person("eager@example.org")

    with pytest.raises(EventError, match="Registration opens on"):
        register(not_yet, user)
    for event in (closed, started):
        with pytest.raises(EventError, match="has closed"):
            register(event, user)
    assert not EventRegistration.objects.exists()


def test_when_full_people_join_the_waitlist_in_order(mailoutbox, register):
    event = make_event(capacity=1)
    first, second, third = (person(f"p{n}@example.org") for n in range(3))

    assert register(event, first).status == Status.CONFIRMED
    waiting = [register(event, second), register(event, third)]

    assert [r.status for r in waiting] == [Status.WAITLISTED, Status.WAITLISTED]
    assert [services.waitlist_position(r) for r in waiting] == [1, 2]
    assert mailoutbox[1].subject == f"You are on the waitlist for {event.title}"
    assert "(number 1)" in mailoutbox[1].body


# Cancelling and the waitlist ---------------------------------------------------------------------------------------


def test_cancelling_promotes_the_first_on_the_waitlist_who_is_emailed(mailoutbox, register, cancel):
    event = make_event(capacity=1)
    holder = person("holder@example.org")
    first, second = person("first@example.org"), person("second@example.org")
    held = register(event, holder)
    waiting_first = register(event, first, name="First Waiting")
    waiting_second = register(event, second)
    mailoutbox.clear()

    cancel(held, holder)

    statuses = {r.pk: r.status for r in EventRegistration.objects.all()}
    assert statuses == {
        held.pk: Status.CANCELLED,
        waiting_first.pk: Status.CONFIRMED,
        waiting_second.pk: Status.WAITLISTED,
    }
    assert [m.to for m in mailoutbox] == [["first@example.org"]]
    assert mailoutbox[0].subject == f"A place came up: your ticket for {event.title}"
    assert AuditEntry.objects.filter(action="events.registration.promoted").count() == 1
    # Freeing the place again promotes the next.
    cancel(EventRegistration.objects.get(pk=waiting_first.pk), first)
    assert EventRegistration.objects.get(pk=waiting_second.pk).status == Status.CONFIRMED


def test_a_paid_waitlist_place_is_offered_and_held_for_a_day(mailoutbox, register, cancel):
    event = make_event(capacity=1, non_member_price_pence=2500)
    holder, waiting = person("holder@example.org"), person("waiting@example.org")
    held = register(event, holder)
    EventRegistration.objects.filter(pk=held.pk).update(status=Status.CONFIRMED, amount_paid_pence=2500)
    queued = register(event, waiting)
    mailoutbox.clear()

    cancel(EventRegistration.objects.get(pk=held.pk), holder)

    offered = EventRegistration.objects.get(pk=queued.pk)
    assert offered.status == Status.PENDING_PAYMENT
    assert timedelta(hours=23) < offered.hold_expires_at - timezone.now() <= timedelta(hours=24)
    assert mailoutbox[0].subject.startswith(f"A place came up at {event.title}: pay by ")
    assert "£25.00 was paid" in AuditEntry.objects.get(action="events.registration.cancelled").summary


def test_cancelling_twice_or_after_the_start_is_refused(register, cancel):
    event = make_event()
    user = person("canceller@example.org")
    registration = register(event, user)
    cancel(registration, user)
    with pytest.raises(EventError, match="already cancelled"):
        cancel(registration, user)

    started = make_event("Under Way")
    later = register(started, user)
    started.starts_at = timezone.now() - timedelta(minutes=5)
    started.save()
    with pytest.raises(EventError, match="already started"):
        cancel(later, user)


def test_someone_who_cancelled_may_register_again(register, cancel):
    event = make_event()
    user = person("again@example.org")
    cancel(register(event, user), user)
    assert register(event, user).status == Status.CONFIRMED


def test_registering_again_after_cancelling_is_one_occasion_of_activity(register, cancel):
    """The engagement score counts a person's place at an event once, however often they cancel and come back."""
    from membership.models import ActivityEvent, ActivityKind

    event, organisation = make_event(), make_organisation("Tyne Robotics")
    user = person("again@example.org", organisation)
    for _ in range(3):
        cancel(register(event, user, organisation), user)
    register(event, user, organisation)

    registered = ActivityEvent.objects.filter(organisation=organisation, kind=ActivityKind.EVENT_REGISTERED)
    assert registered.count() == 1
    other = person("colleague@example.org", organisation)
    register(event, other, organisation)
    assert registered.count() == 2  # a colleague's place is an occasion of its own


def test_activity_recorded_under_the_old_keys_is_rewritten_once_per_place(register, cancel):
    """The migration that made a place at an event one occasion rewrites what was recorded before it."""
    from importlib import import_module

    from django.apps import apps

    from membership.activity import record_activity

    rewrite_keys = import_module("cms.migrations.0006_event_activity_keys").rewrite_keys
    event, organisation = make_event(), make_organisation("Tyne Robotics")
    user = person("again@example.org", organisation)
    first = register(event, user, organisation)
    cancel(first, user)
    second = register(event, user, organisation)
    ActivityEvent.objects.all().delete()
    for registration in (first, second):  # as recorded before: one occasion per registration
        record_activity(organisation, ActivityKind.EVENT_REGISTERED, key=f"registration:{registration.pk}")
    record_activity(organisation, ActivityKind.EVENT_ATTENDED, key=f"registration:{second.pk}")
    record_activity(organisation, ActivityKind.EVENT_REGISTERED, key="registration:999999")  # its row is gone

    rewrite_keys(apps, None)

    assert sorted(ActivityEvent.objects.values_list("key", flat=True)) == sorted(
        [
            f"event_registered:{services.activity_key(second)}",
            f"event_attended:{services.activity_key(second)}",
            "event_registered:registration:999999",
        ]
    )
    register_again = register(event, person("colleague@example.org", organisation), organisation)
    assert ActivityEvent.objects.filter(key=f"event_registered:{services.activity_key(register_again)}").exists()


# The confirmation e-mail and its attachments --------------------------------------------------------------------


def test_the_confirmation_has_html_text_a_calendar_file_with_the_right_times_and_a_qr_code(mailoutbox, register):
    event = make_event(
        "Hack the Tyne", starts_at=timezone.now() + timedelta(days=9), hours=3, online_url="https://meet.example.org/x"
    )
    registration = register(event, person("hacker@example.org"), name="Hal Hacker")

    message = mailoutbox[0]
    assert message.subject == "Your ticket for Hack the Tyne"
    assert registration.reference in message.body and "Join online: https://meet.example.org/x" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and 'src="cid:ticket-qr"' in html
    ics = next(a for a in message.attachments if isinstance(a, tuple) and a[0] == "event.ics")
    assert ics[2] == "text/calendar"
    calendar = icalendar.Calendar.from_ical(ics[1])
    vevent = next(iter(calendar.walk("VEVENT")))
    assert vevent.decoded("dtstart") == event.starts_at
    assert vevent.decoded("dtend") == event.ends_at
    assert vevent["dtstart"].params["TZID"] == "Europe/London"
    assert list(calendar.walk("VTIMEZONE"))
    assert str(vevent["summary"]) == "Hack the Tyne"
    assert str(vevent["location"]) == "The Catalyst, 3 Science Square, Newcastle upon Tyne NE4 5TG"
    qr = next(a for a in message.attachments if isinstance(a, MIMEImage))
    assert qr["Content-ID"] == "<ticket-qr>"
    assert qr.get_payload(decode=True).startswith(b"\x89PNG")


def test_the_qr_code_carries_a_signed_ticket_code_that_cannot_be_forged(register):
    registration = register(make_event(), person("signed@example.org"))
    code = ticket_code(registration)
    assert code.startswith(f"{registration.reference}:")
    assert reference_from_code(code) == registration.reference
    assert reference_from_code(f"{registration.reference}:forged") is None
    assert reference_from_code(registration.reference.lower()) == registration.reference  # typed at the door
    assert reference_from_code("=cmd|' /C calc'!A0") is None


def test_each_status_is_emailed_once_however_often_the_task_runs(mailoutbox, register):
    registration = register(make_event(), person("once@example.org"))
    assert len(mailoutbox) == 1
    assert services.send_registration_email(registration.pk) is False
    assert len(mailoutbox) == 1


def test_the_calendar_download_parses_and_is_only_for_the_owner(client, register):
    event = make_event()
    owner, other = person("owner@example.org"), person("other@example.org")
    registration = register(event, owner)

    client.force_login(owner)
    response = client.get(f"/my/events/{registration.pk}/calendar.ics")
    assert response["Content-Type"] == "text/calendar"
    assert icalendar.Calendar.from_ical(response.content).walk("VEVENT")[0].decoded("dtstart") == event.starts_at

    client.force_login(other)
    assert client.get(f"/my/events/{registration.pk}/calendar.ics").status_code == 404


# Each person sees and changes only their own registrations -----------------------------------------------------


def test_a_person_sees_and_cancels_only_their_own_registrations(client, register):
    event = make_event(capacity=1, online_url="https://meet.example.org/secret")
    organisation = make_organisation("Shared Ltd")
    owner = person("owner@shared.example", organisation, first_name="Olive", last_name="Owner")
    colleague = person("colleague@shared.example", organisation)
    registration = register(event, owner, organisation, name="Olive Owner")
    waiting = register(event, person("waiting@example.org"))

    client.force_login(colleague)
    for url in (f"/my/events/{registration.pk}/", f"/my/events/{registration.pk}/calendar.ics"):
        response = client.get(url)
        assert response.status_code == 404
        assert b"meet.example.org" not in response.content
    for url in (f"/my/events/{registration.pk}/cancel/", f"/my/events/{registration.pk}/pay/"):
        assert client.post(url).status_code == 404
    mine = client.get("/my/events/").content.decode()
    assert "Olive Owner" not in mine and event.title not in mine

    assert EventRegistration.objects.get(pk=registration.pk).status == Status.CONFIRMED
    assert EventRegistration.objects.get(pk=waiting.pk).status == Status.WAITLISTED
    with pytest.raises(EventError, match="only cancel your own"):
        services.cancel_registration(registration, colleague)

    client.force_login(owner)
    assert event.title in client.get("/my/events/").content.decode()
    assert client.post(f"/my/events/{registration.pk}/cancel/").status_code == 302
    assert EventRegistration.objects.get(pk=registration.pk).status == Status.CANCELLED


def test_my_events_needs_a_log_in(client):
    response = client.get("/my/events/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_publishing_a_raised_capacity_gives_the_new_places_to_the_waitlist(rf, register, committed, mailoutbox):
    from cms.events.wagtail_hooks import offer_places_after_publishing

    event = make_event(capacity=1)
    register(event, person("in@example.org"))
    waiting = [register(event, person(f"queue{n}@example.org")) for n in range(3)]
    mailoutbox.clear()
    event.capacity = 3
    event.save_revision().publish()

    with committed():
        offer_places_after_publishing(rf.get("/"), event)

    assert [EventRegistration.objects.get(pk=r.pk).status for r in waiting] == [
        Status.CONFIRMED,
        Status.CONFIRMED,
        Status.WAITLISTED,
    ]
    assert sorted(m.to[0] for m in mailoutbox) == ["queue0@example.org", "queue1@example.org"]


def test_my_personal_data_export_lists_my_registrations_and_deleting_my_account_erases_them(
    client, register, committed
):
    from accounts import services as accounts

    event = make_event(capacity=1)
    past = make_event("Last Year", starts_in=timedelta(days=-300))
    leaver = person("leaver@example.org", first_name="Lee", last_name="Ver")
    mine = register(event, leaver, name="Lee Ver")
    EventRegistration.objects.create(
        event=past, user=leaver, name="Lee Ver", email=leaver.email, status=Status.CONFIRMED, pricing="non_member"
    )
    waiting = register(event, person("next@example.org"))

    exported = accounts.export_personal_data(leaver)["events"]
    assert [(r["event"], r["name_on_badge"], r["status"]) for r in exported] == [
        (event.title, "Lee Ver", "confirmed"),
        ("Last Year", "Lee Ver", "confirmed"),
    ]

    with committed():
        accounts.delete_account(leaver)

    assert set(EventRegistration.objects.filter(user=leaver).values_list("name", "email")) == {
        ("A former attendee", f"erased-{leaver.pk}@erased.invalid")
    }
    assert EventRegistration.objects.get(pk=mine.pk).status == Status.CANCELLED
    assert EventRegistration.objects.get(event=past, user=leaver).status == Status.CONFIRMED  # history kept
    assert EventRegistration.objects.get(pk=waiting.pk).status == Status.CONFIRMED  # the place went on
    assert not AuditEntry.objects.filter(summary__contains="Lee Ver").exists()
