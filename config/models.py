from django.db import models
from django.utils import timezone


class QueuedTask(models.Model):
    """A background job, written in the same transaction as the change that causes it (``queue_on_commit``).

    It is published to the broker once that transaction commits and marked sent. If the broker cannot take it
    (Redis down), the row stays pending and the relay (``config.outbox.relay_pending``: beat every minute, and
    each worker as it starts) publishes it later, so a job queued during an outage is delayed, never lost. A row
    is locked while it is published and marked sent in the same transaction, so it is published once.
    """

    task = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["id"], condition=models.Q(sent_at=None), name="config_queuedtask_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)} ({'sent' if self.sent_at else 'pending'})"
