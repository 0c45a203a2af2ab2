"""A Redis cache that an outage degrades instead of breaking: the site keeps serving while Redis is down.

When Redis cannot be reached, an operation is answered as if the cache were empty (a read misses, a write is
dropped) or, for a cache configured with ``LOCAL_FALLBACK``, by a small cache in this process's memory, so that
rate limits and one-time-code checks keep working per process. After a failure Redis is left alone for
``RETRY_AFTER_SECONDS`` (a hung Redis would otherwise cost every operation its timeout); the outage and the
recovery are each logged once.

Sessions use a cache without the fallback: during an outage every session is read from the database, so a
log-out handled by one web process is never undone by another process's memory.
"""

import logging
import threading
import time

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
RETRY_AFTER_SECONDS = 5


class _Missing:
    """Answers like an empty cache that keeps nothing."""

    def add(self, *args, **kwargs):
        return False

    def get(self, key, default=None, version=None):
        return default

    def set(self, *args, **kwargs):
        return None

    def touch(self, *args, **kwargs):
        return False

    def delete(self, *args, **kwargs):
        return False

    def get_many(self, *args, **kwargs):
        return {}

    def has_key(self, *args, **kwargs):
        return False

    def incr(self, key, delta=1, version=None):
        raise ValueError(f"Key '{key}' not found")

    def set_many(self, *args, **kwargs):
        return []

    def delete_many(self, *args, **kwargs):
        return None

    def clear(self):
        return False


class ResilientRedisCache(RedisCache):
    """Django's Redis cache, answering from a stand-in (see the module) while Redis is unreachable."""

    def __init__(self, server, params):
        options = dict(params.get("OPTIONS", {}))
        local_fallback = options.pop("LOCAL_FALLBACK", False)
        super().__init__(server, {**params, "OPTIONS": options})
        self._stand_in = (
            LocMemCache(f"redis-fallback-{id(self)}", {**params, "OPTIONS": {"MAX_ENTRIES": 5000}})
            if local_fallback
            else _Missing()
        )
        self._down_until = 0.0
        self._lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        """True from a failure to reach Redis until it next answers (``/healthz`` reports the cache down)."""
        return bool(self._down_until)

    def _run(self, name: str, *args, **kwargs):
        if time.monotonic() < self._down_until:
            return getattr(self._stand_in, name)(*args, **kwargs)
        try:
            result = getattr(super(), name)(*args, **kwargs)
        except UNREACHABLE as error:
            with self._lock:
                if not self._down_until:
                    logger.error("Redis is unreachable (%s); the cache degrades until it answers", error)
                self._down_until = time.monotonic() + RETRY_AFTER_SECONDS
            return getattr(self._stand_in, name)(*args, **kwargs)
        self._recovered()
        return result

    def _recovered(self) -> None:
        if self._down_until:
            with self._lock:
                if self._down_until:
                    logger.warning("Redis answers again; the cache is back on it")
                    self._down_until = 0.0

    def add(self, *args, **kwargs):
        return self._run("add", *args, **kwargs)

    def get(self, *args, **kwargs):
        return self._run("get", *args, **kwargs)

    def set(self, *args, **kwargs):
        return self._run("set", *args, **kwargs)

    def touch(self, *args, **kwargs):
        return self._run("touch", *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._run("delete", *args, **kwargs)

    def get_many(self, *args, **kwargs):
        return self._run("get_many", *args, **kwargs)

    def has_key(self, *args, **kwargs):
        return self._run("has_key", *args, **kwargs)

    def incr(self, *args, **kwargs):
        return self._run("incr", *args, **kwargs)

    def set_many(self, *args, **kwargs):
        return self._run("set_many", *args, **kwargs)

    def delete_many(self, *args, **kwargs):
        return self._run("delete_many", *args, **kwargs)

    def clear(self):
        return self._run("clear")
