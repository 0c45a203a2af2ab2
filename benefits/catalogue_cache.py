"""The catalogue as a first-time visitor sees it, cached: the same for everyone who is not logged in.

Every change to what the catalogue shows (a perk, a provider, a perk's tiers, a tier's name) moves the
version on, so the next visitor gets a fresh page; the date is in the key because perks start, end and
stop being "new" with the calendar. Logged-in people, and anyone with a session or a message waiting,
always get the page rendered for them.
"""

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

VERSION_KEY = "benefits:catalogue:version"
TIMEOUT = 600


def bump() -> None:
    try:
        cache.incr(VERSION_KEY)
    except ValueError:
        cache.set(VERSION_KEY, 1, timeout=None)


def _key(request: HttpRequest) -> str | None:
    if request.user.is_authenticated or settings.SESSION_COOKIE_NAME in request.COOKIES:
        return None
    if "messages" in request.COOKIES:
        return None
    version = cache.get_or_set(VERSION_KEY, 1, timeout=None)
    query = hashlib.sha256(request.GET.urlencode().encode()).hexdigest()[:32]
    return f"benefits:catalogue:{version}:{timezone.localdate().isoformat()}:{query}"


def cached(request: HttpRequest) -> tuple[str | None, HttpResponse | None]:
    """The cache key for this request (None when it must not be cached) and the cached page, if any."""
    key = _key(request)
    content = cache.get(key) if key else None
    return key, HttpResponse(content) if content is not None else None


def store(key: str | None, response: HttpResponse) -> HttpResponse:
    if key and response.status_code == 200:
        cache.set(key, response.content, timeout=TIMEOUT)
    return response


def on_change(sender, **kwargs) -> None:
    """Receiver for saves and deletes of what the catalogue shows, within the perks app's own models."""
    bump()
