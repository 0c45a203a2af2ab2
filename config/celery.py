"""Celery: a worker and beat on the broker in production, in-process when no broker is configured."""

import logging
import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)

app = Celery("members")
app.config_from_object("django.conf:settings", namespace="CELERY")
if not os.environ.get("CELERY_BROKER_URL"):
    # No broker: tasks run in the calling process, so a laptop needs nothing but Python.
    app.conf.broker_url = "memory://"
    app.conf.result_backend = None
app.autodiscover_tasks()


def queue_on_commit(task, *args) -> None:
    """Queue ``task`` with ``args`` (ids, never model instances) once the current transaction commits.

    A rolled-back transaction queues nothing, and the worker never reads rows that are not yet committed. With a
    broker, the job is first written to the outbox in the same transaction (``config.models.QueuedTask``), so a
    broker outage delays it rather than losing it, and the request that queued it does not fail.
    """
    from django.db import transaction

    if app.conf.task_always_eager:
        transaction.on_commit(lambda: task.delay(*args))
        return
    from config import outbox

    outbox.queue(task, args)


@worker_ready.connect
def _relay_when_a_worker_starts(sender=None, **kwargs) -> None:
    """Jobs queued while the broker was down are published as soon as a worker can take them."""
    try:
        app.send_task("config.tasks.relay_queued_tasks")
    except Exception as error:  # beat's every-minute relay will do it
        logger.warning("Could not queue the outbox relay: %s", error)
