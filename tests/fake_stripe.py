"""A local fake of the Stripe API: just the endpoints billing uses, with objects kept in memory.

It runs an HTTP server in a thread on 127.0.0.1 (there is no network to Stripe here) and the real
``stripe.StripeClient`` talks to it through ``base_addresses={"api": fake.url}``. It records every request
(method, path, form params, ``Idempotency-Key``), answers a repeated idempotency key with the first answer, as
Stripe does, and can be told to fail (``fail()``: 500 on every call) or be ``stop()``-ed (connection refused).
Tests move objects on as Stripe would with ``set()``, ``complete_checkout()``, ``complete_setup()`` and ``renew()``.
Subscription updates follow Stripe's rules where billing relies on them: a price change on an item, prorated
(``always_invoice`` raises the prorated invoice at once), metadata merged, booleans from the form encoding, and
no direct change to a subscription a schedule manages; schedules apply their next phase at renewal. Exclusive tax
rates on a subscription item (``tax_rates``) add their tax to its invoices, rounded to the penny.
"""

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

YEAR = 365 * 24 * 3600
MONTH = 30 * 24 * 3600


@dataclass
class Request:
    method: str
    path: str
    params: dict
    idempotency_key: str | None


class StripeFailure(Exception):
    def __init__(self, status: int, kind: str, message: str, code: str = ""):
        super().__init__(message)
        self.status, self.body = status, {"error": {"type": kind, "message": message, "code": code}}


def _nest(pairs: list[tuple[str, str]]) -> dict:
    """Stripe's form encoding (``items[0][price_data][currency]=gbp``) back into dicts and lists."""
    root: dict = {}
    for key, value in pairs:
        *path, last = re.findall(r"[^\[\]]+", key)
        node = root
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return _listify(root)


def _listify(node):
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        return [_listify(node[key]) for key in sorted(node, key=int)]
    return {key: _listify(value) for key, value in node.items()}


def _bool(value) -> bool:
    return value in (True, "true", "True", "1")


