"""The crowd: fifty people at once, run by locust (``bench.load`` starts it headless; see its docstring).

- Visitors browse the public site anonymously: home, news, events, the directory, the perks catalogue.
- Members, each of a different organisation, log in through the log-in form, use the member portal, redeem
  perks and register for events; one in five of their POSTs is sent twice at once (a double click).
- Individuals (accounts with no organisation) log in and register for events as themselves.
- Stripe sends signed webhook deliveries: new events, redeliveries of events already sent, and now and then
  the same event twice at once.

Between them they send exactly ``LOAD_REQUESTS`` requests (each request takes a ticket; a person with no
ticket left stops), then locust quits. Every response is recorded, with what each person was told was
accepted, in the JSON file ``LOAD_RECORDS``, for ``bench.load`` to check against the database.
"""

import json
import os
import random
import re
from itertools import count
from pathlib import Path

import gevent
from locust import HttpUser, between, events, task
from locust.exception import StopUser

from bench.webhook_ingest import RENEWAL, event_body, signed_headers

DATA = json.loads(Path(os.environ["LOAD_DATA"]).read_text())
WEBHOOK = "/billing/stripe/webhook/"
REGISTERED = re.compile(r"/my/events/(\d+)/$")

RECORDS: dict[str, list] = {
    "requests": [],  # every response: what was asked, its status and how long it took
    "logins": [],
    "redemptions": [],  # [perk, person, organisation] for each redemption a person was told was accepted
    "registrations": [],  # each registration a person was told was accepted, with its number
    "webhooks": [],  # each delivery: event id, status, and whether it was processed, ignored or a duplicate
    "webhook_events": [],  # each event sent, as bench.load rebuilds it to deliver it again
}


class Budget:
    """The run's requests, handed out one ticket per request; in-flight ones are counted so the run ends only
    when every request has had its answer."""

    def __init__(self, total: int):
        self.left = total
        self.in_flight = 0

    def take(self, tickets: int = 1) -> None:
        if self.left < tickets:
            raise StopUser()
        self.left -= tickets
        self.in_flight += tickets

    def done(self) -> None:
        self.in_flight -= 1

    @property
    def finished(self) -> bool:
        return self.left <= 0 and self.in_flight == 0


BUDGET = Budget(int(os.environ["LOAD_REQUESTS"]))


@events.request.add_listener
def _record(request_type, name, response_time, response, exception, **kwargs) -> None:
    status = getattr(response, "status_code", 0) or 0
    RECORDS["requests"].append({"name": name, "method": request_type, "status": status, "ms": response_time})


@events.test_start.add_listener
def _quit_when_spent(environment, **kwargs) -> None:
    def watch() -> None:
        while not BUDGET.finished:
            gevent.sleep(0.1)
        environment.runner.quit()

    gevent.spawn(watch)


@events.quitting.add_listener
def _write(environment, **kwargs) -> None:
    Path(os.environ["LOAD_RECORDS"]).write_text(json.dumps(RECORDS))


class Person(HttpUser):
    abstract = True
    wait_time = between(0.05, 0.3)

    def send(self, method: str, path: str, name: str, **kwargs):
        """One request on one ticket, redirects not followed (a redirect's target is a request of its own)."""
        BUDGET.take()
        return self._send(method, path, name, **kwargs)

    def _send(self, method: str, path: str, name: str, **kwargs):
        try:
            return self.client.request(method, path, name=name, allow_redirects=False, **kwargs)
        finally:
            BUDGET.done()

    def twice_at_once(self, method: str, path: str, name: str, **kwargs) -> list:
        """The same request sent twice at the same moment, as a double click sends it."""
        BUDGET.take(2)
        both = [gevent.spawn(self._send, method, path, name, **kwargs) for _ in range(2)]
        gevent.joinall(both)
        return [greenlet.value for greenlet in both if greenlet.value is not None]

    def browse(self) -> None:
        path = random.choice(DATA["pages"])
        self.send("GET", path, _page_name(path))

    def post_form(self, path: str, name: str, fields: dict, *, double: bool = False) -> list:
        data = {**fields, "csrfmiddlewaretoken": self.client.cookies.get("csrftoken", "")}
        if double:
            return self.twice_at_once("POST", path, name, data=data)
        return [self.send("POST", path, name, data=data)]

    def log_in(self, email: str) -> None:
        self.send("GET", "/accounts/login/", "log-in form")
        response = self.post_form("/accounts/login/", "log in", {"login": email, "password": DATA["password"]})[0]
        ok = response.status_code == 302
        RECORDS["logins"].append({"email": email, "status": response.status_code, "ok": ok})
        if not ok:
            raise StopUser()

    def register(self, event_id: int, register_as: str, email: str) -> None:
        path = f"/my/events/register/{event_id}/"
        fields = {"register_as": register_as, "name": f"Load {email.split('@')[0]}"}
        for response in self.post_form(path, "register for an event", fields, double=random.random() < 0.2):
            found = REGISTERED.search(response.headers.get("Location", "")) if response.status_code == 302 else None
            if found:
                RECORDS["registrations"].append({"pk": int(found.group(1)), "event": event_id, "email": email})


