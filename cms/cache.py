"""The page cache: finished HTML of public pages, served to anonymous visitors without rendering again.

Turned on by the ``PAGE_CACHE`` setting. Only anonymous GETs are served from it or stored in it (a request
carrying a session or messages cookie never is), and only responses a page marked cacheable (see
``cms.wagtail_hooks``: public pages, never members-only ones, never behind Wagtail's own privacy settings)
that set no cookie and use no CSRF token. Entries are keyed by host and full URL.

Purging: a page's published content also shows on its index, the home page and the navigation, so publishing,
unpublishing, moving or deleting any page purges the whole cache at once. Every entry is stored with the
cache's current *generation*; a purge starts a new generation, so older entries are never served again and
simply expire. Entry and generation are read in one round trip. With the local-memory cache each process
has its own cache, so production turns the page cache on only with Redis (``REDIS_URL``), where a purge
reaches every web process.
"""

import hashlib
import uuid
from collections.abc import Callable

from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse

GENERATION_KEY = "cms:pages:generation"
_CACHEABLE = "_cms_page_cacheable"
# Headers a stored response keeps; the rest (CSP, security headers) are added again on the way out.
_KEPT_HEADERS = ("Content-Type", "Content-Language", "Vary", "Last-Modified")


def purge_pages() -> None:
    """Start a new generation: no page cached before now is served again (the navigation is rebuilt too).

    Inside a transaction (a publish is one), the purge is made again once it commits: a request served between
    the two reads the rows as they were before the change, and what it cached under the first new generation
    must not outlive the commit."""
    cache.set(GENERATION_KEY, uuid.uuid4().hex, None)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: cache.set(GENERATION_KEY, uuid.uuid4().hex, None))


def read_generational(key: str) -> tuple[str, object | None]:
    """The current generation and the value stored under ``key`` in it (None when missing or purged)."""
    found = cache.get_many([GENERATION_KEY, key])
    generation = found.get(GENERATION_KEY)
    if generation is None:
        generation = uuid.uuid4().hex
        if not cache.add(GENERATION_KEY, generation, None):
            generation = cache.get(GENERATION_KEY) or generation
        return generation, None
    entry = found.get(key)
    if isinstance(entry, dict) and entry.get("generation") == generation:
        return generation, entry.get("value")
    return generation, None


def write_generational(key: str, generation: str, value, timeout: int) -> None:
    cache.set(key, {"generation": generation, "value": value}, timeout)


def mark_cacheable(request: HttpRequest) -> None:
    """Let the page cache keep this request's response (the page decides; the middleware checks the rest)."""
    setattr(request, _CACHEABLE, True)


def may_use_cache(request: HttpRequest) -> bool:
    """An anonymous GET that may be answered from, and stored in, the page cache."""
    return (
        settings.PAGE_CACHE
        and request.method == "GET"
        and settings.SESSION_COOKIE_NAME not in request.COOKIES
        and CookieStorage.cookie_name not in request.COOKIES
        and "HTTP_HX_REQUEST" not in request.META
    )


def _key(request: HttpRequest) -> str:
    address = f"{request.scheme}://{request.get_host()}{request.get_full_path()}"
    return "cms:page:" + hashlib.sha256(address.encode()).hexdigest()


def _storable(request: HttpRequest, response: HttpResponse) -> bool:
    return (
        getattr(request, _CACHEABLE, False)
        and response.status_code == 200
        and not response.streaming
        and not response.cookies
        and not request.META.get("CSRF_COOKIE_NEEDS_UPDATE")
        and not request.META.get("CSRF_COOKIE_USED")
        and "private" not in response.get("Cache-Control", "")
    )


class PageCacheMiddleware:
    """Answers anonymous GETs for cached public pages before any routing or rendering happens."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not may_use_cache(request):
            return self.get_response(request)
        key = _key(request)
        generation, stored = read_generational(key)
        if stored is not None:
            content, headers = stored
            response = HttpResponse(content, headers=headers)
            response["X-Page-Cache"] = "hit"
            return response
        response = self.get_response(request)
        if _storable(request, response):
            headers = {name: response[name] for name in _KEPT_HEADERS if response.has_header(name)}
            write_generational(key, generation, (response.content, headers), settings.PAGE_CACHE_SECONDS)
            response["X-Page-Cache"] = "miss"
        return response


# Where pages live ---------------------------------------------------------------------------------------------
# Serving a page first finds its site and then the page at the address, before any of the page's own work. Both
# change only when pages are published, moved or deleted, or sites and privacy settings change, and each of
# those starts a new generation (``cms.receivers``), so they are kept here between such changes. These are
# addresses, not content: the page itself is fetched and rendered on every request the page cache does not answer.

ROUTING_SECONDS = 3600
_NOT_FOUND = "none"


def _host_and_port(request: HttpRequest) -> tuple[str, int]:
    from django.http.request import split_domain_port

    return split_domain_port(request._get_raw_host())[0], request.get_port()


def find_site(request: HttpRequest):
    """The Wagtail site for ``request``, with its root page's specific instance, as ``Site.find_for_request``
    finds it; kept on the request as Wagtail keeps it."""
    if hasattr(request, "_wagtail_site"):
        return request._wagtail_site
    from wagtail.models import Site

    hostname, port = _host_and_port(request)
    key = "cms:site:" + hashlib.sha256(f"{hostname}:{port}".encode()).hexdigest()
    generation, site = read_generational(key)
    if site is None:
        site = Site.find_for_request(request)
        if site is not None:
            site.root_page.specific  # noqa: B018  (fetched now, so the cached site carries it)
        write_generational(key, generation, site or _NOT_FOUND, ROUTING_SECONDS)
    request._wagtail_site = None if site == _NOT_FOUND else site
    return request._wagtail_site


def find_page_address(url_path: str) -> tuple[int, int] | None:
    """The id and content type of the page at ``url_path`` (Wagtail's ``url_path``, e.g. ``/home/news/x/``)."""
    from wagtail.models import Page

    key = "cms:route:" + hashlib.sha256(url_path.encode()).hexdigest()
    generation, found = read_generational(key)
    if found is None:
        found = Page.objects.filter(url_path=url_path).order_by("path").values_list("pk", "content_type_id").first()
        if found is None:
            return None  # unknown addresses are not kept: anyone could fill the cache with them
        write_generational(key, generation, tuple(found), ROUTING_SECONDS)
    return found


def any_view_restrictions() -> bool:
    """Whether any page has Wagtail's own privacy settings (a password, log-in or group restriction)."""
    from wagtail.models import PageViewRestriction

    generation, found = read_generational("cms:view-restrictions")
    if found is None:
        found = "yes" if PageViewRestriction.objects.exists() else "no"
        write_generational("cms:view-restrictions", generation, found, ROUTING_SECONDS)
    return found == "yes"


class QuickPrivacyCheck:
    """Wagtail checks its own privacy settings (passwords, log-in or group restrictions) on this page and its
    ancestors before serving it, in two queries; while no page anywhere has such a setting, which is kept in the
    cache (``cms.cache.any_view_restrictions``), there is nothing to look up."""

    def get_view_restrictions(self):
        from wagtail.models import PageViewRestriction

        if not any_view_restrictions():
            return PageViewRestriction.objects.none()
        return super().get_view_restrictions()
