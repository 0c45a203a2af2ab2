"""What every benchmark needs: a PostgreSQL database with generated data, the app under gunicorn, a
logged-in staff session, and throughput measured side by side against a trivial view.

Figures are ratios of two measurements taken in the same run, interleaved round by round, so a noisy
shared machine slows both sides alike.
"""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
TRIVIAL = "/robots.txt"  # a public view with no database work, behind the same middleware
EMPTY_BACK_OFFICE = "/admin/bench/empty/"  # the back office's frame with no content: see bench/urls.py
EMPTY_PUBLIC_PAGE = "/bench/empty/"  # the public site's frame with no content: see bench/urls.py

# Builds one request to send: method, body and extra headers (a POST whose body must differ each time, say).
RequestMaker = Callable[[], tuple[str, bytes | None, dict]]


@dataclass
class Figure:
    name: str
    value: float
    target: str
    holds: bool
    detail: dict = field(default_factory=dict)


@dataclass
class Sample:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class Bench:
    """A database and a server for one benchmark; use as a context manager."""

    def __init__(self, name: str, workers: int = 2, database: str | None = None):
        base = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/")
        self.database = database or f"members_bench_{name}"
        self.env = {
            **os.environ,
            "DATABASE_URL": base.rstrip("/") + "/" + self.database,
            "SECRET_KEY": "benchmark-only-" + "x" * 40,
            "DEBUG": "false",
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "LOG_LEVEL": "WARNING",
        }
        self.env.pop("CELERY_BROKER_URL", None)  # background work runs in-process: nothing to wait for
        self.port = _free_port()
        self.env["SITE_URL"] = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.server: subprocess.Popen | None = None
        self.cookie = ""

    # Data ------------------------------------------------------------------------------------------
    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, check=False
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def create_database(self, migrate: bool = True) -> None:
        """Create the benchmark's database unless it exists, and (unless told not to) migrate it."""
        import psycopg

        admin_url = self.env["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        if migrate:
            self.manage("migrate", "--noinput")

    def seed(self, organisations: int, *extra: str) -> None:
        self.manage("seed_demo", "--orgs", str(organisations), "--quiet-login", *extra)
        self.manage("shell", "-c", "from django.db import connection; connection.cursor().execute('VACUUM ANALYZE')")

    def use_here(self) -> None:
        """Point this process's Django at the benchmark's database, for benchmarks that call the code directly."""
        import django

        os.environ.update({key: value for key, value in self.env.items() if key != "SITE_URL"})
        django.setup()

    def login_staff(self, email: str = "director@netech.example") -> None:
        """A session for a seeded staff user (who has two-factor set up), as a browser would hold it."""
        code = (
            "from django.contrib.auth import get_user_model, SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY\n"
            "from importlib import import_module\n"
            "from django.conf import settings\n"
            f"user = get_user_model().objects.get(email={email!r})\n"
            "store = import_module(settings.SESSION_ENGINE).SessionStore()\n"
            "store[SESSION_KEY] = str(user.pk)\n"
            "store[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
            "store[HASH_SESSION_KEY] = user.get_session_auth_hash()\n"
            "store.create()\n"
            "print(store.session_key)\n"
        )
        self.cookie = f"sessionid={self.manage('shell', '-c', code).strip().splitlines()[-1]}"

    # Server ----------------------------------------------------------------------------------------
    def __enter__(self) -> "Bench":
        return self

    def start(self, log: Path | None = None) -> None:
        """Start gunicorn; its log (errors and their tracebacks) goes to ``log`` when given."""
        self.server = subprocess.Popen(
            [GUNICORN, "config.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("ab") if log else subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.get(TRIVIAL)[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def __exit__(self, *exc) -> None:
        if self.server:
            self.server.terminate()
            self.server.wait(timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", path, headers={"Cookie": self.cookie})
        response = conn.getresponse()
        return response.status, response.read()

    # Measurement -----------------------------------------------------------------------------------
    def measure(self, path: str, *, requests: int, concurrency: int, make: RequestMaker | None = None) -> Sample:
        """Send ``requests`` requests to ``path`` over ``concurrency`` keep-alive connections: GETs, or what
        ``make`` builds for each (built before its clock starts)."""
        sample = Sample()
        lock = threading.Lock()
        remaining = [requests]

        def worker() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            while True:
                with lock:
                    if remaining[0] <= 0:
                        break
                    remaining[0] -= 1
                method, body, headers = make() if make else ("GET", None, {})
                started = time.perf_counter()
                conn.request(method, path, body=body, headers={"Cookie": self.cookie, **headers})
                response = conn.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    sample.requests += 1
                    sample.latencies.append(elapsed)
                    if response.status != 200:
                        sample.errors += 1
            conn.close()

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sample.seconds = time.perf_counter() - started
        return sample

    def compare(
        self,
        path: str,
        *,
        against: str = TRIVIAL,
        rounds: int = 5,
        requests: int = 200,
        concurrency: int = 4,
        make: RequestMaker | None = None,
    ) -> dict:
        """Throughput of ``path`` (requests built by ``make``, or GETs) against the trivial view ``against``,
        interleaved round by round."""
        self.measure(path, requests=20, concurrency=concurrency, make=make)  # warm caches and connections
        self.measure(against, requests=20, concurrency=concurrency)
        ratios, pages, trivials = [], Sample(), Sample()
        for _ in range(rounds):
            trivial = self.measure(against, requests=requests, concurrency=concurrency)
            page = self.measure(path, requests=requests, concurrency=concurrency, make=make)
            ratios.append(page.throughput / trivial.throughput)
            for total, part in ((pages, page), (trivials, trivial)):
                total.requests += part.requests
                total.errors += part.errors
                total.seconds += part.seconds
                total.latencies += part.latencies
        return {
            "ratio": statistics.median(ratios),
            "ratios": [round(r, 3) for r in ratios],
            "page_rps": round(pages.throughput, 1),
            "trivial_rps": round(trivials.throughput, 1),
            "page_p99_ms": round(pages.percentile(99) * 1000, 1),
            "trivial_p99_ms": round(trivials.percentile(99) * 1000, 1),
            "errors": pages.errors + trivials.errors,
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def report(title: str, figures: list[Figure]) -> None:
    width = max(len(f.name) for f in figures)
    print(f"\n{title}")
    print(f"{'figure'.ljust(width)}  {'value':>8}  {'target':<24} holds")
    for figure in figures:
        holds = "yes" if figure.holds else "NO"
        print(f"{figure.name.ljust(width)}  {figure.value:>8.3f}  {figure.target:<24} {holds}")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    slug = title.lower().replace(" ", "_").replace(",", "")
    (results / f"{slug}.json").write_text(json.dumps([asdict(f) for f in figures], indent=2))
