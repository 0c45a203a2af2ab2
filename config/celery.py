"""Celery: a worker and beat on the broker in production, in-process when no broker is configured."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("members")
app.config_from_object("django.conf:settings", namespace="CELERY")
if not os.environ.get("CELERY_BROKER_URL"):
    # No broker: tasks run in the calling process, so a laptop needs nothing but Python.
    app.conf.broker_url = "memory://"
    app.conf.result_backend = None
app.autodiscover_tasks()


def queue_on_commit(task, *args) -> None:
    """Queue ``task`` with ``args`` (ids, never model instances) once the current transaction commits.

    A rolled-back transaction queues nothing, and the worker never reads rows that are not yet committed.
    """
    from django.db import transaction

    transaction.on_commit(lambda: task.delay(*args))
