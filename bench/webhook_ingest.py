"""Stripe webhook ingest: signed deliveries to /billing/stripe/webhook/ against a trivial view, side by side.

Targets (issue 4): throughput at least 0.2 of the trivial view's, and a p99 latency at most 5 times the trivial
view's p99, both measured in the same run against the same gunicorn server on PostgreSQL.

What is delivered is what Stripe sends when card memberships renew: for each renewal, ``invoice.created`` and
``payment_intent.succeeded`` (recorded, not acted on), then ``invoice.finalized``, ``invoice.paid`` and
``customer.subscription.updated``, each of which the webhook verifies, records in the ledger and acts on by
re-reading the invoice and the subscription from Stripe, locking and updating our rows and auditing what changed.
Every delivery has an event id of its own, so none is short-circuited as a duplicate; a figure for the handled
events alone is printed too. Stripe itself is a local fake (tests/fake_stripe.py) in a process of its own,
answering over keep-alive HTTP as Stripe does, so the re-reads cost a real round trip.
"""

import hashlib
import hmac
import itertools
import json
import subprocess
import sys
import threading
import time
import uuid

from bench.harness import PYTHON, ROOT, TRIVIAL, Bench, Figure, _free_port, report

WEBHOOK = "/billing/stripe/webhook/"
SECRET = "whsec_benchmark"
SUBSCRIPTIONS = 3000
PERIOD = 365 * 24 * 3600
HANDLED = ["invoice.finalized", "invoice.paid", "customer.subscription.updated"]
RENEWAL = ["invoice.created", "payment_intent.succeeded", *HANDLED]


def _ids(index: int, run: str = "") -> dict[str, str]:
    """Subscription ``index``'s ids at Stripe; its invoice is the one this run's renewal raised."""
    return {
        "subscription": f"sub_bench_{index}",
        "invoice": f"in_bench_{run}_{index}",
        "customer": f"cus_bench_{index}",
    }


# Stripe's side: the fake, in its own process, holding a paid renewal for every subscription -----------------------


def _stripe_objects(count: int, now: int, run: str) -> dict[str, dict]:
    """Each subscription renewed once in this run: a new period, and a new invoice for it, paid."""
    objects = {}
    for index in range(count):
        ids = _ids(index, run)
        objects[ids["subscription"]] = {
            "id": ids["subscription"],
            "object": "subscription",
            "customer": ids["customer"],
            "status": "active",
            "collection_method": "charge_automatically",
            "cancel_at_period_end": False,
            "schedule": None,
            "metadata": {},
            "latest_invoice": ids["invoice"],
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": f"si_bench_{index}",
                        "current_period_start": now,
                        "current_period_end": now + PERIOD,
                        "price": {
                            "id": "price_bench",
                            "unit_amount": 120_000,
                            "currency": "gbp",
                            "recurring": {"interval": "year"},
                            "product": "prod_bench",
                        },
                    }
                ],
            },
        }
        objects[ids["invoice"]] = {
            "id": ids["invoice"],
            "object": "invoice",
            "customer": ids["customer"],
            "status": "paid",
            "number": f"BENCH-{index:05d}",
            "amount_due": 144_000,
            "amount_paid": 144_000,
            "currency": "gbp",
            "hosted_invoice_url": f"https://invoice.stripe.test/i/{ids['invoice']}",
            "invoice_pdf": f"https://pay.stripe.test/invoice/{ids['invoice']}/pdf",
            "due_date": None,
            "status_transitions": {"paid_at": now},
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": ids["subscription"], "metadata": {}},
            },
        }
    return objects


def serve_fake_stripe(port: int, count: int, run: str = "") -> None:
    """Run the fake Stripe on ``port`` until killed (the benchmark starts it as a subprocess)."""
    from tests.fake_stripe import FakeStripe

    fake = FakeStripe()
    fake.objects.update(_stripe_objects(count, int(time.time()), run))
    fake.start(port=port)
    fake.keep_requests = False  # a long run would otherwise keep every request it ever saw
    print("ready", flush=True)
    threading.Event().wait()


# Our side: the rows the events are about --------------------------------------------------------------------------


def seed_database(count: int) -> None:
    """Run inside Django (manage.py shell): a tier traced to Stripe's product, and an active card membership for
    each of ``count`` organisations, linked to the fake's subscriptions and customers."""
    from datetime import timedelta

    from django.utils import timezone

    from membership.engagement import recompute_scores
    from membership.models import Organisation, OrganisationType, SizeBand, Subscription, Tier

    if Subscription.objects.filter(stripe_subscription_id=_ids(0)["subscription"]).exists():
        return
    tier = Tier.objects.create(name="Bench", slug="bench", stripe_product_id="prod_bench")
    now = timezone.now()
    organisations = Organisation.objects.bulk_create(
        Organisation(
            name=f"Bench {index}",
            slug=f"bench-{index}",
            organisation_type=OrganisationType.SME,
            size_band=SizeBand.SMALL,
            stripe_customer_id=_ids(index)["customer"],
        )
        for index in range(count)
    )
    Subscription.objects.bulk_create(
        Subscription(
            organisation=organisation,
            tier=tier,
            status=Subscription.Status.ACTIVE,
            amount_pence=120_000,
            current_period_start=now - timedelta(days=365),
            current_period_end=now,
            started_at=now - timedelta(days=365),
            stripe_subscription_id=_ids(index)["subscription"],
        )
        for index, organisation in enumerate(organisations)
    )
    # Every organisation has its engagement score row, as the nightly recomputation leaves it in production; a
    # paid invoice then adds to that row rather than summing the organisation's whole history to create it.
    recompute_scores()


