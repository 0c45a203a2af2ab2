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
from django.http import HttpRequest, HttpResponse

GENERATION_KEY = "cms:pages:generation"
_CACHEABLE = "_cms_page_cacheable"
# Headers a stored response keeps; the rest (CSP, security headers) are added again on the way out.
_KEPT_HEADERS = ("Content-Type", "Content-Language", "Vary", "Last-Modified")


def purge_pages() -> None:
    """Start a new generation: no page cached before now is served again (the navigation is rebuilt too)."""
    cache.set(GENERATION_KEY, uuid.uuid4().hex, None)


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