class FakeStripe:
    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}
        self.requests: list[Request] = []
        self.failing: tuple[int, str] | None = None
        self._answers: dict[str, tuple[int, dict]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self.keep_requests = True  # a long-running fake (the benchmark's) keeps none

    # Running -------------------------------------------------------------------------------------------

    def start(self, port: int = 0) -> "FakeStripe":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Stripe's API serves it
            disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart

            def do_GET(self):
                fake._handle(self, "GET")

            def do_POST(self):
                fake._handle(self, "POST")

            def do_DELETE(self):
                fake._handle(self, "DELETE")

            def log_message(self, *args):  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop answering: calls now fail to connect, as when Stripe is unreachable."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def fail(self, status: int = 500, path: str = "/") -> None:
        """Answer calls to ``path`` (a prefix; by default every call) with ``status`` until ``recover()``."""
        self.failing = (status, path)

    def recover(self) -> None:
        self.failing = None

    # Inspecting and steering -----------------------------------------------------------------------------

    def calls(self, method: str, path: str) -> list[Request]:
        """Requests made with ``method`` to ``path`` (a prefix match: ``/v1/invoices`` finds ``.../pay`` too)."""
        return [r for r in self.requests if r.method == method and r.path.startswith(path)]

    def get(self, object_id: str) -> dict:
        return self.objects[object_id]

    def set(self, object_id: str, **changes) -> dict:
        """Change an object as Stripe would (``status="canceled"``, ...)."""
        with self._lock:
            self.objects[object_id].update(changes)
            return self.objects[object_id]

    def complete_checkout(self, session_id: str) -> tuple[dict, dict, dict]:
        """The customer paid: an active subscription with a paid first invoice, and a complete session."""
        with self._lock:
            session = self.objects[session_id]
            price = session["line_items"][0]["price_data"]
            subscription_data = session.get("subscription_data") or {}
            subscription = self._new_subscription(
                customer=session["customer"],
                price=price,
                collection_method="charge_automatically",
                metadata=subscription_data.get("metadata", {}),
                tax_rates=session["line_items"][0].get("tax_rates"),
                trial_end=subscription_data.get("trial_end"),
            )
            invoice = self._first_invoice(subscription)
            session.update(status="complete", payment_status="paid", subscription=subscription["id"])
            return session, subscription, invoice

    def complete_setup(self, session_id: str) -> dict:
        """The customer saved a card in a setup-mode checkout: a succeeded SetupIntent with a payment method."""
        with self._lock:
            session = self.objects[session_id]
            intent = self._store(
                {
                    "id": self._new_id("seti"),
                    "object": "setup_intent",
                    "status": "succeeded",
                    "customer": session.get("customer"),
                    "payment_method": self._new_id("pm_card"),
                    "metadata": (session.get("setup_intent_data") or {}).get("metadata", {}),
                }
            )
            session.update(status="complete", setup_intent=intent["id"])
            return session

    def renew(self, subscription_id: str, *, paid: bool) -> dict:
        """Stripe rolls the period on and raises the renewal invoice: paid, or with its payment failed. A
        schedule's next phase, if it starts now, sets the new period's price first. A trial's end starts the first
        paid period, a whole interval long."""
        with self._lock:
            subscription = self.objects[subscription_id]
            item = subscription["items"]["data"][0]
            length = item["current_period_end"] - item["current_period_start"]
            if subscription["status"] == "trialing":
                length = MONTH if item["price"]["recurring"]["interval"] == "month" else YEAR
            self._apply_next_phase(subscription, at=item["current_period_end"])
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] += length
            invoice = self._new_invoice(subscription, status="paid" if paid else "open")
            invoice["attempt_count"] = 1
            subscription["status"] = "active" if paid else "past_due"
            return invoice

    # Serving ---------------------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        params = _nest(parse_qsl(body if method == "POST" else url.query, keep_blank_values=True))
        key = handler.headers.get("Idempotency-Key")
        with self._lock:
            if self.keep_requests:
                self.requests.append(Request(method, url.path, params, key))
            status, answer = self._answer(method, url.path, params, key)
        payload = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("Request-Id", f"req_fake_{uuid.uuid4().hex[:12]}")
        handler.end_headers()
        handler.wfile.write(payload)

    def _answer(self, method: str, path: str, params: dict, key: str | None) -> tuple[int, dict]:
        if self.failing and path.startswith(self.failing[1]):
            return self.failing[0], {"error": {"type": "api_error", "message": "The fake is failing on purpose."}}
        if method == "POST" and key and key in self._answers:
            return self._answers[key]  # Stripe replays the first answer to a repeated key
        try:
            answer = 200, self._route(method, path, params)
            if method == "POST":  # a snapshot: a replayed answer shows the object as it was then, like Stripe's
                answer = 200, json.loads(json.dumps(answer[1]))
        except StripeFailure as failure:
            answer = failure.status, failure.body
        if method == "POST" and key:
            self._answers[key] = answer
        return answer

    def _route(self, method: str, path: str, params: dict) -> dict:
        routes = [
            ("POST", r"/v1/customers", self._create_customer),
            ("GET", r"/v1/customers/search", lambda params: self._search("customer", params)),
            ("GET", r"/v1/products/search", lambda params: self._search("product", params)),
            ("POST", r"/v1/customers/(?P<id>[^/]+)", self._update),
            ("POST", r"/v1/products", self._create_product),
            ("POST", r"/v1/checkout/sessions", self._create_session),
            ("GET", r"/v1/checkout/sessions/(?P<id>[^/]+)", self._retrieve),
            ("POST", r"/v1/checkout/sessions/(?P<id>[^/]+)/expire", self._expire_session),
            ("POST", r"/v1/subscriptions", self._create_subscription),
            ("GET", r"/v1/subscriptions/search", lambda params: self._search("subscription", params)),
            ("GET", r"/v1/subscriptions/(?P<id>[^/]+)", self._retrieve),
            ("POST", r"/v1/subscriptions/(?P<id>[^/]+)", self._update_subscription),
            ("DELETE", r"/v1/subscriptions/(?P<id>[^/]+)", self._cancel_subscription),
            ("POST", r"/v1/subscription_schedules", self._create_schedule),
            ("GET", r"/v1/subscription_schedules/(?P<id>[^/]+)", self._retrieve),
            ("POST", r"/v1/subscription_schedules/(?P<id>[^/]+)", self._update_schedule),
            ("POST", r"/v1/subscription_schedules/(?P<id>[^/]+)/release", self._release_schedule),
            ("GET", r"/v1/invoices", self._list_invoices),
            ("GET", r"/v1/invoices/(?P<id>[^/]+)", self._retrieve),
            ("POST", r"/v1/invoices/(?P<id>[^/]+)/pay", self._pay_invoice),
            ("POST", r"/v1/invoices/(?P<id>[^/]+)/finalize", self._finalize_invoice),
            ("POST", r"/v1/invoices/(?P<id>[^/]+)/void", self._void_invoice),
            ("POST", r"/v1/billing_portal/sessions", self._create_portal_session),
            ("POST", r"/v1/tax_rates", self._create_tax_rate),
            ("GET", r"/v1/tax_rates", self._list_tax_rates),
            ("GET", r"/v1/tax_rates/(?P<id>[^/]+)", self._retrieve),
        ]
        for route_method, pattern, action in routes:
            match = re.fullmatch(pattern, path)
            if route_method == method and match:
                return action(params, **match.groupdict())
        raise StripeFailure(404, "invalid_request_error", f"Unrecognised request URL ({method}: {path})")

    # Objects ---------------------------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids)}"

    def _store(self, obj: dict) -> dict:
        self.objects[obj["id"]] = obj
        return obj

    def _found(self, object_id: str) -> dict:
        if object_id not in self.objects:
            raise StripeFailure(404, "invalid_request_error", f"No such object: '{object_id}'", "resource_missing")
        return self.objects[object_id]

    def _expanded(self, obj: dict, params: dict) -> dict:
        """A copy of ``obj`` with each ``expand`` path replaced by the object it names: ``latest_invoice``, or a
        nested one such as ``parent.subscription_details.subscription``."""
        obj = json.loads(json.dumps(obj))
        for path in params.get("expand") or []:
            *parents, field = path.split(".")
            node = obj
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict) and isinstance(node.get(field), str) and node[field] in self.objects:
                node[field] = json.loads(json.dumps(self.objects[node[field]]))
        return obj

    def _retrieve(self, params: dict, id: str) -> dict:
        return self._expanded(self._found(id), params)

    def _update(self, params: dict, id: str) -> dict:
        """Stripe's update: a hash (``invoice_settings``, ``metadata``) is merged, and an empty string unsets."""
        obj = self._found(id)
        params = {k: v for k, v in params.items() if k != "expand"}
        for name, value in params.items():
            if isinstance(value, dict) and isinstance(obj.get(name), dict):
                obj[name] = {**obj[name], **{k: None if v == "" else v for k, v in value.items()}}
            else:
                obj[name] = None if value == "" else value
        return self._expanded(obj, params)

    def _create_customer(self, params: dict) -> dict:
        return self._store({"id": self._new_id("cus"), "object": "customer", "invoice_settings": {}, **params})

    def _create_product(self, params: dict) -> dict:
        return self._store({"id": self._new_id("prod"), "object": "product", "active": True, **params})

    def _create_session(self, params: dict) -> dict:
        session_id = self._new_id("cs_test")
        return self._store(
            {
                **params,
                "id": session_id,
                "object": "checkout.session",
                "url": f"https://checkout.stripe.test/c/pay/{session_id}",
                "status": "open",
                "payment_status": "unpaid",
                "subscription": None,
            }
        )

    def _expire_session(self, params: dict, id: str) -> dict:
        session = self._found(id)
        if session["status"] != "open":
            raise StripeFailure(400, "invalid_request_error", "Only open sessions can be expired.")
        session["status"] = "expired"
        return session

    def _new_subscription(
        self,
        *,
        customer: str,
        price: dict,
        collection_method: str,
        metadata: dict,
        tax_rates=None,
        trial_end=None,
        **extra,
    ) -> dict:
        """A new subscription, its first period starting now; with ``trial_end``, a free trial until then (Stripe
        refuses one that ends less than two days ahead in a checkout, and any in the past)."""
        now = int(time.time())
        length = MONTH if price["recurring"]["interval"] == "month" else YEAR
        if trial_end is not None and int(trial_end) <= now:
            raise StripeFailure(400, "invalid_request_error", "`trial_end` must be in the future.")
        item_price = self._price(price)
        item = {
            "id": self._new_id("si"),
            "price": item_price,
            "tax_rates": self._tax_rates(tax_rates),
            "current_period_start": now,
            "current_period_end": int(trial_end) if trial_end is not None else now + length,
        }
        return self._store(
            {
                "id": self._new_id("sub"),
                "object": "subscription",
                "customer": customer,
                "status": "active" if trial_end is None else "trialing",
                "trial_end": int(trial_end) if trial_end is not None else None,
                "collection_method": collection_method,
                "cancel_at_period_end": False,
                "ended_at": None,
                "metadata": metadata,
                "items": {"object": "list", "data": [item]},
                "latest_invoice": None,
                "schedule": None,
                "default_payment_method": None,
                **extra,
            }
        )

    def _price(self, price_data: dict) -> dict:
        """A Price made inline from ``price_data``, as Stripe makes one for each ``price_data`` it is given."""
        return self._store(
            {
                "id": self._new_id("price"),
                "object": "price",
                "currency": price_data["currency"],
                "unit_amount": int(price_data["unit_amount"]),
                "recurring": {"interval": price_data["recurring"]["interval"]},
                "product": price_data["product"],
            }
        )

    def _new_invoice(
        self, subscription: dict, *, status: str, amount: int | None = None, reason: str = "subscription_cycle"
    ) -> dict:
        item = subscription["items"]["data"][0]
        amount = item["price"]["unit_amount"] if amount is None else amount
        amount += self._tax(amount, item.get("tax_rates") or [])
        customer = self.objects.get(subscription["customer"], {})
        invoice_id = self._new_id("in")
        days = int(subscription.get("days_until_due") or 0)
        invoice = self._store(
            {
                "id": invoice_id,
                "object": "invoice",
                "customer": subscription["customer"],
                "status": status,
                "number": f"FAKE-{next(self._ids):04d}",
                "amount_due": amount,
                "amount_paid": amount if status == "paid" else 0,
                "currency": item["price"]["currency"],
                "collection_method": subscription["collection_method"],
                "hosted_invoice_url": f"https://invoice.stripe.test/i/{invoice_id}",
                "invoice_pdf": f"https://pay.stripe.test/invoice/{invoice_id}/pdf",
                "due_date": item["current_period_start"] + days * 86400 if days else None,
                "custom_fields": (customer.get("invoice_settings") or {}).get("custom_fields"),
                "description": subscription.get("description"),
                "attempt_count": 0,
                "billing_reason": reason,
                "status_transitions": {"paid_at": int(time.time()) if status == "paid" else None},
                "parent": {
                    "type": "subscription_details",
                    "subscription_details": {"subscription": subscription["id"], "metadata": subscription["metadata"]},
                },
            }
        )
        subscription["latest_invoice"] = invoice_id
        return invoice

    def _create_subscription(self, params: dict) -> dict:
        item = params["items"][0]
        subscription = self._new_subscription(
            customer=params["customer"],
            price=item["price_data"],
            collection_method=params.get("collection_method", "charge_automatically"),
            metadata=params.get("metadata", {}),
            tax_rates=item.get("tax_rates"),
            description=params.get("description"),
            days_until_due=params.get("days_until_due"),
            trial_end=params.get("trial_end"),
        )
        self._first_invoice(subscription)
        return self._expanded(subscription, params)

    def _first_invoice(self, subscription: dict) -> dict:
        """The invoice a new subscription starts with: nothing to pay for a trial (Stripe marks it paid), else the
        first period's, paid by the card or open until the invoice is paid."""
        if subscription["status"] == "trialing":
            return self._new_invoice(subscription, status="paid", amount=0, reason="subscription_create")
        open_or_paid = "open" if subscription["collection_method"] == "send_invoice" else "paid"
        return self._new_invoice(subscription, status=open_or_paid, reason="subscription_create")

    def _update_subscription(self, params: dict, id: str) -> dict:
        subscription = self._found(id)
        changes = {k: v for k, v in params.items() if k not in ("expand", "items", "proration_behavior", "metadata")}
        if subscription.get("schedule") and ("items" in params or "cancel_at_period_end" in changes):
            raise StripeFailure(
                400,
                "invalid_request_error",
                f"The subscription is managed by the subscription schedule `{subscription['schedule']}`, and "
                "updating it directly is not allowed. Please update the schedule instead.",
            )
        if "cancel_at_period_end" in changes:
            changes["cancel_at_period_end"] = _bool(changes["cancel_at_period_end"])
        if "days_until_due" in changes:
            changes["days_until_due"] = int(changes["days_until_due"]) if changes["days_until_due"] else None
        if changes.get("collection_method") == "charge_automatically":
            changes["days_until_due"] = None
        subscription.update(changes)
        subscription["metadata"] = {**subscription.get("metadata", {}), **params.get("metadata", {})}
        for change in params.get("items") or []:
            self._change_item(subscription, change, params.get("proration_behavior", "create_prorations"))
        return self._expanded(subscription, params)

    def _change_item(self, subscription: dict, change: dict, proration: str) -> None:
        item = next(i for i in subscription["items"]["data"] if i["id"] == change["id"])
        old = item["price"]["unit_amount"]
        item["price"] = self._price(change["price_data"])
        if "tax_rates" in change:
            item["tax_rates"] = self._tax_rates(change["tax_rates"])
        now = int(time.time())
        length = item["current_period_end"] - item["current_period_start"]
        unused = max(0, item["current_period_end"] - now)
        prorated = (item["price"]["unit_amount"] - old) * unused // length if length else 0
        if proration == "always_invoice" and prorated > 0:
            paid = subscription["collection_method"] == "charge_automatically"
            self._new_invoice(
                subscription, status="paid" if paid else "open", amount=prorated, reason="subscription_update"
            )
        elif proration != "none" and prorated:
            subscription.setdefault("pending_prorations", []).append(prorated)

    def _cancel_subscription(self, params: dict, id: str) -> dict:
        subscription = self._found(id)
        if subscription["status"] == "canceled":
            raise StripeFailure(400, "invalid_request_error", "This subscription is already canceled.")
        subscription.update(status="canceled", ended_at=int(time.time()), canceled_at=int(time.time()))
        return subscription

    def _create_schedule(self, params: dict) -> dict:
        subscription = self._found(params["from_subscription"])
        if subscription.get("schedule"):
            raise StripeFailure(400, "invalid_request_error", "The subscription already has a schedule.")
        item = subscription["items"]["data"][0]
        schedule = self._store(
            {
                "id": self._new_id("sub_sched"),
                "object": "subscription_schedule",
                "subscription": subscription["id"],
                "status": "active",
                "end_behavior": "release",
                "phases": [
                    {
                        "start_date": item["current_period_start"],
                        "end_date": item["current_period_end"],
                        "items": [
                            {
                                "price": item["price"]["id"],
                                "quantity": 1,
                                "tax_rates": [rate["id"] for rate in item.get("tax_rates") or []],
                            }
                        ],
                    }
                ],
            }
        )
        subscription["schedule"] = schedule["id"]
        return schedule

    def _update_schedule(self, params: dict, id: str) -> dict:
        schedule = self._found(id)
        if schedule["status"] != "active":
            raise StripeFailure(400, "invalid_request_error", f"The schedule is {schedule['status']}.")
        phases = []
        for phase in params.get("phases") or []:
            items = []
            for item in phase["items"]:
                price = self._price(item["price_data"])["id"] if "price_data" in item else item["price"]
                tax_rates = [rate for rate in item.get("tax_rates") or [] if rate]
                items.append({"price": price, "quantity": int(item.get("quantity", 1)), "tax_rates": tax_rates})
            phase = {**phase, "items": items}
            for field in ("start_date", "end_date"):
                if field in phase:
                    phase[field] = int(phase[field])
            if "duration" in phase:
                phase["duration"] = {**phase["duration"], "interval_count": int(phase["duration"]["interval_count"])}
            phases.append(phase)
        if phases:
            schedule["phases"] = phases
        schedule["end_behavior"] = params.get("end_behavior", schedule["end_behavior"])
        return schedule

    def _release_schedule(self, params: dict, id: str) -> dict:
        schedule = self._found(id)
        if schedule["status"] != "active":
            raise StripeFailure(400, "invalid_request_error", f"The schedule is {schedule['status']}.")
        schedule.update(status="released", released_subscription=schedule["subscription"])
        self.objects[schedule["subscription"]]["schedule"] = None
        return schedule

    def _apply_next_phase(self, subscription: dict, *, at: int) -> None:
        """The phase that ends at ``at`` hands over to the next one: its price becomes the item's."""
        schedule = self.objects.get(subscription.get("schedule") or "")
        if not schedule or schedule["status"] != "active":
            return
        phases = schedule["phases"]
        ending = [index for index, phase in enumerate(phases) if int(phase.get("end_date") or 0) == at]
        if ending and ending[0] + 1 < len(phases):
            phase_item = phases[ending[0] + 1]["items"][0]
            item = subscription["items"]["data"][0]
            item["price"] = json.loads(json.dumps(self.objects[phase_item["price"]]))
            item["tax_rates"] = self._tax_rates(phase_item.get("tax_rates"))  # the phase's, or none

    def _list_invoices(self, params: dict) -> dict:
        found = [
            o
            for o in self.objects.values()
            if o["object"] == "invoice"
            and (
                "subscription" not in params
                or o["parent"]["subscription_details"]["subscription"] == params["subscription"]
            )
        ]
        return {"object": "list", "data": found, "has_more": False, "url": "/v1/invoices"}

    def _pay_invoice(self, params: dict, id: str) -> dict:
        invoice = self._found(id)
        if invoice["status"] != "open":
            raise StripeFailure(400, "invalid_request_error", "Invoice is already paid.", "invoice_not_open")
        invoice.update(
            status="paid", amount_paid=invoice["amount_due"], paid_out_of_band=_bool(params.get("paid_out_of_band"))
        )
        invoice["status_transitions"]["paid_at"] = int(time.time())
        subscription = self.objects.get(invoice["parent"]["subscription_details"]["subscription"], {})
        if subscription.get("latest_invoice") == id and subscription.get("status") in ("past_due", "unpaid"):
            subscription["status"] = "active"  # as Stripe does once the latest invoice is paid
        return invoice

    def _void_invoice(self, params: dict, id: str) -> dict:
        invoice = self._found(id)
        if invoice["status"] != "open":
            raise StripeFailure(400, "invalid_request_error", f"Invoice is {invoice['status']}.", "invoice_not_open")
        invoice["status"] = "void"
        return invoice

    def _finalize_invoice(self, params: dict, id: str) -> dict:
        invoice = self._found(id)
        invoice["status"] = "open"
        return invoice

    def _create_tax_rate(self, params: dict) -> dict:
        return self._store(
            {
                **params,
                "id": self._new_id("txr"),
                "object": "tax_rate",
                "active": _bool(params.get("active", True)),
                "inclusive": _bool(params.get("inclusive")),
                "percentage": float(params["percentage"]),
                "metadata": params.get("metadata") or {},
            }
        )

    def _search(self, kind: str, params: dict) -> dict:
        """Stripe's search, for the one query billing makes: ``metadata['key']:'value'``."""
        match = re.fullmatch(r"metadata\['([^']+)'\]:'([^']*)'", params.get("query", ""))
        if not match:
            raise StripeFailure(400, "invalid_request_error", "The fake searches by one metadata value only.")
        key, value = match.groups()
        found = [
            o for o in self.objects.values() if o["object"] == kind and (o.get("metadata") or {}).get(key) == value
        ]
        return {"object": "search_result", "data": found[: int(params.get("limit", 10))], "has_more": False}

    def _list_tax_rates(self, params: dict) -> dict:
        found = [
            o
            for o in self.objects.values()
            if o["object"] == "tax_rate"
            and ("active" not in params or o["active"] == _bool(params["active"]))
            and ("inclusive" not in params or o["inclusive"] == _bool(params["inclusive"]))
        ]
        return {"object": "list", "data": found[::-1], "has_more": False, "url": "/v1/tax_rates"}

    def _tax_rates(self, ids) -> list[dict]:
        """The TaxRate objects an item names by id, as Stripe shows them on subscription items."""
        return [json.loads(json.dumps(self._found(rate_id))) for rate_id in ids or [] if rate_id]

    @staticmethod
    def _tax(amount: int, rates: list[dict]) -> int:
        """Tax added on top of ``amount`` by the exclusive rates, each rounded to the penny (half up)."""
        tax = 0
        for rate in rates:
            if not rate.get("inclusive"):
                tax += int(
                    (Decimal(amount) * Decimal(str(rate["percentage"])) / 100).quantize(Decimal(1), ROUND_HALF_UP)
                )
        return tax

    def _create_portal_session(self, params: dict) -> dict:
        session_id = self._new_id("bps")
        return self._store(
            {
                "id": session_id,
                "object": "billing_portal.session",
                "url": f"https://billing.stripe.test/p/{session_id}",
                **params,
            }
        )


def signed_event(
    event_type: str,
    obj: dict,
    secret: str,
    *,
    created: int | None = None,
    event_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, str]:
    """A webhook body and its ``Stripe-Signature`` header, signed as Stripe signs:
    ``t=<timestamp>,v1=<HMAC-SHA256 of "<timestamp>.<body>" with the endpoint secret>``."""
    now = int(time.time())
    event = {
        "id": event_id or f"evt_fake_{uuid.uuid4().hex}",
        "object": "event",
        "type": event_type,
        "created": created or now,
        "livemode": False,
        "data": {"object": obj},
    }
    payload = json.dumps(event)
    timestamp = timestamp or now
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return payload.encode(), f"t={timestamp},v1={digest}"
