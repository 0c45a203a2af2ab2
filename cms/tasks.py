from celery import shared_task
from django.core.management import call_command


@shared_task
def publish_scheduled_pages() -> None:
    """Publish pages whose go-live time has come and unpublish those whose expiry has passed (Wagtail's
    ``publish_scheduled``); beat runs it every minute and a second run finds nothing left to do."""
    call_command("publish_scheduled")
