"""Operational endpoints that sit outside any one app."""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from config.celery import app as celery_app

logger = logging.getLogger(__name__)


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_cache() -> str:
    cache.set("healthz", "ok", 10)
    if cache.get("healthz") != "ok":
        raise RuntimeError("the cache did not return what was written")
    if getattr(cache, "degraded", False):
        # The site keeps serving on a stand-in (config.cache), but Redis itself is unreachable.
        raise RuntimeError("Redis is unreachable")
    return "ok"


def _check_broker() -> str:
    if not settings.CELERY_BROKER_URL:
        return "in-process"
    with celery_app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    return "ok"


CHECKS = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 with each service's status, or 503 naming the services that are down."""
    status: dict[str, str] = {}
    down = []
    for name, check in CHECKS.items():
        try:
            status[name] = check()
        except Exception as exc:  # any failure of a service is a "down", never a 500
            logger.warning("healthz: %s is down: %s", name, exc)
            status[name] = "down"
            down.append(name)
    body = {"status": "down" if down else "ok", "checks": status, "down": down}
    return JsonResponse(body, status=503 if down else 200)
