"""The public site's pages: home, news, advisory-board updates, success stories, standard pages and the member
directory. Every page with a body builds it from ``cms.blocks.BaseStreamBlock``; news, board updates and
standard pages may be restricted to members (``MembersOnlyMixin``).
"""

import re

from django import forms
from django.contrib.contenttypes.models import ContentType
from django.core.paginator import Page as PaginatorPage
from django.core.paginator import Paginator
from django.db import models
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import strip_tags
from django.utils.text import slugify
from modelcluster.contrib.taggit import ClusterTaggableManager
from modelcluster.fields import ParentalKey, ParentalManyToManyField
from taggit.models import TaggedItemBase
from wagtail.admin.panels import FieldPanel, FieldRowPanel, InlinePanel, MultiFieldPanel
from wagtail.fields import RichTextField, StreamField
from wagtail.images import get_image_model
from wagtail.models import Orderable, Page
from wagtail.search import index

from benefits.models import Perk
from cms.blocks import BaseStreamBlock
from cms.cache import QuickPrivacyCheck, find_page_address
from membership.models import Organisation

# Renditions the listings show, prefetched with the pages so a card costs no query of its own.
CARD_IMAGE = "fill-640x360"
OPEN_GRAPH_IMAGE = "fill-1200x630"
NEWS_PER_PAGE = 10
LATEST_NEWS_SECONDS = 3600
DIRECTORY_PER_PAGE = 24


def with_card_images(pages: QuerySet) -> QuerySet:
    """Pages with their listing image and its card-sized rendition fetched alongside."""
    renditions = get_image_model().get_rendition_model().objects.filter(filter_spec=CARD_IMAGE)
    return pages.select_related("listing_image").prefetch_related(
        Prefetch("listing_image__renditions", queryset=renditions)
    )


def _slug_from(request: HttpRequest, name: str) -> str:
    """A slug from the query string, or "" if it is not one (a NUL, for one, would make PostgreSQL fail)."""
    value = request.GET.get(name, "").strip()[:100]
    return value if re.fullmatch(r"[-\w]+", value) else ""


def paginate(request: HttpRequest, items, per_page: int) -> PaginatorPage:
    """One page of ``items`` from ``?page=``; a number out of range gives the nearest page, not an error."""
    return Paginator(items, per_page).get_page(request.GET.get("page"))


# Members-only content ---------------------------------------------------------------------------------------


class MembersOnlyMixin(models.Model):
    """A page that may be restricted to members whose organisation is entitled now, optionally to some tiers.

    Anonymous visitors are sent to log in; anyone else without access gets a 403 that says why and links to
    the Join page. The restricted body never reaches listings, search or feeds (see ``cms.access``).
    """

    members_only = models.BooleanField(
        "members only",
        default=False,
        help_text="Only people whose organisation is a member now may read the page. Its title, introduction "
        "and listing image stay public, in listings, search and link previews.",
    )
    tiers = ParentalManyToManyField(
        "membership.Tier",
        blank=True,
        related_name="+",
        help_text="Members only: limit the page to these tiers. None ticked: every tier.",
    )

    access_panels = [
        MultiFieldPanel(
            [FieldPanel("members_only"), FieldPanel("tiers", widget=forms.CheckboxSelectMultiple)],
            heading="Who may read it",
        )
    ]

    class Meta:
        abstract = True

    @property
    def is_restricted(self) -> bool:
        return self.members_only

    def serve(self, request, *args, **kwargs):
        from cms.access import refuse_or_record

        refusal = refuse_or_record(self, request)
        if refusal is not None:
            return refusal
        response = super().serve(request, *args, **kwargs)
        if self.members_only:
            # What one member may read must never be kept by a shared cache for another visitor.
            response["Cache-Control"] = "private, no-cache"
        return response

    def get_sitemap_urls(self, request=None):
        return [] if self.members_only else super().get_sitemap_urls(request)

    def public_body_text(self) -> str:
        """The body's words for the search index; nothing for a members-only page, so searching cannot
        reveal what it says."""
        if self.members_only:
            return ""
        return " ".join(self._meta.get_field("body").get_searchable_content(self.body))


