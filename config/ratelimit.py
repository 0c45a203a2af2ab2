"""Rate limits for the platform's own actions (perk redemptions, colleague invitations), on Django's cache.

allauth limits logging in, signing up and password resets itself (``ACCOUNT_RATE_LIMITS``). What it does not
cover is limited here with the same rate notation, per user: ``"10/m,100/d"`` means at most 10 a minute and 100
a day. Each rate counts in fixed windows with the cache's atomic ``incr``, so concurrent requests never lose a
count and never wait on a lock; a burst straddling the end of a window can reach twice the rate once, which is
acceptable for limits meant to stop a script, not a person.
"""

import contextlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


@dataclass(frozen=True)
class Rate:
    amount: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> "Rate":
        """``"10/m"``, ``"30/h"`` or ``"5/15m"``: an amount per a number of seconds, minutes, hours or days."""
        amount, period = text.strip().split("/")
        count, unit = period[:-1] or "1", period[-1]
        return cls(int(amount), int(count) * _UNITS[unit])


def parse_rates(text: str) -> list[Rate]:
    return [Rate.parse(part) for part in text.split(",") if part.strip()]


def _now() -> float:
    return time.time()


def _count(key: str, timeout: int) -> int:
    # add() then incr() is atomic on Redis and on the local-memory cache; the retry covers a key that expired
    # between the two calls.
    for _ in range(2):
        cache.add(key, 0, timeout)
        try:
            return cache.incr(key)
        except ValueError:
            continue
    return 1


def _uncount(key: str) -> None:
    with contextlib.suppress(ValueError):  # expired meanwhile: nothing left to take off
        cache.decr(key)


def consume(action: str, ident: str) -> int:
    """Count one attempt at ``action`` by ``ident``: 0 if allowed, else the seconds until it would be.

    The rates are ``settings.RATE_LIMITS[action]``; an action with none is never limited. A refused attempt is
    taken off the counts again, so being refused does not use up a longer period's allowance.
    """
    now = _now()
    counted, wait = [], 0
    for rate in parse_rates(settings.RATE_LIMITS.get(action, "")):
        window = int(now // rate.seconds)
        key = f"ratelimit:{action}:{rate.amount}/{rate.seconds}:{ident}:{window}"
        counted.append(key)
        if _count(key, rate.seconds + 1) > rate.amount:
            wait = max(wait, math.ceil((window + 1) * rate.seconds - now))
    if wait:
        for key in counted:
            _uncount(key)
    return wait


def too_many_requests(request: HttpRequest, message: str, retry_after: int) -> HttpResponse:
    """A 429 page saying what was refused and when to try again."""
    response = render(request, "429.html", {"message": message, "retry_after": retry_after}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def limit_user(request: HttpRequest, action: str, message: str) -> HttpResponse | None:
    """A 429 response when the logged-in user has used up ``action``'s rates; None to go ahead."""
    wait = consume(action, f"user:{request.user.pk}")
    return too_many_requests(request, message, wait) if wait else None
