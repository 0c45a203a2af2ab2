"""Event e-mails and the job that releases unpaid places; each takes ids and is safe to run twice."""

from celery import shared_task

from cms.events import services


@shared_task(acks_late=True)
def send_registration_email(registration_id: int) -> None:
    services.send_registration_email(registration_id)


@shared_task
def release_expired_holds() -> int:
    """Every few minutes: places held for payment past their time go back, and on to the waitlist."""
    return services.release_expired_holds()


@shared_task(acks_late=True)
def fill_free_places(event_id: int) -> int:
    return services.fill_free_places(event_id)
