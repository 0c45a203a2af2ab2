"""Drill: a Celery worker is SIGKILLed in the middle of a task, and a new worker takes over.

Tasks acknowledge late (``acks_late``), so a message whose worker dies is still unacknowledged in Redis; a worker
that starts later puts it back on the queue once it is older than the visibility timeout
(``CELERY_VISIBILITY_TIMEOUT``, short here) and runs it again. The task here is a real one, the renewal
reminder e-mail (``membership.tasks.send_billing_email``), which is idempotent by design: its ``BillingNotice``
row is locked and marked delivered in the transaction that sends it. The first worker is killed after that
transaction has committed and before it could acknowledge the message, the hardest moment: the task is
delivered again, and the e-mail still goes once.
"""

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from membership.models import BillingNotice, Subscription, Tier
from tests import factories
from tests.faults.conftest import PROJECT_ROOT, RedisServer, Worker, app_env, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("postgres_test_database")]

VISIBILITY_TIMEOUT = 4
BILLING = "accounts@tyne-analytics.example"
TASK = "membership.tasks.send_billing_email"


def _run_renewal_reminders(env: dict[str, str]) -> int:
    """The daily job's reminders step, in its own process: it records the notice and queues its e-mail."""
    code = "from membership import renewals; print(renewals.send_renewal_reminders())"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


def _deliveries(drill: Path) -> list[str]:
    found = drill / "deliveries"
    return (
        [line.split()[1] for line in found.read_text().splitlines() if line.startswith(TASK)] if found.exists() else []
    )


def test_a_task_whose_worker_is_killed_runs_again_and_takes_effect_once(tmp_path, processes):
    organisation = factories.make_organisation("Tyne Analytics", billing_email=BILLING)
    tier = Tier.objects.create(name="Growth", slug="growth")
    Subscription.objects.create(
        organisation=organisation,
        tier=tier,
        status=Subscription.Status.ACTIVE,
        amount_pence=120_000,
        current_period_end=timezone.now() + timedelta(days=5),
    )

    redis = RedisServer(tmp_path).start()
    processes.append(redis)
    drill = tmp_path / "drill"
    drill.mkdir()
    env = app_env(
        CELERY_BROKER_URL=redis.url(1),
        REDIS_URL=redis.url(0),
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
        FAULT_DRILL_DIR=str(drill),
        FAULT_DRILL_BLOCK_TASK=TASK,
    )
    hooks = ("--include", "tests.faults.worker_hooks")

    assert _run_renewal_reminders(env) == 1
    notice = BillingNotice.objects.get()
    assert notice.delivered_at is None

    (drill / "block").touch()
    first = Worker(tmp_path, env, "first-worker", *hooks).start()
    processes.append(first)
    wait_for(lambda: (drill / "blocked").exists(), 60, "the task to reach its acknowledgement", first.log)
    notice.refresh_from_db()
    assert notice.delivered_at is not None  # its work is done and committed, the message is not acknowledged
    delivered_at = notice.delivered_at

    first.kill()
    killed_at = time.monotonic()
    (drill / "block").unlink()
    assert _deliveries(drill) == [(drill / "blocked").read_text()]

    # A worker starting before the visibility timeout has passed leaves the message alone: it may still be running.
    time.sleep(max(0.0, VISIBILITY_TIMEOUT + 1 - (time.monotonic() - killed_at)))
    second = Worker(tmp_path, env, "second-worker", *hooks).start()
    processes.append(second)
    wait_for(lambda: len(_deliveries(drill)) == 2, 60, "the task to be delivered again", second.log)
    wait_for(lambda: f"Task {TASK}[" in second.output() and "succeeded" in second.output(), 30, "the rerun")

    first_id, second_id = _deliveries(drill)
    assert first_id == second_id  # the same message, delivered again
    notice.refresh_from_db()
    assert notice.delivered_at == delivered_at
    assert BillingNotice.objects.count() == 1
    sent = first.output().count(f"To: {BILLING}") + second.output().count(f"To: {BILLING}")
    assert sent == 1