class ListedPage(QuickPrivacyCheck, Page):
    """A page that appears in listings: a short public introduction and an image for cards and link previews."""

    introduction = models.TextField(
        max_length=400,
        blank=True,
        help_text="One or two sentences shown in listings, search results, feeds and link previews.",
    )
    listing_image = models.ForeignKey(
        "wagtailimages.Image",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Shown on cards and when the page is shared.",
    )

    # Anonymous visitors may be served this page from the page cache (cms.cache).
    page_cache = True
    # Found by HomePage.route in one query, with these relations fetched alongside.
    direct_route = True
    route_select_related = ("listing_image",)
    search_fields = [*Page.search_fields, index.SearchField("introduction")]
    promote_panels = [*Page.promote_panels, FieldPanel("listing_image")]

    class Meta:
        abstract = True

    @property
    def summary(self) -> str:
        return self.search_description or self.introduction

    @property
    def listing_date(self):
        """The date a listing shows for the page, if it has one."""
        return getattr(self, "date", None)

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        # The index the page sits in, for the "back to" link: a page's address is its parent's plus its own slug,
        # so the parent need not be fetched.
        url = self.get_url(request) or ""
        context["index_url"] = url[: url.rstrip("/").rfind("/") + 1] or None
        return context


# Home -------------------------------------------------------------------------------------------------------


class HomePage(QuickPrivacyCheck, Page):
    """The front door of the site: what the body is, why to join, and what is on."""

    hero_heading = models.CharField(max_length=120, default="The North East's tech community")
    hero_text = models.TextField(
        blank=True,
        default="We bring the region's tech organisations together: events for networking, perks that save "
        "members money, and a stage for the region's successes.",
    )
    hero_cta_label = models.CharField("call-to-action label", max_length=40, default="Become a member")
    hero_cta_url = models.CharField("call-to-action link", max_length=200, default="/join/")
    body = RichTextField(blank=True, features=["h2", "h3", "bold", "italic", "link", "ol", "ul"])

    content_panels = [
        *Page.content_panels,
        MultiFieldPanel(
            [
                FieldPanel("hero_heading"),
                FieldPanel("hero_text"),
                FieldPanel("hero_cta_label"),
                FieldPanel("hero_cta_url"),
            ],
            heading="Hero",
        ),
        FieldPanel("body"),
    ]
    search_fields = [*Page.search_fields, index.SearchField("hero_text"), index.SearchField("body")]

    parent_page_types = ["wagtailcore.Page"]
    max_count = 1
    page_cache = True

    class Meta:
        verbose_name = "home page"

    def route(self, request, path_components):
        """Find a page of the site's own content types by its address (kept in the cache between publishes,
        ``cms.cache.find_page_address``) and fetch it in one query, rather than one level at a time (two queries
        a level); any other address is routed by Wagtail, level by level, as usual.

        Only types marked ``direct_route`` are found this way: their parents are plain pages of this site
        that add no routing of their own, so the result is the page Wagtail's routing would find.
        """
        if path_components:
            found = find_page_address(f"{self.url_path}{'/'.join(path_components)}/")
            model = ContentType.objects.get_for_id(found[1]).model_class() if found else None
            if model is not None and getattr(model, "direct_route", False):
                page = model.objects.select_related(*model.route_select_related).get(pk=found[0])
                return page.route(request, [])
        return super().route(request, path_components)

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        organisations = Organisation.objects.all()
        context["member_count"] = organisations.count()
        context["town_count"] = organisations.exclude(town="").values("town").distinct().count()
        news = NewsPage.objects.live().public().select_related("category").order_by("-date", "-pk")
        context["latest_news"] = list(with_card_images(news)[:3])
        stories = SuccessStoryPage.objects.live().public().select_related("organisation").order_by("-date", "-pk")
        context["success_story"] = with_card_images(stories).first()
        # Each section shows only when it has something to show.

        context["upcoming_events"] = list(EventPage.objects.upcoming().public()[:3])
        context["featured_perks"] = list(
            Perk.objects.available().filter(featured=True).select_related("provider").order_by("-published_at")[:3]
        )
        return context