# The deliveries -----------------------------------------------------------------------------------------------------


class Deliveries:
    """Signed webhook deliveries, renewal by renewal, each with a fresh event id and signed at send time.

    Renewal n is subscription ``first + n``'s, with this run's invoice: each subscription renews once in a run (the
    figures' deliveries number fewer than the subscriptions), so every run does the same work, a renewal's, on a
    database that earlier runs left behind.
    """

    def __init__(self, types: list[str], run: str, first: int = 0):
        self.types, self.run, self.first = types, run, first
        self._next = itertools.count()
        self._lock = threading.Lock()

    def __call__(self) -> tuple[str, bytes, dict]:
        with self._lock:
            number = next(self._next)
        renewal, step = divmod(number, len(self.types))
        index = self.first + renewal
        assert index < SUBSCRIPTIONS, "more renewals than subscriptions: one would be renewed twice"
        body = event_body(self.types[step], index, f"evt_bench_{uuid.uuid4().hex}", run=self.run)
        return "POST", body, signed_headers(body)


def event_body(event_type: str, index: int, event_id: str, *, run: str = "") -> bytes:
    """The JSON Stripe sends for ``event_type`` about subscription ``index`` (its invoice, or itself)."""
    ids = _ids(index, run)
    kind = event_type.split(".")[0]
    obj = {
        "invoice": {
            "id": ids["invoice"],
            "object": "invoice",
            "parent": {"subscription_details": {"subscription": ids["subscription"]}},
        },
        "customer": {"id": ids["subscription"], "object": "subscription", "metadata": {}},
        "payment_intent": {"id": f"pi_bench_{run}_{index}", "object": "payment_intent", "invoice": ids["invoice"]},
    }[kind]
    event = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


def signed_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """Stripe's signature on ``body``, made now (as Stripe signs each delivery, a redelivery included)."""
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={timestamp},v1={digest}"}


def run() -> list[Figure]:
    stripe_port = _free_port()
    run = uuid.uuid4().hex[:8]
    fake = subprocess.Popen(
        [PYTHON, "-m", "bench.webhook_ingest", "fake-stripe", str(stripe_port), str(SUBSCRIPTIONS), run],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stdout.readline().strip() == "ready", "the fake Stripe did not start"
        with Bench("webhook_ingest") as bench:
            bench.env.update(
                STRIPE_SECRET_KEY="sk_test_benchmark",
                STRIPE_WEBHOOK_SECRET=SECRET,
                STRIPE_API_BASE=f"http://127.0.0.1:{stripe_port}",
            )
            bench.create_database()
            bench.manage(
                "shell", "-c", f"from bench.webhook_ingest import seed_database; seed_database({SUBSCRIPTIONS})"
            )
            bench.start()
            check = Deliveries(HANDLED, run)
            status, body = _post(bench, *check()[1:])
            assert status == 200 and b'"processed"' in body, f"the webhook did not process an event ({status} {body})"
            # 1,020 deliveries (204 renewals) for the first figure, 620 (207) for the second, from renewal 1500.
            mix = bench.compare(WEBHOOK, against=TRIVIAL, make=Deliveries(RENEWAL, run, first=1))
            handled = bench.compare(WEBHOOK, against=TRIVIAL, rounds=3, make=Deliveries(HANDLED, run, first=1500))
    finally:
        fake.terminate()
        fake.wait(timeout=30)
    p99 = mix["page_p99_ms"] / mix["trivial_p99_ms"]
    handled_p99 = handled["page_p99_ms"] / handled["trivial_p99_ms"]
    return [
        Figure("webhook ingest / robots.txt, renewal mix", mix["ratio"], ">= 0.2", mix["ratio"] >= 0.2, mix),
        Figure("webhook p99 / robots.txt p99, renewal mix", p99, "<= 5", p99 <= 5, mix),
        Figure("handled events only / robots.txt (information)", handled["ratio"], "none", True, handled),
        Figure("handled events only, p99 / robots.txt p99 (information)", handled_p99, "none", True, handled),
    ]


def _post(bench: Bench, body: bytes, headers: dict) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", bench.port, timeout=30)
    conn.request("POST", WEBHOOK, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


if __name__ == "__main__":
    if sys.argv[1:2] == ["fake-stripe"]:
        serve_fake_stripe(int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:5])
    else:
        report("Stripe webhook ingest", run())
