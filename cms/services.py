"""The site's effects on the rest of the platform: reading members-only pages and publishing success stories
count as engagement activity for the organisations concerned."""

from django.db import transaction
from django.utils import timezone
from wagtail.models import Page

from accounts.models import User
from membership.activity import record_activity
from membership.models import ActivityKind, Organisation


@transaction.atomic
def record_page_read(page: Page, person: User, organisation: Organisation) -> bool:
    """Count a members-only page read by an entitled person: once per person, page and (UK) day.

    Returns whether this read was the first of the day.
    """
    day = timezone.localdate().isoformat()
    _, created = record_activity(
        organisation,
        ActivityKind.PAGE_READ,
        key=f"{person.pk}:{page.pk}:{day}",
        person=person,
        detail=page.title,
    )
    return created


@transaction.atomic
def record_story_published(page: Page) -> bool:
    """Count a published success story for its organisation, once per story and organisation however often the
    story is republished. Returns whether it was recorded now."""
    organisation = getattr(page, "organisation", None)
    if organisation is None:
        return False
    _, created = record_activity(
        organisation,
        ActivityKind.STORY_PUBLISHED,
        key=f"{page.pk}:{organisation.pk}",
        detail=page.title,
        occurred_at=page.last_published_at or timezone.now(),
    )
    return created