# News -------------------------------------------------------------------------------------------------------


class NewsCategory(models.Model):
    """A section of the news (Funding, Skills, Member news...): a snippet editors keep."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True, blank=True)

    panels = [FieldPanel("name"), FieldPanel("slug")]

    class Meta:
        ordering = ["name"]
        verbose_name = "news category"
        verbose_name_plural = "news categories"

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.slug = self.slug or slugify(self.name)[:80]
        super().save(*args, **kwargs)


class NewsPageTag(TaggedItemBase):
    content_object = ParentalKey("cms.NewsPage", on_delete=models.CASCADE, related_name="tagged_items")


class NewsIndexPage(QuickPrivacyCheck, Page):
    """The news: newest first, ten to a page, filtered by category or tag, with RSS and Atom feeds."""

    introduction = models.TextField(max_length=400, blank=True)

    content_panels = [*Page.content_panels, FieldPanel("introduction")]
    parent_page_types = ["cms.HomePage"]
    subpage_types = ["cms.NewsPage"]
    max_count = 1
    page_cache = True

    class Meta:
        verbose_name = "news index page"

    def news(self) -> QuerySet:
        return NewsPage.objects.live().public().descendant_of(self).order_by("-date", "-pk")

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        news = self.news().select_related("category")
        category = NewsCategory.objects.filter(slug=_slug_from(request, "category")).first()
        tag = _slug_from(request, "tag")
        if category:
            news = news.filter(category=category)
        if tag:
            news = news.filter(tags__slug=tag)
        context["news"] = paginate(request, with_card_images(news).prefetch_related("tags"), NEWS_PER_PAGE)
        context["categories"] = NewsCategory.objects.all()
        context["category"] = category
        context["tag"] = tag
        return context


class NewsPage(MembersOnlyMixin, ListedPage):  # noqa: DJ008 (Page gives __str__)
    """One news story: a dated article with a category, tags and a byline."""

    date = models.DateField("news date", default=timezone.localdate)
    author = models.CharField(max_length=120, blank=True, help_text="The byline. Empty: the network's name.")
    category = models.ForeignKey(
        NewsCategory, null=True, blank=True, on_delete=models.SET_NULL, related_name="news_pages"
    )
    tags = ClusterTaggableManager(through=NewsPageTag, blank=True)
    body = StreamField(BaseStreamBlock(), use_json_field=True)

    content_panels = [
        *Page.content_panels,
        FieldPanel("introduction"),
        FieldRowPanel([FieldPanel("date"), FieldPanel("author")]),
        FieldRowPanel([FieldPanel("category"), FieldPanel("tags")]),
        FieldPanel("body"),
        *MembersOnlyMixin.access_panels,
    ]
    search_fields = [
        *ListedPage.search_fields,
        index.SearchField("public_body_text"),
        index.RelatedFields("tags", [index.SearchField("name")]),
        index.FilterField("date"),
    ]
    parent_page_types = ["cms.NewsIndexPage"]
    subpage_types = []
    route_select_related = ("listing_image", "category")

    class Meta:
        verbose_name = "news page"

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        context["more_news"] = [item for item in latest_news_links(request) if item["id"] != self.pk][:3]
        context["page_tags"] = self.tags_to_show(request)
        return context

    def tags_to_show(self, request: HttpRequest) -> list[dict]:
        """The page's tags as ``{name, slug}``. For the live page, kept in the cache until a page is next published,
        moved or deleted or a page's tags change (``cms.receivers``); a preview shows the draft's own tags."""
        from cms.cache import read_generational, write_generational

        if getattr(request, "is_preview", False):
            return [{"name": tag.name, "slug": tag.slug} for tag in self.tags.all()]
        key = f"cms:news-tags:{self.pk}"
        generation, tags = read_generational(key)
        if tags is None:
            tags = list(NewsPageTag.objects.filter(content_object=self).order_by("pk").values("tag__name", "tag__slug"))
            tags = [{"name": row["tag__name"], "slug": row["tag__slug"]} for row in tags]
            write_generational(key, generation, tags, LATEST_NEWS_SECONDS)
        return tags


def latest_news_links(request: HttpRequest) -> list[dict]:
    """The four newest public news pages as ``{id, title, date, url}``, shared by every news page. Kept in the
    cache until a page is next published, moved or deleted (``cms.cache``), so a news page does not query for it."""
    from cms.cache import read_generational, write_generational

    generation, links = read_generational("cms:latest-news")
    if links is None:
        pages = NewsPage.objects.live().public().order_by("-date", "-pk")[:4]
        links = [
            {"id": page.pk, "title": page.title, "date": page.date, "url": page.get_url(request)} for page in pages
        ]
        write_generational("cms:latest-news", generation, links, LATEST_NEWS_SECONDS)
    return links


# Advisory-board updates -------------------------------------------------------------------------------------


class BoardUpdateIndexPage(QuickPrivacyCheck, Page):
    """The advisory board's meetings, newest first."""

    introduction = models.TextField(max_length=400, blank=True)

    content_panels = [*Page.content_panels, FieldPanel("introduction")]
    parent_page_types = ["cms.HomePage"]
    subpage_types = ["cms.BoardUpdatePage"]
    max_count = 1
    page_cache = True

    class Meta:
        verbose_name = "board updates index page"

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        updates = BoardUpdatePage.objects.live().public().descendant_of(self).order_by("-meeting_date", "-pk")
        context["updates"] = paginate(request, updates, NEWS_PER_PAGE)
        return context


