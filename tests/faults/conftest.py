"""Real services for the fault drills: a private Redis to kill, the app under gunicorn, Celery workers to SIGKILL.

Every process here is started by the drill and stopped by it, on ports of its own; the shared PostgreSQL and
Redis are never touched, except for the drill's own test database on PostgreSQL, which the subprocesses share
with the test (so tests here commit: ``transactional_db``).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.db import connection

from tests.conftest import require
from tests.membership.conftest import (  # noqa: F401 (billing fixtures for the Stripe drill)
    billing_admin,
    card_member,
    fake_stripe,
    growth,
    paid_checkout,
    robotics,
    scale,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVICE_VARIABLES = (
    "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "PAGE_CACHE", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE", "SENTRY_DSN", "DEBUG", "SITE_URL", "ALLOWED_HOSTS", "EMAIL_HOST", "STATIC_MANIFEST",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what: str, log: Path | None = None):
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` (and showing ``log``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            detail = f"\n--- {log.name} ---\n{log.read_text()[-6000:]}" if log and log.exists() else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(0.2)


def database_url() -> str:
    """The test database the drill's subprocesses share with the test."""
    found = connection.settings_dict
    auth = quote(found["USER"] or "")
    if found["PASSWORD"]:
        auth += ":" + quote(found["PASSWORD"])
    host = found["HOST"] or "127.0.0.1"
    return f"postgres://{auth}@{host}:{found['PORT'] or 5432}/{found['NAME']}"


def app_env(**variables: str) -> dict[str, str]:
    """The environment of the app's processes: the test database, and only the services the drill names."""
    env = {name: value for name, value in os.environ.items() if name not in SERVICE_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DATABASE_URL=database_url(), PYTHONUNBUFFERED="1")
    env.update(variables)
    return env


class Process:
    """A subprocess in its own process group, with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path):
        self.name, self.args, self.env, self.log = name, args, env, log
        self.popen: subprocess.Popen | None = None

    def start(self) -> "Process":
        with self.log.open("a") as out:
            self.popen = subprocess.Popen(
                self.args, cwd=PROJECT_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: nothing gets to clean up, as when a machine dies."""
        if self.running:
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=20)

    def stop(self) -> None:
        if self.running:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


class RedisServer(Process):
    """A private, throwaway redis-server: nothing saved, on a port of its own."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        server = shutil.which("redis-server")
        require(server is not None, "redis-server for the fault drills")
        args = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        super().__init__("redis", args, dict(os.environ), tmp / f"redis-{self.port}.log")

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> "RedisServer":
        super().start()
        wait_for(self.answers, 20, "the private redis-server", self.log)
        return self


class Web(Process):
    """The app under gunicorn (one worker, two threads), as production runs it."""

    def __init__(self, tmp: Path, env: dict[str, str]):
        self.port = free_port()
        args = [str(BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", "1"]
        args += ["--threads", "2", "--timeout", "120", "--control-socket", str(tmp / f"web-{self.port}.ctl")]
        super().__init__("web", args, env, tmp / f"web-{self.port}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Web":
        super().start()

        def answers():
            assert self.running, self.output()
            try:
                return requests.get(self.url + "/robots.txt", timeout=60).status_code == 200
            except requests.RequestException:
                return False

        wait_for(answers, 60, "gunicorn", self.log)
        return self


class Worker(Process):
    """``celery -A config worker``, one process at a time, on the drill's broker."""

    def __init__(self, tmp: Path, env: dict[str, str], name: str, *extra: str):
        args = [str(BIN / "celery"), "-A", "config", "worker", "--concurrency", "1", "--loglevel", "INFO"]
        args += ["--hostname", f"{name}@drill", "--without-gossip", "--without-mingle", *extra]
        super().__init__(name, args, env, tmp / f"{name}.log")

    def start(self, ready_timeout: float = 60) -> "Worker":
        super().start()
        wait_for(lambda: " ready." in self.output() or not self.running, ready_timeout, self.name, self.log)
        assert self.running, self.output()
        return self


class Browser(requests.Session):
    """A visitor's HTTP session against the gunicorn app: cookies kept, CSRF tokens read from forms."""

    def __init__(self, base: str):
        super().__init__()
        self.base = base

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("allow_redirects", False)
        return super().request(method, self.base + url if url.startswith("/") else url, *args, **kwargs)

    def csrf_token(self, path: str) -> str:
        page = self.get(path)
        assert page.status_code == 200, (path, page.status_code)
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)

    def submit(self, form_path: str, data: dict, action: str | None = None):
        token = self.csrf_token(form_path)
        return self.post(action or form_path, data={"csrfmiddlewaretoken": token, **data})

    def log_in(self, email: str, password: str) -> None:
        response = self.submit("/accounts/login/", {"login": email, "password": password})
        assert response.status_code == 302, response.text[:3000]


@pytest.fixture
def postgres_test_database(transactional_db):
    """The drills' subprocesses need a database they can share with the test: PostgreSQL, committed data."""
    require(connection.vendor == "postgresql", "PostgreSQL for the fault drills (set DATABASE_URL)")


@pytest.fixture
def processes():
    """Starts nothing itself; stops every process a drill registers, even when the drill fails."""
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.kill()
