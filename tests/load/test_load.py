"""Fifty people at once against the whole stack, as ``python -m bench.load`` runs it, with fewer requests.

The load runs in processes of its own (gunicorn, a Celery worker, the fake Stripe, locust) on a database of its
own next to the test database (``<test database>_load``, migrated and seeded on first use), so this test uses
no test database and leaves nothing behind in it.
"""

import os
from urllib.parse import urlsplit

import pytest

from bench import load
from tests.conftest import require

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.load]


def test_fifty_people_at_once_get_no_server_error_and_every_accepted_write_is_stored_exactly_once(monkeypatch):
    url = os.environ.get("DATABASE_URL", "")
    require(url.startswith("postgres"), "PostgreSQL (set DATABASE_URL)")
    require(bool(os.environ.get("REDIS_URL")), "Redis (set REDIS_URL)")
    require(bool(os.environ.get("CELERY_BROKER_URL")), "a Celery broker (set CELERY_BROKER_URL)")
    address = urlsplit(url)
    monkeypatch.setenv("BENCH_DATABASE_URL", address._replace(path="/").geturl())

    summary = load.run(requests=1000, users=50, database=address.path.strip("/") + "_load")

    load.report(summary)  # shown when the test fails
    assert summary["requests"] == 1000
    assert summary["server_errors"] == 0
    assert [check for check in summary["checks"] if not check["holds"]] == []