class BoardUpdatePage(MembersOnlyMixin, ListedPage):  # noqa: DJ008 (Page gives __str__)
    """What an advisory-board meeting discussed and decided, who attended and who does what next."""

    meeting_date = models.DateField(default=timezone.localdate)
    attendees = models.TextField(blank=True, help_text="One a line: name, role and organisation.")
    topics = models.TextField("topics discussed", blank=True, help_text="One a line.")
    body = StreamField(BaseStreamBlock(), use_json_field=True, blank=True, verbose_name="discussion")
    decisions = RichTextField(blank=True, features=["bold", "italic", "link", "ol", "ul"])

    content_panels = [
        *Page.content_panels,
        FieldPanel("meeting_date"),
        FieldPanel("introduction"),
        FieldPanel("attendees"),
        FieldPanel("topics"),
        FieldPanel("body"),
        FieldPanel("decisions"),
        InlinePanel("actions", heading="Actions", label="Action"),
        *MembersOnlyMixin.access_panels,
    ]
    search_fields = [
        *ListedPage.search_fields,
        index.SearchField("public_body_text"),
        index.FilterField("meeting_date"),
    ]
    parent_page_types = ["cms.BoardUpdateIndexPage"]
    subpage_types = []

    class Meta:
        verbose_name = "board update page"

    @property
    def listing_date(self):
        return self.meeting_date

    @property
    def attendee_list(self) -> list[str]:
        return [line.strip() for line in self.attendees.splitlines() if line.strip()]

    @property
    def topic_list(self) -> list[str]:
        return [line.strip() for line in self.topics.splitlines() if line.strip()]

    def public_body_text(self) -> str:
        if self.members_only:
            return ""
        return " ".join([super().public_body_text(), self.topics, strip_tags(self.decisions)])


