import json

import pytest
from django.db import OperationalError

from config import views


@pytest.mark.django_db
def test_it_reports_every_service(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = json.loads(response.content)
    assert body["status"] == "ok"
    assert body["down"] == []
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"] == "ok"
    # In-process without a broker, "ok" with one.
    assert body["checks"]["broker"] in {"ok", "in-process"}
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_a_stopped_broker_is_a_503_naming_it(client, settings):
    # A broker address where nothing listens is what a stopped Redis looks like to the web tier.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["status"] == "down"
    assert body["down"] == ["broker"]
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_a_failing_cache_is_a_503_naming_it(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("cache refused the connection")

    monkeypatch.setattr(views.cache, "set", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert json.loads(response.content)["down"] == ["cache"]


@pytest.mark.django_db
def test_a_lost_database_is_a_503_naming_it(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(views.connection, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert json.loads(response.content)["down"] == ["database"]
