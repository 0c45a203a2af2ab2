"""An unhandled error in a view reaches Sentry, without members' personal data.

A tiny local HTTP server stands in for Sentry and records every envelope the SDK posts to it.
"""

import gzip
import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sentry_sdk
from django.urls import path

from config.sentry import init_sentry

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DRILL_MESSAGE = f"sentry-drill-{uuid.uuid4()}"


def boom(request):
    raise RuntimeError(DRILL_MESSAGE)


# The test-only URLconf used through @pytest.mark.urls(__name__).
urlpatterns = [path("boom/", boom)]


class _Recorder(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format, *args):
        pass


@pytest.fixture
def fake_sentry():
    """A local stand-in for Sentry's ingest endpoint: yields (port, list of received POSTs)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], server.received
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def sentry_on(fake_sentry, monkeypatch):
    port, received = fake_sentry
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    global_scope = sentry_sdk.get_global_scope()
    previous_client = global_scope.client
    init_sentry(f"http://publickey@127.0.0.1:{port}/1")
    assert sentry_sdk.get_client().is_active()
    yield received
    # Leave the rest of the suite with the client it had before (normally the inactive, non-recording one).
    sentry_sdk.get_client().close(timeout=2)
    global_scope.set_client(previous_client)


def _decode(post: dict) -> bytes:
    encoding = {key.lower(): value for key, value in post["headers"].items()}.get("content-encoding", "")
    if encoding == "gzip":
        return gzip.decompress(post["body"])
    if encoding == "br":  # the SDK compresses with brotli when the package is installed (the test tools bring it)
        import brotli

        return brotli.decompress(post["body"])
    assert encoding in ("", "identity"), f"unexpected Content-Encoding {encoding!r}"
    return post["body"]


def _items(envelope: bytes) -> list[tuple[dict, bytes]]:
    """Split an envelope: a header line, then for each item a header line and its payload."""
    _header, _, rest = envelope.partition(b"\n")
    items = []
    while rest.strip():
        item_header_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_header_line)
        if "length" in item_header:
            payload, rest = rest[: item_header["length"]], rest[item_header["length"] :]
            rest = rest.removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((item_header, payload))
    return items


def _events(received: list[dict]) -> list[dict]:
    return [
        json.loads(payload)
        for post in received
        for item_header, payload in _items(_decode(post))
        if item_header.get("type") == "event"
    ]


@pytest.mark.urls(__name__)
def test_an_unhandled_error_in_a_view_reaches_sentry_without_personal_data(sentry_on, client, member):
    client.force_login(member)
    client.cookies["tracking"] = "a-cookie-value-that-must-not-leave"
    client.raise_request_exception = False

    response = client.get("/boom/", {"q": "1"}, HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 500
    sentry_sdk.flush(timeout=5)

    assert sentry_on, "nothing reached the fake Sentry"
    assert {post["path"] for post in sentry_on} == {"/api/1/envelope/"}
    events = [event for event in _events(sentry_on) if DRILL_MESSAGE in json.dumps(event)]
    assert len(events) == 1
    event = events[0]

    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"] == DRILL_MESSAGE
    assert event["transaction"] == "/boom/"

    # send_default_pii is off: no user identity, no IP, no cookies.
    assert event.get("user", {}).get("email") is None
    assert event.get("user", {}).get("ip_address") is None
    assert "cookies" not in event["request"]
    headers = {key.lower() for key in event["request"].get("headers", {})}
    assert "cookie" not in headers
    serialised = json.dumps(event)
    assert member.email not in serialised
    assert "a-cookie-value-that-must-not-leave" not in serialised
    assert "203.0.113.9" not in serialised


def _sentry_client_after_importing_settings(**extra_env: str) -> dict:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("SENTRY_"):
            env.pop(name)
    for name in ("SOURCE_VERSION", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env.update(extra_env)
    script = (
        "import json, django, sentry_sdk\n"
        "django.setup()\n"
        "client = sentry_sdk.get_client()\n"
        "options = client.options or {}\n"
        "print(json.dumps({'active': client.is_active(),"
        " 'send_default_pii': options.get('send_default_pii'),"
        " 'environment': options.get('environment'), 'release': options.get('release')}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sentry_starts_only_when_a_dsn_is_set_and_takes_its_environment_and_release_from_env():
    assert _sentry_client_after_importing_settings()["active"] is False

    client = _sentry_client_after_importing_settings(
        SENTRY_DSN="http://publickey@127.0.0.1:9/1",
        SENTRY_ENVIRONMENT="staging-drill",
        SENTRY_RELEASE="release-abc123",
    )
    assert client == {
        "active": True,
        "send_default_pii": False,
        "environment": "staging-drill",
        "release": "release-abc123",
    }
