from celery import shared_task

from accounts import services


@shared_task(acks_late=True)
def purge_unverified_accounts() -> None:
    services.purge_unverified_accounts()
