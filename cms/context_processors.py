from django.apps import apps
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.functional import SimpleLazyObject

from cms.cache import read_generational, write_generational

# The header's sections, in order: a label, then where it leads. A target is a page type ("cms.NewsIndexPage":
# the site's first live page of that type, wherever editors put it) or a URL name ("join"); the first target
# that exists wins. A section appears once the capability behind it is installed and, for pages, published,
# so the navigation never links to a page that does not exist.
NAVIGATION = [
    ("News", "cms.NewsIndexPage"),
    ("Events", "cms.EventIndexPage", "cms:events"),
    ("Perks", "benefits:catalogue"),
    ("Directory", "cms.DirectoryPage"),
    ("Join", "join"),
]
# Page addresses are looked up once per cache generation: publishing, moving or deleting a page starts a new one.
NAVIGATION_CACHE_SECONDS = 3600


def _resolve(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def _page_model(label: str):
    if "." not in label:
        return None
    try:
        return apps.get_model(label)
    except LookupError:
        return None


def _page_urls(request: HttpRequest) -> dict[str, str]:
    """The address of the first live page of each page type the navigation names, for this site."""
    from wagtail.models import Page, Site

    models = {target: model for _, *targets in NAVIGATION for target in targets if (model := _page_model(target))}
    if not models:
        return {}
    key = f"cms:navigation:{request.get_host()}"
    generation, urls = read_generational(key)
    if urls is not None:
        return urls
    site = Site.find_for_request(request)
    content_types = ContentType.objects.get_for_models(*models.values())
    pages = Page.objects.live().filter(content_type__in=content_types.values()).order_by("depth", "path")
    if site is not None:
        pages = pages.filter(path__startswith=site.root_page.path)
    labels = {content_types[model].pk: target for target, model in models.items()}
    urls = {}
    for page in pages:
        urls.setdefault(labels[page.content_type_id], page.get_url(request))
    write_generational(key, generation, urls, NAVIGATION_CACHE_SECONDS)
    return urls


def _navigation(request: HttpRequest) -> list[dict]:
    page_urls = _page_urls(request)
    navigation = []
    for label, *targets in NAVIGATION:
        url = next((found for target in targets if (found := page_urls.get(target) or _resolve(target))), None)
        if url:
            navigation.append({"label": label, "url": url, "active": request.path.startswith(url)})
    return navigation


def site_shell(request: HttpRequest) -> dict:
    return {
        "site_name": settings.WAGTAIL_SITE_NAME,
        # Built only when a template shows it (the back office's pages do not).
        "navigation": SimpleLazyObject(lambda: _navigation(request)),
        "portal_url": _resolve("membership:portal"),
        "my_events_url": _resolve("events:mine"),
        "account_url": _resolve("accounts:account"),
        "demo_payments": settings.DEMO_PAYMENTS,
    }
