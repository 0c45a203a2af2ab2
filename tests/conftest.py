"""Personas and shared fixtures.

Services: set DATABASE_URL, REDIS_URL and CELERY_BROKER_URL to run on PostgreSQL and Redis (CI does).
Under CI=true a test that needs a missing service or browser fails instead of skipping.
"""

import os

import pytest
from django.conf import settings
from django.core.cache import cache, caches

from config.celery import app as celery_app
from membership.models import OrganisationMember
from tests import factories

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip on a laptop that lacks a service; under CI the same lack is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def in_two_threads(job) -> None:
    """Run ``job`` in two threads at once, each on a database connection of its own (closed when it ends), as two
    workers or two requests would; returns when both have ended."""
    import threading

    from django.db import connection

    def work():
        try:
            job()
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)


def two_workers_at_once(job, monkeypatch, sender_module) -> None:
    """``job`` in two threads at once (``in_two_threads``), with ``sender_module``'s ``send_email`` taking half a
    second, so the second worker arrives while the first is sending."""
    import time

    send = sender_module.send_email

    def slow_send(*args, **kwargs):
        time.sleep(0.5)
        send(*args, **kwargs)

    monkeypatch.setattr(sender_module, "send_email", slow_send)
    in_two_threads(job)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database, with every connection to it closed before it is dropped.

    Django keeps a connection per thread, and per asyncio context while an event loop runs in the thread: the
    browser journeys' Playwright runs one in the test thread, so a connection opened outside it and one opened
    inside it can both still be open at the end. ``connections.close_all()`` reaches only the current context's,
    and the database cannot be dropped while another is open, so each open connection is closed here.
    """
    yield
    import gc

    from django.db.backends.base.base import BaseDatabaseWrapper

    with django_db_blocker.unblock():
        # type(), not isinstance(): a lazy object would be evaluated by asking for its class.
        for wrapper in [obj for obj in gc.get_objects() if issubclass(type(obj), BaseDatabaseWrapper)]:
            if wrapper.connection is not None:
                wrapper.close()


@pytest.fixture(autouse=True)
def _tasks_in_process(settings):
    """Tasks run in-process unless a test asks for the real worker (``celery_worker``)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker, in a thread, consuming from the Redis broker in CELERY_BROKER_URL."""
    from celery.contrib.testing.worker import start_worker

    require(bool(os.environ.get("CELERY_BROKER_URL")), "a Celery broker (set CELERY_BROKER_URL)")
    celery_app.conf.task_always_eager = False
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30) as worker:
        yield worker


@pytest.fixture(autouse=True)
def _media_in_a_temporary_folder(settings, tmp_path_factory):
    # Uploaded and generated files (demo pictures, renditions) stay out of the working copy.
    settings.MEDIA_ROOT = tmp_path_factory.getbasetemp() / "media"


def _ensure_page_tree() -> None:
    """Put back what the migrations made and a flush takes away: the page tree's root, the home page, the
    default site and the root collection. Tests that commit (transactional ones) end with the database
    flushed, so the next one starts from this instead."""
    from wagtail.coreutils import get_supported_content_language_variant
    from wagtail.models import Collection, Locale, Page, Site

    from cms.models import HomePage

    if not Collection.objects.exists():
        Collection.add_root(name="Root")
    if HomePage.objects.exists():
        return
    locale = Locale.objects.first() or Locale.objects.create(
        language_code=get_supported_content_language_variant(settings.LANGUAGE_CODE)
    )
    root = Page.objects.filter(depth=1).first() or Page.add_root(
        instance=Page(title="Root", slug="root", locale=locale)
    )
    home = root.add_child(instance=HomePage(title="Home", slug="home", locale=locale))
    Site.objects.update_or_create(
        is_default_site=True,
        defaults={"hostname": "localhost", "root_page": home, "site_name": settings.WAGTAIL_SITE_NAME},
    )


@pytest.fixture(autouse=True)
def _page_tree_after_a_flush(request):
    """Tests that really commit start with the page tree in place, whatever the test before them flushed."""
    marker = request.node.get_closest_marker("django_db")
    committing = (marker is not None and marker.kwargs.get("transaction")) or bool(
        {"transactional_db", "live_server", "celery_worker"} & set(request.fixturenames)
    )
    if committing:
        request.getfixturevalue("transactional_db")
        _ensure_page_tree()


@pytest.fixture(autouse=True)
def _clean_cache():
    # Rate-limit counters and sessions live in the caches; every test starts with none.
    cache.clear()
    caches["sessions"].clear()
    yield
    cache.clear()
    caches["sessions"].clear()


@pytest.fixture
def member(db):
    """An ordinary contact at an organisation: no admin rights, no back office."""
    user = factories.make_user("member@tyne-analytics.example", first_name="Mia", last_name="Robson")
    organisation = factories.make_organisation("Tyne Analytics")
    factories.add_member(organisation, user)
    return user


@pytest.fixture
def org_admin(db):
    user = factories.make_user("admin@tyne-analytics.example", first_name="Noah", last_name="Patel")
    organisation = factories.make_organisation("Tyne Analytics Admins")
    factories.add_member(organisation, user, OrganisationMember.Role.ADMIN)
    return user


@pytest.fixture
def outsider(db):
    """Logged in, verified, but belongs to no organisation: must see nothing private."""
    return factories.make_user("outsider@elsewhere.example")


@pytest.fixture
def staff_user(db):
    """The engagement manager, with an authenticator app set up."""
    return factories.make_staff("engagement@netech.example", first_name="Priya", last_name="Shah")


@pytest.fixture
def staff_without_mfa(db):
    return factories.make_staff("newstarter@netech.example", mfa=False)


@pytest.fixture
def superuser(db):
    return factories.make_staff("director@netech.example", superuser=True)
