"""Places are exact when many people register at the same moment (PostgreSQL: real row locks, real threads)."""

import threading

import pytest
from django.db import connection

from cms.events import services
from cms.events.models import EventRegistration
from tests.conftest import require
from tests.factories import make_event, make_user

# Real commits from several connections; the home page the migrations made is restored after each test.
pytestmark = pytest.mark.django_db(transaction=True)
Status = EventRegistration.Status
RACERS = 50


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _race(target, arguments: list) -> tuple[list, list]:
    """Run ``target`` once per argument, each in its own thread with its own connection, all released together."""
    start = threading.Barrier(len(arguments))
    results, errors = [], []

    def run(argument):
        try:
            start.wait(timeout=60)
            results.append(target(argument))
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(argument,)) for argument in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results, errors


def test_fifty_people_registering_at_once_for_the_last_place_give_exactly_one_place(mailoutbox):
    require(connection.vendor == "postgresql", "PostgreSQL (set DATABASE_URL) for fifty registrations at once")
    event = make_event("Last Place Standing", capacity=3)
    for number in range(2):
        services.register_for_event(event, make_user(f"early{number}@example.org"), organisation=None, name="Early")
    racers = [make_user(f"racer{number}@example.org") for number in range(RACERS)]

    def register(user):
        return services.register_for_event(event, user, organisation=None, name=f"Racer {user.pk}")

    results, errors = _race(register, racers)

    assert errors == []
    statuses = sorted(registration.status for registration in results)
    assert statuses.count(Status.CONFIRMED) == 1
    assert statuses.count(Status.WAITLISTED) == RACERS - 1
    assert event.registrations.holding_places().count() == 3
    waitlist = list(event.registrations.waitlist())
    assert [services.waitlist_position(r) for r in waitlist] == list(range(1, RACERS))
    assert len(mailoutbox) == 2 + RACERS  # every racer hears, once: one ticket, the rest a waitlist place


def test_one_person_registering_twice_at_once_gets_one_registration():
    require(connection.vendor == "postgresql", "PostgreSQL (set DATABASE_URL) for registrations at once")
    event = make_event("Double Click", capacity=10)
    user = make_user("double@example.org")

    def register(_):
        return services.register_for_event(event, user, organisation=None, name="Double Clicker")

    results, errors = _race(register, [1, 2])

    assert len(results) == 1
    assert [str(error) for error in errors] == ["You are already registered for this event."]
    assert event.registrations.count() == 1


def test_a_cancellation_racing_new_registrations_gives_the_freed_place_to_the_waitlist():
    require(connection.vendor == "postgresql", "PostgreSQL (set DATABASE_URL) for registrations at once")
    event = make_event("Musical Chairs", capacity=1)
    holder = make_user("holder@example.org")
    held = services.register_for_event(event, holder, organisation=None, name="Holder")
    first = services.register_for_event(event, make_user("first@example.org"), organisation=None, name="First")
    newcomers = [make_user(f"newcomer{number}@example.org") for number in range(5)]

    def act(user):
        if user is holder:
            return services.cancel_registration(held, holder)
        return services.register_for_event(event, user, organisation=None, name="Newcomer")

    _, errors = _race(act, [holder, *newcomers])

    assert errors == []
    assert EventRegistration.objects.get(pk=first.pk).status == Status.CONFIRMED  # nobody jumped the queue
    assert event.registrations.holding_places().count() == 1
    assert event.registrations.filter(status=Status.WAITLISTED).count() == 5
