"""Drill: Redis (the cache and the broker) is killed under the running app, then comes back.

The app runs under gunicorn with its cache, sessions and Celery broker on a private redis-server, which the drill
SIGKILLs. Visitors and a logged-in member keep getting pages (the cache degrades, sessions come from the
database), a log-in still works, /healthz answers 503 naming the cache and the broker, and an invitation sent
meanwhile is kept in the outbox: once Redis is back, a worker that starts publishes and sends it, once.
"""

import json
import subprocess
import sys

import pytest

from config.models import QueuedTask
from membership.models import Invitation, OrganisationMember
from tests import factories
from tests.faults.conftest import PROJECT_ROOT, Browser, RedisServer, Web, Worker, app_env, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("postgres_test_database")]

PUBLIC_PAGES = ["/", "/join/", "/perks/", "/search/?q=tech", "/robots.txt"]
COLLEAGUE = "bea.new@tyne-analytics.example"


def _healthz(web: Web) -> tuple[int, dict]:
    response = Browser(web.url).get("/healthz")
    return response.status_code, json.loads(response.text)


def _relay_once(env: dict[str, str]) -> int:
    """What the beat's every-minute relay would publish now, run as its own process on the drill's services."""
    code = "from config.outbox import relay_pending; print(relay_pending())"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


def test_the_site_serves_through_a_redis_outage_and_loses_no_queued_job(tmp_path, processes):
    admin = factories.make_user("noah@tyne-analytics.example", first_name="Noah", last_name="Patel")
    organisation = factories.make_organisation("Tyne Analytics")
    factories.add_member(organisation, admin, OrganisationMember.Role.ADMIN)

    redis = RedisServer(tmp_path).start()
    processes.append(redis)
    env = app_env(REDIS_URL=redis.url(0), CELERY_BROKER_URL=redis.url(1), PAGE_CACHE="true")
    web = Web(tmp_path, env).start()
    processes.append(web)

    visitor, member = Browser(web.url), Browser(web.url)
    for path in PUBLIC_PAGES:
        assert visitor.get(path).status_code == 200, path
    member.log_in(admin.email, factories.PASSWORD)
    assert "Log out" in member.get("/my/").text
    assert _healthz(web)[0] == 200

    redis.kill()

    for path in PUBLIC_PAGES:
        response = visitor.get(path)
        assert response.status_code == 200, (path, response.status_code)
    for path in ["/", "/my/", f"/my/org/{organisation.slug}/colleagues/"]:
        response = member.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert "Log out" in response.text  # still logged in: the session comes from the database
    # Logging in passes the rate limits, which count in this process's memory meanwhile.
    Browser(web.url).log_in(admin.email, factories.PASSWORD)

    status, body = _healthz(web)
    assert status == 503
    assert set(body["down"]) == {"cache", "broker"}
    assert body["checks"]["database"] == "ok"

    # Inviting a colleague queues the invitation e-mail; the broker is down, the request still succeeds.
    colleagues = f"/my/org/{organisation.slug}/colleagues/"
    response = member.submit(colleagues, {"email": COLLEAGUE, "role": "member"}, action=colleagues + "invite/")
    assert response.status_code == 302, response.text[:3000]
    assert Invitation.objects.filter(email=COLLEAGUE).count() == 1
    queued = QueuedTask.objects.get(task="membership.tasks.send_invitation_email")
    assert queued.sent_at is None and queued.attempts == 1 and queued.last_error

    redis.start()
    worker = Worker(tmp_path, env, "worker").start()
    processes.append(worker)

    # The worker, as it starts, relays what the outbox kept; the e-mail goes out.
    wait_for(lambda: f"To: {COLLEAGUE}" in worker.output(), 60, "the invitation e-mail", worker.log)
    queued.refresh_from_db()
    assert queued.sent_at is not None
    # Once: the relay has nothing more to publish, and the e-mail is not sent again.
    assert _relay_once(env) == 0
    wait_for(lambda: "relay_queued_tasks" in worker.output() and "succeeded" in worker.output(), 30, "the relay")
    assert worker.output().count(f"To: {COLLEAGUE}") == 1
    assert "Log out" in member.get("/my/").text
    wait_for(lambda: _healthz(web)[0] == 200, 30, "/healthz to recover", web.log)