class BoardAction(Orderable):
    """An action agreed at a board meeting: what, who and by when."""

    page = ParentalKey(BoardUpdatePage, on_delete=models.CASCADE, related_name="actions")
    action = models.CharField(max_length=300)
    owner = models.CharField("who", max_length=120, blank=True)
    due_date = models.DateField("by when", null=True, blank=True)

    panels = [FieldPanel("action"), FieldRowPanel([FieldPanel("owner"), FieldPanel("due_date")])]

    def __str__(self) -> str:
        return self.action


# Success stories --------------------------------------------------------------------------------------------


class SuccessStoryIndexPage(QuickPrivacyCheck, Page):
    """The region's successes, newest first."""

    introduction = models.TextField(max_length=400, blank=True)

    content_panels = [*Page.content_panels, FieldPanel("introduction")]
    parent_page_types = ["cms.HomePage"]
    subpage_types = ["cms.SuccessStoryPage"]
    max_count = 1
    page_cache = True

    class Meta:
        verbose_name = "success stories index page"

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        stories = SuccessStoryPage.objects.live().public().descendant_of(self).select_related("organisation")
        context["stories"] = paginate(request, with_card_images(stories.order_by("-date", "-pk")), NEWS_PER_PAGE)
        return context


class SuccessStoryPage(ListedPage):
    """A member organisation's success, told by the network; it shows on the organisation's directory card.

    Publishing it counts as engagement activity for the organisation, once (``cms.services``).
    """

    organisation = models.ForeignKey(
        Organisation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="success_stories",
        help_text="The member organisation whose success this is.",
    )
    date = models.DateField("story date", default=timezone.localdate)
    body = StreamField(BaseStreamBlock(), use_json_field=True)

    content_panels = [
        *Page.content_panels,
        FieldPanel("organisation"),
        FieldPanel("date"),
        FieldPanel("introduction"),
        FieldPanel("body"),
    ]
    search_fields = [
        *ListedPage.search_fields,
        index.SearchField("body"),
        index.RelatedFields("organisation", [index.SearchField("name")]),
    ]
    parent_page_types = ["cms.SuccessStoryIndexPage"]
    subpage_types = []

    class Meta:
        verbose_name = "success story page"


# Standard pages ---------------------------------------------------------------------------------------------


class StandardPage(MembersOnlyMixin, ListedPage):  # noqa: DJ008 (Page gives __str__)
    """A plain page (About, Governance, a members' guide...), public or members-only."""

    body = StreamField(BaseStreamBlock(), use_json_field=True)

    content_panels = [
        *Page.content_panels,
        FieldPanel("introduction"),
        FieldPanel("body"),
        *MembersOnlyMixin.access_panels,
    ]
    search_fields = [*ListedPage.search_fields, index.SearchField("public_body_text")]
    parent_page_types = ["cms.HomePage", "cms.StandardPage"]
    subpage_types = ["cms.StandardPage"]

    class Meta:
        verbose_name = "standard page"


# The member directory ---------------------------------------------------------------------------------------


class DirectoryPage(QuickPrivacyCheck, Page):
    """Member organisations that opted in to the directory, searchable and filtered by specialism, type, size
    and town. A card shows the name and only the details its organisation chose to publish, and a filter or
    search only ever matches on a detail the organisation publishes."""

    introduction = models.TextField(max_length=400, blank=True)

    content_panels = [*Page.content_panels, FieldPanel("introduction")]
    parent_page_types = ["cms.HomePage"]
    subpage_types = []
    max_count = 1
    # Organisations edit their cards at any time, and a member expects to see the change at once.
    page_cache = False

    class Meta:
        verbose_name = "directory page"

    def get_context(self, request, *args, **kwargs):
        from cms.directory import DirectoryFilterForm, directory_cards

        context = super().get_context(request, *args, **kwargs)
        form = DirectoryFilterForm(request.GET or None)
        organisations = directory_cards(form.filters())
        context["form"] = form
        context["organisations"] = paginate(request, organisations, DIRECTORY_PER_PAGE)
        context["filtered"] = bool(form.filters())
        return context


from cms.events.models import EventIndexPage, EventPage, EventRegistration  # noqa: E402,F401
