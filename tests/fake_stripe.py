"""A local fake of the Stripe API: just the endpoints billing uses, with objects kept in memory.

It runs an HTTP server in a thread on 127.0.0.1 (there is no network to Stripe here) and the real
``stripe.StripeClient`` talks to it through ``base_addresses={"api": fake.url}``. It records every request
(method, path, form params, ``Idempotency-Key``), answers a repeated idempotency key with the first answer, as
Stripe does, and can be told to fail (``fail()``: 500 on every call) or be ``stop()``-ed (connection refused).
Tests move objects on as Stripe would with ``set()``, ``complete_checkout()`` and ``fail_payment()``.
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

    # Running -------------------------------------------------------------------------------------------

    def start(self) -> "FakeStripe":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                fake._handle(self, "GET")

            def do_POST(self):
                fake._handle(self, "POST")

            def do_DELETE(self):
                fake._handle(self, "DELETE")

            def log_message(self, *args):  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
            subscription = self._new_subscription(
                customer=session["customer"],
                price=price,
                collection_method="charge_automatically",
                metadata=(session.get("subscription_data") or {}).get("metadata", {}),
            )
            invoice = self._new_invoice(subscription, status="paid")
            session.update(status="complete", payment_status="paid", subscription=subscription["id"])
            return session, subscription, invoice

    def renew(self, subscription_id: str, *, paid: bool) -> dict:
        """Stripe rolls the period on and raises the renewal invoice: paid, or with its payment failed."""
        with self._lock:
            subscription = self.objects[subscription_id]
            item = subscription["items"]["data"][0]
            length = item["current_period_end"] - item["current_period_start"]
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
            self.requests.append(Request(method, url.path, params, key))
            status, answer = self._answer(method, url.path, params, key)
        payload = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("Request-Id", f"req_fake_{len(self.requests)}")
        handler.end_headers()
        handler.wfile.write(payload)

    def _answer(self, method: str, path: str, params: dict, key: str | None) -> tuple[int, dict]:
        if self.failing and path.startswith(self.failing[1]):
            return self.failing[0], {"error": {"type": "api_error", "message": "The fake is failing on purpose."}}
        if method == "POST" and key and key in self._answers:
            return self._answers[key]  # Stripe replays the first answer to a repeated key
        try:
            # A snapshot: a replayed answer shows the object as it was then, like Stripe's.
            answer = 200, json.loads(json.dumps(self._route(method, path, params)))
        except StripeFailure as failure:
            answer = failure.status, failure.body
        if method == "POST" and key:
            self._answers[key] = answer
        return answer

    def _route(self, method: str, path: str, params: dict) -> dict:
        routes = [
            ("POST", r"/v1/customers", self._create_customer),
            ("POST", r"/v1/customers/(?P<id>[^/]+)", self._update),
            ("POST", r"/v1/products", self._create_product),
            ("POST", r"/v1/checkout/sessions", self._create_session),
            ("GET", r"/v1/checkout/sessions/(?P<id>[^/]+)", self._retrieve),
            ("POST", r"/v1/checkout/sessions/(?P<id>[^/]+)/expire", self._expire_session),
            ("POST", r"/v1/subscriptions", self._create_subscription),
            ("GET", r"/v1/subscriptions/(?P<id>[^/]+)", self._retrieve),
            ("POST", r"/v1/subscriptions/(?P<id>[^/]+)", self._update),
            ("GET", r"/v1/invoices", self._list_invoices),
            ("GET", r"/v1/invoices/(?P<id>[^/]+)", self._retrieve),
            ("POST", r"/v1/invoices/(?P<id>[^/]+)/pay", self._pay_invoice),
            ("POST", r"/v1/invoices/(?P<id>[^/]+)/finalize", self._finalize_invoice),
            ("POST", r"/v1/billing_portal/sessions", self._create_portal_session),
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
        obj = json.loads(json.dumps(obj))
        for field in params.get("expand") or []:
            if isinstance(obj.get(field), str) and obj[field] in self.objects:
                obj[field] = json.loads(json.dumps(self.objects[obj[field]]))
        return obj

    def _retrieve(self, params: dict, id: str) -> dict:
        return self._expanded(self._found(id), params)

    def _update(self, params: dict, id: str) -> dict:
        obj = self._found(id)
        params = {k: v for k, v in params.items() if k != "expand"}
        obj.update(params)
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

    def _new_subscription(self, *, customer: str, price: dict, collection_method: str, metadata: dict, **extra) -> dict:
        now = int(time.time())
        length = MONTH if price["recurring"]["interval"] == "month" else YEAR
        item_price = {
            "id": self._new_id("price"),
            "object": "price",
            "currency": price["currency"],
            "unit_amount": int(price["unit_amount"]),
            "recurring": {"interval": price["recurring"]["interval"]},
            "product": price["product"],
        }
        item = {
            "id": self._new_id("si"),
            "price": item_price,
            "current_period_start": now,
            "current_period_end": now + length,
        }
        return self._store(
            {
                "id": self._new_id("sub"),
                "object": "subscription",
                "customer": customer,
                "status": "active",
                "collection_method": collection_method,
                "cancel_at_period_end": False,
                "ended_at": None,
                "metadata": metadata,
                "items": {"object": "list", "data": [item]},
                "latest_invoice": None,
                **extra,
            }
        )

    def _new_invoice(self, subscription: dict, *, status: str) -> dict:
        item = subscription["items"]["data"][0]
        amount = item["price"]["unit_amount"]
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
            description=params.get("description"),
            days_until_due=params.get("days_until_due"),
        )
        self._new_invoice(
            subscription, status="open" if subscription["collection_method"] == "send_invoice" else "paid"
        )
        return self._expanded(subscription, params)

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
        return invoice

    def _finalize_invoice(self, params: dict, id: str) -> dict:
        invoice = self._found(id)
        invoice["status"] = "open"
        return invoice

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
