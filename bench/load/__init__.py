"""The load test: fifty people at once against the whole stack, then proof that nothing was lost or done twice.

    .venv/bin/python -m bench.load                     # 3,000 requests
    .venv/bin/python -m bench.load --requests 1000     # fewer

The stack is the production one, on loopback: gunicorn (``WEB_WORKERS`` processes) on PostgreSQL, the cache
on Redis (``REDIS_URL``), a real Celery worker on the broker (``CELERY_BROKER_URL``), Stripe's keys set, with
the test suite's fake Stripe (``tests/fake_stripe.py``) in a process of its own answering the webhook's
re-reads. The database is the benchmarks' (``bench/harness.py``): migrated, with the demo data, the
webhook benchmark's card memberships, and for each run a fresh crowd (``bench/load/data.py``) tagged with
the run's id. The crowd is locust, headless (``bench/load/locustfile.py``): visitors, members of distinct
organisations, individuals and Stripe, ``USERS`` at once, for a fixed number of requests.

Afterwards it checks, and the run passes only if every check holds:

- no response was a 5xx, and no connection failed; every log-in through the log-in form was accepted;
- every perk redemption and event registration a person was told was accepted is in the database exactly
  once, and the database holds none that nobody was told of; no unique code was issued twice, and the event
  with few places confirmed no more people than its places;
- every webhook event id delivered is in Stripe's ledger exactly once and was acted on once (its other
  deliveries were answered "duplicate"); delivering every event once more afterwards changes nothing (the
  ledger, audit log, activity, subscriptions and invoices are compared before and after);
- every background task the run queued was run by the worker, and none failed.

It prints a table of requests, 5xx, latency percentiles, and accepted against stored, writes it all to
``bench/results/load.json`` and exits non-zero when a check fails. The settings are the benchmarks' with
per-address rate limits raised (``bench/load/settings.py``), since the whole crowd comes from one address.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

from bench.harness import PYTHON, ROOT, Bench, _free_port
from bench.webhook_ingest import SECRET, event_body, signed_headers

USERS = 50
REQUESTS = 3000
WEB_WORKERS = 4
MEMBERS, INDIVIDUALS, STRIPE_SENDERS = 30, 5, 4  # the rest of the crowd are anonymous visitors
WEBHOOK_SUBSCRIPTIONS = 200
TIME_LIMIT = 480  # seconds of load at most: a safety net (a run that needs longer fails), not the expected time
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent


def run(requests: int = REQUESTS, users: int = USERS, database: str | None = None) -> dict:
    """Run the load and its checks; returns the summary (``summary["passed"]`` says whether every check held)."""
    tag = uuid.uuid4().hex[:8]
    work = RESULTS / f"load-{tag}"
    work.mkdir(parents=True, exist_ok=True)
    stripe_port = _free_port()
    bench = Bench("load", workers=WEB_WORKERS, database=database)
    bench.env.update(
        DJANGO_SETTINGS_MODULE="bench.load.settings",
        REDIS_URL=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/2",
        CELERY_BROKER_URL=os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/1",
        CACHE_KEY_PREFIX=f"load-{tag}",  # rate-limit counters and cached pages start empty
        STRIPE_SECRET_KEY="sk_test_load",
        STRIPE_WEBHOOK_SECRET=SECRET,
        STRIPE_API_BASE=f"http://127.0.0.1:{stripe_port}",
    )
    processes: list[subprocess.Popen] = []
    clock = time.monotonic()

    def say(what: str) -> None:
        print(f"[{time.monotonic() - clock:4.0f} s] {what}", flush=True)

    try:
        say("preparing the database")
        bench.create_database(migrate=False)
        django = _Django(bench)
        processes.append(django.process)
        data = _prepare(django, tag, users)
        (work / "data.json").write_text(json.dumps(data))
        processes.append(_start_fake_stripe(stripe_port))
        worker = _start_worker(bench, work / "worker.log")
        processes.append(worker)
        bench.start(log=work / "gunicorn.log")
        _wait_until_ready(worker, work / "worker.log")
        say(f"{users} people at once, {requests} requests")
        started = time.monotonic()
        records = _swarm(bench, work, requests, users)
        seconds = time.monotonic() - started
        say("waiting for the background tasks")
        tasks_drained = _wait_for_tasks(bench.env["CELERY_BROKER_URL"])
        say("delivering every webhook event again, and checking the database")
        before = django.call("snapshot")
        replay = _deliver_again(bench, records)
        replay.update(before=before, after=django.call("snapshot"))
        stored = django.call("check", str(_accepted(work, tag, records)))
    finally:
        bench.__exit__()
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    say("done")
    tasks = _task_outcomes(work / "worker.log", tasks_drained)
    return _summary(tag, requests, users, seconds, records, stored, replay, tasks, work)


# Setting up ------------------------------------------------------------------------------------------------------


class _Django:
    """One ``manage.py shell`` with the server's settings, running ``bench.load.data.serve()``: it prepares the
    run's data and checks the database afterwards, with one Django start-up for the whole run."""

    def __init__(self, bench: Bench):
        self.process = subprocess.Popen(
            [PYTHON, "manage.py", "shell", "-c", "from bench.load.data import serve; serve()"],
            cwd=ROOT,
            env=bench.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, function: str, *arguments):
        self.process.stdin.write(json.dumps([function, arguments]) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith("LOAD "):
                return json.loads(line[len("LOAD ") :])
        raise RuntimeError(f"bench.load.data.{function} failed (its traceback is above)")


def _prepare(django: _Django, tag: str, users: int) -> dict:
    data = django.call("prepare", tag, MEMBERS, INDIVIDUALS, WEBHOOK_SUBSCRIPTIONS)
    return {
        **data,
        "tag": tag,
        "users": users,
        "stripe_senders": STRIPE_SENDERS,
        "webhook_subscriptions": WEBHOOK_SUBSCRIPTIONS,
    }


def _start_fake_stripe(port: int) -> subprocess.Popen:
    fake = subprocess.Popen(
        [PYTHON, "-m", "bench.webhook_ingest", "fake-stripe", str(port), str(WEBHOOK_SUBSCRIPTIONS)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    if fake.stdout.readline().strip() != "ready":
        raise RuntimeError("the fake Stripe did not start")
    return fake


def _start_worker(bench: Bench, log: Path) -> subprocess.Popen:
    """A Celery worker as the Procfile runs it, on the run's broker."""
    return subprocess.Popen(
        [
            *(str(BIN / "celery"), "-A", "config", "worker", "--loglevel", "INFO", "--concurrency", "2"),
            *("--without-gossip", "--without-mingle", "--hostname", f"load-{uuid.uuid4().hex[:6]}@%h"),
        ],
        cwd=ROOT,
        env=bench.env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _wait_until_ready(worker: subprocess.Popen, log: Path) -> None:
    """Until the worker says it is ready in its log."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and worker.poll() is None:
        if " ready." in log.read_text(errors="replace"):
            return
        time.sleep(0.3)
    raise RuntimeError(f"the Celery worker did not start:\n{log.read_text(errors='replace')[-3000:]}")


# The load --------------------------------------------------------------------------------------------------------


def _swarm(bench: Bench, work: Path, requests: int, users: int) -> dict:
    records = work / "records.json"
    result = subprocess.run(
        [
            *(str(BIN / "locust"), "-f", str(Path(__file__).with_name("locustfile.py")), "--headless"),
            *("--users", str(users), "--spawn-rate", str(users), "--host", f"http://127.0.0.1:{bench.port}"),
            *("--run-time", f"{TIME_LIMIT}s", "--stop-timeout", "30", "--only-summary", "--exit-code-on-error", "0"),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "LOAD_DATA": str(work / "data.json"),
            "LOAD_RECORDS": str(records),
            "LOAD_REQUESTS": str(requests),
        },
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT + 120,
        check=False,
    )
    (work / "locust.log").write_text(result.stdout + result.stderr)
    if result.returncode or not records.exists():
        raise RuntimeError(f"locust failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")
    return json.loads(records.read_text())


def _wait_for_tasks(broker_url: str, timeout: float = 90) -> bool:
    """True once the broker has no task waiting or running (Celery's Redis queue and its unacked set)."""
    import redis

    broker = redis.Redis.from_url(broker_url)
    deadline, quiet_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if broker.llen("celery") == 0 and broker.hlen("unacked") == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 2:
                return True
        else:
            quiet_since = None
        time.sleep(0.2)
    return False


def _deliver_again(bench: Bench, records: dict) -> dict:
    """Deliver every webhook event once more, as Stripe may at any time (``run`` compares what it can change)."""
    bodies = {}
    for event in records["webhook_events"]:
        bodies.setdefault(event["id"], event)
    outcomes: Counter = Counter()
    lock = threading.Lock()
    todo = list(bodies.values())

    def deliver() -> None:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", bench.port, timeout=60)
        while True:
            with lock:
                if not todo:
                    break
                event = todo.pop()
            body = event_body(event["type"], event["subscription"], event["id"])
            conn.request("POST", "/billing/stripe/webhook/", body=body, headers=signed_headers(body))
            response = conn.getresponse()
            answer = response.read()
            outcome = json.loads(answer).get("status", "") if response.status == 200 else str(response.status)
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"outcomes": dict(outcomes), "events": len(bodies)}


def _accepted(work: Path, tag: str, records: dict) -> Path:
    """What the crowd was told was accepted, in a file for ``bench.load.data.check``."""
    told = work / "accepted.json"
    told.write_text(
        json.dumps(
            {
                "tag": tag,
                "redemptions": records["redemptions"],
                "registrations": [r["pk"] for r in records["registrations"]],
                "webhook_ids": sorted({w["id"] for w in records["webhooks"]}),
            }
        )
    )
    return told


def _task_outcomes(log: Path, drained: bool) -> dict:
    text = log.read_text(errors="replace")
    return {
        "succeeded": text.count("] succeeded in "),
        "failed": text.count("] raised unexpected") + text.count("] retry:"),
        "drained": drained,
    }


# The verdict -----------------------------------------------------------------------------------------------------


def _summary(tag, requests, users, seconds, records, stored, replay, tasks, work) -> dict:
    answered = records["requests"]
    by_name: dict[str, list] = defaultdict(list)
    for request in answered:
        by_name[request["name"]].append(request)
    server_errors = sum(1 for r in answered if r["status"] >= 500)
    no_answer = sum(1 for r in answered if not r["status"])
    logins = records["logins"]
    red, reg, hooks = stored["redemptions"], stored["registrations"], stored["webhooks"]
    acted_on = Counter(w["id"] for w in records["webhooks"] if w["outcome"] in ("processed", "ignored"))
    acted_twice = sorted(event_id for event_id, n in acted_on.items() if n > 1)
    never_acted = sorted({w["id"] for w in records["webhooks"]} - set(acted_on))
    duplicates = sum(1 for w in records["webhooks"] if w["outcome"] == "duplicate")
    checks = [
        _check("requests answered", f"{len(answered)} of {requests}", len(answered) == requests),
        _check("5xx responses", server_errors, server_errors == 0),
        _check("connections failed (no answer)", no_answer, no_answer == 0),
        _check(
            "log-ins accepted (log-in form)",
            f"{sum(1 for x in logins if x['ok'])} of {len(logins)}",
            bool(logins) and all(x["ok"] for x in logins),
        ),
        _check(
            "perk redemptions: accepted / stored",
            f"{red['accepted']} / {red['stored']}",
            red["accepted"] > 0
            and not (red["missing"] or red["not_accepted"] or red["stored_twice"])
            and red["codes_issued_twice"] == 0
            and red["codes_overdrawn"] == 0,
        ),
        _check(
            "event registrations: accepted / stored",
            f"{reg['accepted']} / {reg['stored']}",
            reg["accepted"] > 0 and not (reg["missing"] or reg["not_accepted"] or reg["stored_twice"]),
        ),
        _check(
            "small event: confirmed / places",
            f"{reg['small_event_confirmed']} / {reg['small_event_places']} (+{reg['small_event_waitlisted']} waiting)",
            reg["small_event_confirmed"] <= reg["small_event_places"],
        ),
        _check(
            "webhook events: delivered / in ledger",
            f"{hooks['delivered']} / {hooks['stored']}",
            hooks["delivered"] > 0 and not (hooks["missing"] or hooks["not_delivered"] or hooks["stored_twice"]),
        ),
        _check(
            "webhook events acted on exactly once",
            f"{len(acted_on)} once, {len(acted_twice)} twice, {duplicates} duplicate deliveries",
            not acted_twice and not never_acted and duplicates > 0,
        ),
        _check(
            "every event delivered again: changed nothing",
            f"{replay['outcomes'].get('duplicate', 0)} of {replay['events']} answered duplicate",
            replay["before"] == replay["after"] and replay["outcomes"] == {"duplicate": replay["events"]},
        ),
        _check(
            "background tasks: run / failed",
            f"{tasks['succeeded']} / {tasks['failed']}" + ("" if tasks["drained"] else " (queue not drained)"),
            tasks["drained"] and tasks["failed"] == 0 and tasks["succeeded"] > 0,
        ),
    ]
    latencies = [r["ms"] for r in answered]
    return {
        "tag": tag,
        "users": users,
        "requests": len(answered),
        "seconds": round(seconds, 1),
        "requests_per_second": round(len(answered) / seconds, 1) if seconds else 0,
        "server_errors": server_errors,
        "p50_ms": _percentile(latencies, 50),
        "p95_ms": _percentile(latencies, 95),
        "by_kind": {
            name: {
                "requests": len(rows),
                "5xx": sum(1 for r in rows if r["status"] >= 500),
                "4xx": sum(1 for r in rows if 400 <= r["status"] < 500),
                "p50_ms": _percentile([r["ms"] for r in rows], 50),
                "p95_ms": _percentile([r["ms"] for r in rows], 95),
            }
            for name, rows in sorted(by_name.items())
        },
        "checks": checks,
        "stored": stored,
        "replay": replay,
        "tasks": tasks,
        "logs": str(work),
        "passed": all(c["holds"] for c in checks),
    }


def _check(name: str, value, holds: bool) -> dict:
    return {"check": name, "value": str(value), "holds": bool(holds)}


def _percentile(values: list[float], p: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1], 1)


def report(summary: dict) -> None:
    print(
        f"\nLoad test: {summary['users']} people at once, {summary['requests']} requests in {summary['seconds']} s "
        f"({summary['requests_per_second']} a second); p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms"
    )
    width = max(len(name) for name in summary["by_kind"])
    print(f"\n{'request'.ljust(width)}  {'count':>6}  {'4xx':>5}  {'5xx':>5}  {'p50 ms':>8}  {'p95 ms':>8}")
    for name, row in summary["by_kind"].items():
        print(
            f"{name.ljust(width)}  {row['requests']:>6}  {row['4xx']:>5}  {row['5xx']:>5}  "
            f"{row['p50_ms']:>8.1f}  {row['p95_ms']:>8.1f}"
        )
    width = max(len(c["check"]) for c in summary["checks"])
    value_width = max(len(c["value"]) for c in summary["checks"])
    print(f"\n{'check'.ljust(width)}  {'value'.ljust(value_width)}  holds")
    for c in summary["checks"]:
        print(f"{c['check'].ljust(width)}  {c['value'].ljust(value_width)}  {'yes' if c['holds'] else 'NO'}")
    print(f"\n{'PASS' if summary['passed'] else 'FAIL'}  (logs in {summary['logs']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=REQUESTS, help=f"requests in all (default {REQUESTS})")
    parser.add_argument("--users", type=int, default=USERS, help=f"people at once (default {USERS})")
    args = parser.parse_args(argv)
    summary = run(args.requests, args.users)
    report(summary)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(summary, indent=2))
    return 0 if summary["passed"] else 1