class Visitor(Person):
    """Someone reading the public site, not logged in."""

    @task
    def read(self) -> None:
        self.browse()


class Member(Person):
    """A person at a member organisation (its admin), each at a different organisation."""

    accounts = iter(DATA["members"])

    def on_start(self) -> None:
        self.account = next(self.accounts)
        self.log_in(self.account["email"])

    @task(4)
    def use_the_portal(self) -> None:
        slug = self.account["organisation"]
        path = random.choice(["/my/", f"/my/org/{slug}/", f"/my/org/{slug}/perks/", "/my/redemptions/", "/my/events/"])
        self.send("GET", path, "portal: " + re.sub(r"/org/[^/]+/", "/org/<slug>/", path))

    @task(3)
    def read(self) -> None:
        self.browse()

    @task(2)
    def redeem(self) -> None:
        perk = random.choice(DATA["perks"])
        fields = {"organisation": self.account["organisation"]}
        sent = self.post_form(f"/perks/{perk}/redeem/", "redeem a perk", fields, double=random.random() < 0.2)
        for response in sent:
            if response.status_code == 302 and f"/perks/{perk}/" in response.headers.get("Location", ""):
                RECORDS["redemptions"].append([perk, self.account["email"], self.account["organisation"]])

    @task(2)
    def register_for_an_event(self) -> None:
        event = random.choice(DATA["events"])
        self.register(event, str(self.account["organisation_id"]), self.account["email"])


class Individual(Person):
    """Someone with an account and no organisation, who registers as themselves."""

    accounts = iter(DATA["individuals"])

    def on_start(self) -> None:
        self.email = next(self.accounts)["email"]
        self.log_in(self.email)

    @task(3)
    def read(self) -> None:
        self.browse()

    @task(2)
    def register_for_an_event(self) -> None:
        self.register(random.choice(DATA["events"]), "individual", self.email)


class Stripe(HttpUser):
    """Stripe delivering signed webhook events: new ones, redeliveries, and simultaneous duplicates."""

    wait_time = between(0.05, 0.3)
    numbers = count()
    sent: list[tuple[str, bytes]] = []

    def deliver(self, event_id: str, body: bytes, *, twice: bool = False) -> None:
        jobs = [gevent.spawn(self._post, event_id, body) for _ in range(2 if twice else 1)]
        gevent.joinall(jobs)

    def _post(self, event_id: str, body: bytes) -> None:
        try:
            response = self.client.post(WEBHOOK, data=body, headers=signed_headers(body), name="stripe webhook")
        finally:
            BUDGET.done()
        try:
            outcome = response.json().get("status", "")
        except ValueError:
            outcome = ""
        RECORDS["webhooks"].append({"id": event_id, "status": response.status_code, "outcome": outcome})

    @task
    def send_an_event(self) -> None:
        if self.sent and random.random() < 0.25:  # Stripe delivers an event again: same body, signed anew
            BUDGET.take()
            self.deliver(*random.choice(self.sent))
            return
        twice = random.random() < 0.1
        BUDGET.take(2 if twice else 1)
        number = next(self.numbers)
        event_id = f"evt_load_{DATA['tag']}_{number}"
        event_type = RENEWAL[number % len(RENEWAL)]
        subscription = (number // len(RENEWAL)) % DATA["webhook_subscriptions"]
        body = event_body(event_type, subscription, event_id)
        self.sent.append((event_id, body))
        RECORDS["webhook_events"].append({"id": event_id, "type": event_type, "subscription": subscription})
        self.deliver(event_id, body, twice=twice)


def _page_name(path: str) -> str:
    return "page: " + (path if path.count("/") <= 2 else path.rsplit("/", 2)[0] + "/…")


Member.fixed_count = len(DATA["members"])
Individual.fixed_count = len(DATA["individuals"])
Stripe.fixed_count = DATA["stripe_senders"]
Visitor.fixed_count = DATA["users"] - Member.fixed_count - Individual.fixed_count - Stripe.fixed_count
