"""What happens when pages change: the page cache and navigation are purged, and a published success story
counts as activity for its organisation. Connected in ``CmsConfig.ready``."""

from wagtail.models import Page

from cms.cache import purge_pages
from cms.models import SuccessStoryPage
from cms.services import record_story_published


def on_page_published(sender, instance, **kwargs) -> None:
    purge_pages()
    if isinstance(instance, SuccessStoryPage):
        record_story_published(instance)


def on_page_changed(sender, **kwargs) -> None:
    """Unpublished or moved: what the site shows has changed."""
    purge_pages()


def on_page_saved(sender, instance, created, **kwargs) -> None:
    # Pages created in code (add_child) go live without a publish signal.
    if created and isinstance(instance, Page):
        purge_pages()


def on_page_deleted(sender, instance, **kwargs) -> None:
    if isinstance(instance, Page):
        purge_pages()


def on_news_tags_changed(sender, **kwargs) -> None:
    """A news page's tags were written (on publish, or by code that saves the page): the cached tag lists
    (``NewsPage.tags_to_show``) and any cached page are out of date."""
    purge_pages()


def on_tag_renamed(sender, created: bool, **kwargs) -> None:
    """A tag was renamed (staff may, in the Django admin): pages showing it are out of date. A new tag is on
    no page yet; the page it is added to purges when its tags are written."""
    if not created:
        purge_pages()


def on_site_or_privacy_changed(sender, **kwargs) -> None:
    """A site, or a page's Wagtail privacy setting, was saved or deleted: the cached sites and the answer to
    "does any page have a privacy setting" (``cms.cache``) are out of date, as may be any cached page."""
    purge_pages()
