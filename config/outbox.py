"""The background jobs' outbox: a job queued by a change survives a broker outage (see ``QueuedTask``)."""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config.celery import app
from config.models import QueuedTask

logger = logging.getLogger(__name__)

# One quick retry, so a connection the broker dropped while it restarted is made again; a broker that is down
# fails the publish at once and the relay takes the job later, rather than keeping a member's request waiting.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
KEEP_SENT = timedelta(days=7)
RELAY_BATCH = 500


def queue(task, args: tuple) -> None:
    """Record ``task`` with ``args`` in the current transaction, and publish it once the transaction commits."""
    queued = QueuedTask.objects.create(task=task.name, args=list(args))
    transaction.on_commit(lambda: _publish_after_commit(queued.pk))


def _publish_after_commit(queued_id: int) -> None:
    # The change has committed: whatever happens here, the request that made it must not fail.
    try:
        publish(queued_id)
    except Exception as error:
        logger.warning("Job %s stays queued for the relay: %s", queued_id, error)


def publish(queued_id: int) -> bool:
    """Publish one pending job and mark it sent; False when it is sent already or being sent elsewhere.

    Raises when the broker cannot take it; the failure is counted on the row, which stays pending.
    """
    with transaction.atomic():
        queued = QueuedTask.objects.select_for_update(skip_locked=True).filter(pk=queued_id, sent_at=None).first()
        if queued is None:
            return False
        try:
            app.send_task(queued.task, args=queued.args, retry=True, retry_policy=PUBLISH_RETRY)
        except Exception as error:
            refused = error
        else:
            refused = None
            queued.sent_at = timezone.now()
            queued.attempts += 1
            queued.save(update_fields=["sent_at", "attempts"])
    if refused is not None:
        QueuedTask.objects.filter(pk=queued_id).update(attempts=F("attempts") + 1, last_error=str(refused)[:500])
        raise refused
    return True


def relay_pending() -> int:
    """Publish every job still pending, oldest first, until the broker refuses one; how many were published.

    Also forgets jobs sent more than a week ago.
    """
    QueuedTask.objects.filter(sent_at__lt=timezone.now() - KEEP_SENT).delete()
    published, after = 0, 0
    while True:
        pending = list(
            QueuedTask.objects.filter(sent_at=None, pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[:RELAY_BATCH]
        )
        for queued_id in pending:
            try:
                published += publish(queued_id)
            except Exception as error:
                logger.warning("The broker refused a queued job; the relay tries again later: %s", error)
                return published
        if len(pending) < RELAY_BATCH:
            return published
        after = pending[-1]
