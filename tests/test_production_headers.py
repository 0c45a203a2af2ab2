"""Production settings send the security headers and cookie flags on a real response.

The HTTPS-only settings are computed when the settings module is imported, from SITE_URL, so the real app
runs here under gunicorn in a subprocess with a production-like environment, behind a pretend proxy that
sets X-Forwarded-Proto.
"""

import http.client
import os
import re
import secrets
import socket
import string
import subprocess
import sys
import time
from http.cookies import Morsel, SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HOST = "members.example.org"
EMAIL = "finance@tyne-analytics.example"
PASSWORD = "production-drill-passphrase-7"

CREATE_USER = f"""
from allauth.account.models import EmailAddress
from accounts.models import User
user = User.objects.create_user({EMAIL!r}, {PASSWORD!r})
EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _production_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in (
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "STATIC_MANIFEST",
        "DEBUG",
        "SENTRY_DSN",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "CSRF_TRUSTED_ORIGINS",
        "EMAIL_HOST",
    ):
        env.pop(name, None)
    alphabet = string.ascii_letters + string.digits + string.punctuation.replace("'", "").replace('"', "")
    env.update(
        SITE_URL=f"https://{HOST}",
        ALLOWED_HOSTS=f"{HOST},127.0.0.1",
        SECRET_KEY="".join(secrets.choice(alphabet) for _ in range(50)),
        DATABASE_URL=f"sqlite:///{tmp / 'prod.sqlite3'}",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    return env


class Server:
    def __init__(self, port: int):
        self.port = port

    def request(self, method: str, path: str, *, https: bool = True, headers=None, body=None):
        """One real HTTP request; returns the response with its body read into ``.text``."""
        all_headers = {"Host": HOST, **({"X-Forwarded-Proto": "https"} if https else {}), **(headers or {})}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            response.text = response.read().decode("utf-8", "replace")
            return response
        finally:
            connection.close()


@pytest.fixture(scope="module")
def production_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("production")
    env = _production_env(tmp)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=PROJECT_ROOT, env=env, check=True)
    subprocess.run([*manage, "shell", "-c", CREATE_USER], cwd=PROJECT_ROOT, env=env, check=True)

    port = _free_port()
    log = (tmp / "gunicorn.log").open("w")
    gunicorn = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        server = Server(port)
        deadline = time.monotonic() + 60
        while True:
            assert gunicorn.poll() is None, (tmp / "gunicorn.log").read_text()
            try:
                server.request("GET", "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not answer:\n{(tmp / 'gunicorn.log').read_text()}")
                time.sleep(0.2)
        yield server
    finally:
        gunicorn.terminate()
        try:
            gunicorn.wait(timeout=10)
        except subprocess.TimeoutExpired:
            gunicorn.kill()
            gunicorn.wait()
        log.close()


def _cookie(response, name: str) -> Morsel:
    for header in response.msg.get_all("Set-Cookie") or []:
        jar = SimpleCookie()
        jar.load(header)
        if name in jar:
            return jar[name]
    raise AssertionError(f"no {name} cookie in {response.msg.get_all('Set-Cookie')}")


def _assert_secure_httponly_lax(morsel: Morsel) -> None:
    assert morsel["secure"] is True
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"


def test_the_login_page_sends_the_security_headers(production_server):
    response = production_server.request("GET", "/accounts/login/")
    assert response.status == 200

    hsts = response.getheader("Strict-Transport-Security", "")
    max_age = re.search(r"max-age=(\d+)", hsts)
    assert max_age and int(max_age.group(1)) >= 31_536_000, hsts
    assert "includeSubDomains" in hsts

    csp = response.getheader("Content-Security-Policy", "")
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.getheader("X-Frame-Options") == "DENY"
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Referrer-Policy") == "strict-origin-when-cross-origin"
    assert response.getheader("Cross-Origin-Opener-Policy") == "same-origin"

    _assert_secure_httponly_lax(_cookie(response, "csrftoken"))


def test_logging_in_sets_a_secure_httponly_lax_session_cookie(production_server):
    page = production_server.request("GET", "/accounts/login/")
    csrf_cookie = _cookie(page, "csrftoken").value
    csrf_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)

    response = production_server.request(
        "POST",
        "/accounts/login/",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf_cookie}",
            "Referer": f"https://{HOST}/accounts/login/",
        },
        body=urlencode({"csrfmiddlewaretoken": csrf_token, "login": EMAIL, "password": PASSWORD}),
    )
    assert response.status == 302, response.text[:2000]
    assert response.getheader("Location") == "/"
    _assert_secure_httponly_lax(_cookie(response, "sessionid"))


def test_plain_http_is_redirected_permanently_to_https(production_server):
    response = production_server.request("GET", "/", https=False)
    assert response.status == 301
    assert response.getheader("Location") == f"https://{HOST}/"


def test_the_admin_enforces_its_own_policy_and_reports_the_strict_one(production_server):
    response = production_server.request("GET", "/admin/login/")
    assert response.status == 302  # handed over to allauth's login
    assert "default-src 'self'" in response.getheader("Content-Security-Policy-Report-Only", "")
    enforced = response.getheader("Content-Security-Policy")
    # The admins' own inline scripts keep the strict policy report-only there; the rest is enforced.
    assert "default-src" not in enforced
    for directive in ("frame-ancestors 'self'", "object-src 'none'", "base-uri 'self'", "form-action 'self'"):
        assert directive in enforced


def _assert_production_headers(response, where: str) -> None:
    hsts = response.getheader("Strict-Transport-Security", "")
    max_age = re.search(r"max-age=(\d+)", hsts)
    assert max_age and int(max_age.group(1)) >= 31_536_000, where
    assert response.getheader("Content-Security-Policy"), where
    assert "frame-ancestors" in response.getheader("Content-Security-Policy"), where
    assert response.getheader("X-Frame-Options") in ("DENY", "SAMEORIGIN"), where
    assert response.getheader("X-Content-Type-Options") == "nosniff", where
    assert response.getheader("Referrer-Policy") == "strict-origin-when-cross-origin", where
    assert response.getheader("Cross-Origin-Opener-Policy") == "same-origin", where
    assert "camera=()" in response.getheader("Permissions-Policy", ""), where


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/perks/", 200),
        ("GET", "/healthz", 200),
        ("GET", "/robots.txt", 200),
        ("GET", "/static/css/site.css", 200),
        ("GET", "/no-such-page/", 404),
        ("GET", "/admin/", 302),
        ("GET", "/django-admin/", 302),
        ("POST", "/accounts/login/", 403),  # no CSRF token
        ("POST", "/billing/stripe/webhook/", 400),  # no signature
    ],
)
def test_every_kind_of_response_carries_the_security_headers(production_server, method, path, status):
    response = production_server.request(method, path, body=b"" if method == "POST" else None)
    assert response.status == status, response.text[:500]
    _assert_production_headers(response, f"{method} {path}")


def test_the_member_portal_and_its_json_download_carry_the_security_headers(production_server):
    page = production_server.request("GET", "/accounts/login/")
    csrf_cookie = _cookie(page, "csrftoken").value
    csrf_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    login = production_server.request(
        "POST",
        "/accounts/login/",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf_cookie}",
            "Referer": f"https://{HOST}/accounts/login/",
        },
        body=urlencode({"csrfmiddlewaretoken": csrf_token, "login": EMAIL, "password": PASSWORD}),
    )
    cookies = {"Cookie": f"csrftoken={csrf_cookie}; sessionid={_cookie(login, 'sessionid').value}"}
    for path, content_type in (("/my/account/", "text/html"), ("/my/account/export/", "application/json")):
        response = production_server.request("GET", path, headers=cookies)
        assert response.status == 200, path
        assert response.getheader("Content-Type").startswith(content_type)
        _assert_production_headers(response, path)
