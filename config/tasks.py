from celery import shared_task


@shared_task
def relay_queued_tasks() -> int:
    """Every minute on beat, and as each worker starts: jobs the broker could not take when queued."""
    from config.outbox import relay_pending

    return relay_pending()
