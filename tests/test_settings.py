"""The settings module read under different environments, each in a fresh interpreter."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import json, django
from django.conf import settings
django.setup()
from config.celery import app
print(json.dumps({
    "debug": settings.DEBUG,
    "db": settings.DATABASES["default"]["ENGINE"],
    "cache": settings.CACHES["default"]["BACKEND"],
    "email": settings.EMAIL_BACKEND,
    "eager": app.conf.task_always_eager,
    "broker": app.conf.broker_url,
    "demo_payments": settings.DEMO_PAYMENTS,
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
    "hsts": settings.SECURE_HSTS_SECONDS,
    "secure_cookies": settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE,
    "allowed_hosts": settings.ALLOWED_HOSTS,
}))
"""
SERVICE_VARIABLES = (
    "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "EMAIL_HOST", "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET", "SENTRY_DSN", "DEBUG", "SITE_URL", "ALLOWED_HOSTS", "SECRET_KEY",
)  # fmt: skip


def _settings_under(**variables: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(variables, DJANGO_SETTINGS_MODULE="config.settings")
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_it_runs_on_embedded_defaults_with_no_environment():
    found = _settings_under()
    assert found["debug"] is False
    assert found["db"] == "django.db.backends.sqlite3"
    assert found["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert found["email"] == "django.core.mail.backends.console.EmailBackend"
    assert found["eager"] is True
    assert found["demo_payments"] is True
    # Plain http on the loopback: no redirect to https, which would lock a laptop out.
    assert found["ssl_redirect"] is False
    assert "127.0.0.1" in found["allowed_hosts"]


def test_it_takes_every_production_service_from_the_environment():
    found = _settings_under(
        DATABASE_URL="postgres://app:secret@db.internal:5432/members",
        REDIS_URL="redis://cache.internal:6379/0",
        CELERY_BROKER_URL="redis://cache.internal:6379/1",
        EMAIL_HOST="smtp.internal",
        STRIPE_SECRET_KEY="sk_live_x",
        STRIPE_WEBHOOK_SECRET="whsec_x",
        SITE_URL="https://members.example.org",
        SECRET_KEY="a-long-random-production-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    )
    assert found["db"] == "django.db.backends.postgresql"
    assert found["cache"] == "config.cache.ResilientRedisCache"
    assert found["email"] == "django.core.mail.backends.smtp.EmailBackend"
    assert found["eager"] is False
    assert found["broker"] == "redis://cache.internal:6379/1"
    assert found["demo_payments"] is False
    assert found["ssl_redirect"] is True
    assert found["hsts"] >= 31_536_000
    assert found["secure_cookies"] is True
    assert found["allowed_hosts"][0] == "members.example.org"


def test_debug_is_on_only_when_set():
    assert _settings_under(DEBUG="true")["debug"] is True
    assert _settings_under(DEBUG="false")["debug"] is False


def test_serving_from_the_apps_static_folders_warns_of_no_missing_static_root(tmp_path):
    """Out of the box (no ``collectstatic``, no STATIC_MANIFEST), files are served from each app's static folder:
    the empty STATIC_ROOT is expected, and starting the app must not warn about it."""
    probe = (
        "import django\nfrom django.conf import settings\ndjango.setup()\n"
        f"settings.STATIC_ROOT = {str(tmp_path / 'not-collected')!r}\n"
        "from django.core.wsgi import get_wsgi_application\nget_wsgi_application()\nprint('started')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in (*SERVICE_VARIABLES, "STATIC_MANIFEST")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings")
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "started"
    assert "No directory at" not in result.stderr


def _settings_fail_under(**variables: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(variables, DJANGO_SETTINGS_MODULE="config.settings")
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    return result.stderr


def test_the_public_embedded_secret_key_is_refused_anywhere_but_this_machine():
    """Anyone can read the embedded key, and sign an e-mail confirmation or a session with it."""
    for site in ("https://members.example.org", "http://members.example.org", "https://127.0.0.1"):
        assert "SECRET_KEY is not set, and the site is served at " + site in _settings_fail_under(SITE_URL=site)
    assert "SECRET_KEY is not set" in _settings_fail_under(ALLOWED_HOSTS="members.example.org")  # SITE_URL left out
    assert "SECRET_KEY is not set" in _settings_fail_under(ALLOWED_HOSTS="*")
    assert _settings_under(SITE_URL="http://localhost:8000")["debug"] is False  # make run, on a laptop
