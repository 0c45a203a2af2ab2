"""Drill: PostgreSQL drops the app's connections (``pg_terminate_backend``), idle and in the middle of a request.

The app runs under gunicorn on the drill's database and keeps its connections open between requests
(``CONN_MAX_AGE``). An idle connection killed between two requests is noticed by the health check
(``CONN_HEALTH_CHECKS``) and replaced, so the next request never sees it. A connection killed while a request
waits on a lock fails that request cleanly (an error page, no traceback, nothing half-written: the transaction
dies with the connection) and the request after it succeeds.
"""

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.db import connection

from membership.models import AuditEntry, Invitation, OrganisationMember
from tests import factories
from tests.faults.conftest import Browser, Web, app_env, database_url, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("postgres_test_database")]

APPLICATION = "faults-drill-web"
COLLEAGUE = "bea.new@tyne-analytics.example"


def _web_backends(waiting_on_a_lock: bool = False) -> list[int]:
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()"
    if waiting_on_a_lock:
        query += " AND wait_event_type = 'Lock'"
    with connection.cursor() as cursor:
        cursor.execute(query, [APPLICATION])
        return [pid for (pid,) in cursor.fetchall()]


def _terminate(pids: list[int]) -> None:
    with connection.cursor() as cursor:
        for pid in pids:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert cursor.fetchone() == (True,)


def _assert_a_clean_failure(response) -> None:
    assert response.status_code in (500, 503), response.status_code
    assert "try again" in response.text
    for leak in ("Traceback", "OperationalError", "terminating connection", "psycopg", "SELECT"):
        assert leak not in response.text


def test_a_dropped_database_connection_fails_one_request_cleanly_and_the_next_succeeds(tmp_path, processes):
    admin = factories.make_user("noah@tyne-analytics.example", first_name="Noah")
    organisation = factories.make_organisation("Tyne Analytics")
    factories.add_member(organisation, admin, OrganisationMember.Role.ADMIN)
    web = Web(tmp_path, app_env(DATABASE_URL=f"{database_url()}?application_name={APPLICATION}")).start()
    processes.append(web)
    member = Browser(web.url)
    member.log_in(admin.email, factories.PASSWORD)
    colleagues = f"/my/org/{organisation.slug}/colleagues/"
    assert member.get(colleagues).status_code == 200

    # Idle: the connections kept open between requests are killed; the next requests open new ones.
    idle = _web_backends()
    assert idle, "the app keeps its connection between requests (CONN_MAX_AGE)"
    _terminate(idle)
    for _ in range(3):  # whichever of gunicorn's threads answers, its connection was killed
        assert member.get(colleagues).status_code == 200
    assert not set(_web_backends()) & set(idle)

    # In flight: the invitation waits on the organisation's row, which the drill holds locked, and is killed there.
    token = member.csrf_token(colleagues)
    audit_before = AuditEntry.objects.count()
    with psycopg.connect(database_url()) as locker, ThreadPoolExecutor(1) as pool:
        locker.execute("SELECT id FROM membership_organisation WHERE id = %s FOR UPDATE", [organisation.pk])
        invited = pool.submit(
            member.post,
            colleagues + "invite/",
            data={"csrfmiddlewaretoken": token, "email": COLLEAGUE, "role": "member"},
        )
        waiting = wait_for(lambda: _web_backends(waiting_on_a_lock=True), 30, "the request to wait on the lock")
        _terminate(waiting)
        response = invited.result(timeout=60)
        locker.rollback()
    _assert_a_clean_failure(response)
    assert not Invitation.objects.exists()
    assert AuditEntry.objects.count() == audit_before

    # The following request succeeds, on a new connection.
    response = member.submit(colleagues, {"email": COLLEAGUE, "role": "member"}, action=colleagues + "invite/")
    assert response.status_code == 302, response.text[:2000]
    assert Invitation.objects.filter(email=COLLEAGUE).count() == 1
