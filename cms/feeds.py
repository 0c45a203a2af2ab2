"""The news as RSS 2.0 and Atom 1.0 feeds: the twenty newest stories, each with its public introduction.

A feed never carries a page body. Members-only stories appear with their title and introduction only, marked
as members-only, and link to the page, which asks the reader to log in.
"""

from datetime import datetime, time

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.utils import timezone
from django.utils.feedgenerator import Atom1Feed, Rss201rev2Feed

from cms.models import NewsIndexPage, NewsPage

FEED_LENGTH = 20


class NewsFeed(Feed):
    feed_type = Rss201rev2Feed
    description = "News from the North East's tech membership network."

    def title(self) -> str:
        return f"{settings.WAGTAIL_SITE_NAME}: news"

    def link(self) -> str:
        index = NewsIndexPage.objects.live().first()
        return index.url if index and index.url else "/"

    def items(self):
        pages = NewsPage.objects.live().public().select_related("category").prefetch_related("tags")
        return pages.order_by("-date", "-pk")[:FEED_LENGTH]

    def item_title(self, item: NewsPage) -> str:
        return f"{item.title} (members only)" if item.members_only else item.title

    def item_description(self, item: NewsPage) -> str:
        return item.summary or item.title

    def item_link(self, item: NewsPage) -> str:
        return item.get_url() or "/"

    def item_guid(self, item: NewsPage) -> str:
        return f"{settings.SITE_URL}/news/item/{item.pk}"

    item_guid_is_permalink = False

    def item_pubdate(self, item: NewsPage) -> datetime:
        return timezone.make_aware(datetime.combine(item.date, time(9, 0)))

    def item_updateddate(self, item: NewsPage) -> datetime:
        return item.last_published_at or self.item_pubdate(item)

    def item_author_name(self, item: NewsPage) -> str:
        return item.author or settings.WAGTAIL_SITE_NAME

    def item_categories(self, item: NewsPage) -> list[str]:
        return [name for name in [str(item.category or ""), *(tag.name for tag in item.tags.all())] if name]


class NewsAtomFeed(NewsFeed):
    feed_type = Atom1Feed
    subtitle = NewsFeed.description
