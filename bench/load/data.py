"""The load test's side inside Django: the people, perks and events of one run, and what the database holds after.

``bench.load`` starts one ``manage.py shell`` with the server's settings and database running ``serve()``, and
calls these functions through it; the load generator never imports this module. Everything a run creates carries
its tag, so runs can share a database and each is checked alone.
"""

import hashlib
import io
import json
import sys
from datetime import timedelta
from pathlib import Path

from allauth.account.models import EmailAddress
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import User
from benefits.models import Category, Perk, PerkCode, Provider, Redemption
from cms.events.models import EventIndexPage, EventPage, EventRegistration
from cms.models import DirectoryPage, HomePage, NewsIndexPage, NewsPage, SuccessStoryIndexPage, SuccessStoryPage
from membership.models import (
    ActivityEvent,
    AuditEntry,
    Invoice,
    Organisation,
    OrganisationMember,
    OrganisationType,
    SizeBand,
    StripeEvent,
    Subscription,
    Tier,
)

PASSWORD = "load-test-password-2026"  # made-up people in a benchmark database
SMALL_EVENT_PLACES = 10


def serve() -> None:
    """Answer calls from ``bench.load``: a JSON line ``[function, arguments]`` in, a line ``LOAD <JSON result>``
    out, until standard input closes. One Django process does all of a run's work in its database."""
    calls = {"prepare": prepare, "snapshot": snapshot, "check": check}
    for line in sys.stdin:
        name, arguments = json.loads(line)
        print("LOAD " + json.dumps(calls[name](*arguments)), flush=True)


def prepare(tag: str, members: int, individuals: int, webhook_subscriptions: int) -> dict:
    """The database migrated, the demo data (once per database), the webhook benchmark's card memberships (once),
    and this run's crowd."""
    from django.core.management import call_command
    from django.db import connection

    from bench.webhook_ingest import seed_database

    call_command("migrate", interactive=False, verbosity=0)
    if not Tier.objects.exists():
        call_command("seed_demo", orgs=40, quiet_login=True, stdout=io.StringIO())
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    seed_database(webhook_subscriptions)
    return seed_run(tag, members, individuals)


@transaction.atomic
def seed_run(tag: str, members: int, individuals: int) -> dict:
    """``members`` people, each the admin of an organisation of their own with an active membership;
    ``individuals`` people with no organisation; three perks (a pool of unique codes smaller than the crowd, a
    shared code, a link) and two free events (one with plenty of places, one with ``SMALL_EVENT_PLACES``)."""
    now = timezone.now()
    tier = Tier.objects.order_by("pk").first()
    password = make_password(PASSWORD)  # hashed once: every person has the same password
    organisations = Organisation.objects.bulk_create(
        Organisation(
            name=f"Load {tag} Member {n:02d}",
            slug=f"load-{tag}-member-{n:02d}",
            organisation_type=OrganisationType.SME,
            size_band=SizeBand.SMALL,
            town="Newcastle upon Tyne",
        )
        for n in range(members)
    )
    Subscription.objects.bulk_create(
        Subscription(
            organisation=organisation,
            tier=tier,
            status=Subscription.Status.ACTIVE,
            amount_pence=60_000,
            current_period_start=now - timedelta(days=30),
            current_period_end=now + timedelta(days=335),
            started_at=now - timedelta(days=30),
        )
        for organisation in organisations
    )
    people = _people(tag, "member", members, password) + _people(tag, "individual", individuals, password)
    OrganisationMember.objects.bulk_create(
        OrganisationMember(organisation=organisation, user=person, role=OrganisationMember.Role.ADMIN)
        for organisation, person in zip(organisations, people, strict=False)
    )
    return {
        "password": PASSWORD,
        "members": [
            {"email": person.email, "organisation": organisation.slug, "organisation_id": organisation.pk}
            for organisation, person in zip(organisations, people, strict=False)
        ],
        "individuals": [{"email": person.email} for person in people[members:]],
        "perks": [perk.slug for perk in _perks(tag, codes=max(members - 5, 1))],
        "events": [event.pk for event in _events(tag, now)],
        "pages": _public_pages(),
    }


def _public_pages() -> list[str]:
    """Addresses of the public site to browse: home, news, events, the directory, stories, perks, joining."""
    pages = ["/", "/perks/", "/join/"]
    for model, how_many in (
        (NewsIndexPage, 1),
        (NewsPage, 4),
        (EventIndexPage, 1),
        (EventPage, 3),
        (DirectoryPage, 1),
        (SuccessStoryIndexPage, 1),
        (SuccessStoryPage, 2),
    ):
        live = model.objects.live().public()
        if model is NewsPage:
            live = live.filter(members_only=False)
        pages += [page.url for page in live.order_by("-pk")[:how_many] if page.url]
    pages += [f"/perks/{slug}/" for slug in Perk.objects.published().values_list("slug", flat=True)[:4]]
    return pages


def _people(tag: str, kind: str, count: int, password: str) -> list[User]:
    people = User.objects.bulk_create(
        User(email=f"{kind}-{n:02d}.{tag}@load.example", password=password, first_name="Load", last_name=f"{kind} {n}")
        for n in range(count)
    )
    EmailAddress.objects.bulk_create(
        EmailAddress(user=person, email=person.email, verified=True, primary=True) for person in people
    )
    return people


def _perks(tag: str, codes: int) -> list[Perk]:
    provider, _ = Provider.objects.get_or_create(
        slug="load-test-partner", defaults={"name": "Load Test Partner", "website": "https://partner.example"}
    )
    common = {"provider": provider, "category": Category.SOFTWARE}
    perks = [
        Perk.objects.create(
            title=f"Load codes {tag}",
            slug=f"load-{tag}-codes",
            method=Perk.Method.UNIQUE_CODE,
            low_codes_threshold=2,
            **common,
            **_published("One code each, while they last."),
        ),
        Perk.objects.create(
            title=f"Load shared {tag}",
            slug=f"load-{tag}-shared",
            method=Perk.Method.SHARED_CODE,
            shared_code="LOADSHARED",
            **common,
            **_published("One code for everyone."),
        ),
        Perk.objects.create(
            title=f"Load link {tag}",
            slug=f"load-{tag}-link",
            method=Perk.Method.LINK,
            redemption_url="https://partner.example/claim",
            **common,
            **_published("A link to claim it."),
        ),
    ]
    PerkCode.objects.bulk_create(PerkCode(perk=perks[0], code=f"LOAD-{tag}-{n:04d}") for n in range(codes))
    return perks


def _published(summary: str) -> dict:
    return {
        "summary": summary,
        "value_line": "20% off",
        "status": Perk.Status.PUBLISHED,
        "published_at": timezone.now(),
    }


def _events(tag: str, now) -> list[EventPage]:
    """Two free events three weeks ahead: an open day with places for all, and a masterclass that fills up."""
    index = EventIndexPage.objects.first()
    if index is None:
        index = EventIndexPage(title="Events", slug="events")
        HomePage.objects.get().add_child(instance=index)
    starts_at = (now + timedelta(days=21)).replace(second=0, microsecond=0)
    events = []
    for title, places in ((f"Load open day {tag}", 5000), (f"Load masterclass {tag}", SMALL_EVENT_PLACES)):
        event = EventPage(
            title=title,
            slug=f"load-{tag}-{places}",
            summary="Talks and networking.",
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=2),
            venue_name="The Catalyst",
            venue_address="3 Science Square\nNewcastle upon Tyne NE4 5TG",
            capacity=places,
        )
        index.add_child(instance=event)
        event.save_revision().publish()
        events.append(event)
    return events


# After the run ------------------------------------------------------------------------------------------------------


def check(path: str) -> dict:
    """Compare what the crowd was told was accepted (the JSON file at ``path``) with what the database holds."""
    told = json.loads(Path(path).read_text())
    tag = told["tag"]
    return {
        "redemptions": _check_redemptions(tag, {tuple(r) for r in told["redemptions"]}),
        "registrations": _check_registrations(tag, set(told["registrations"])),
        "webhooks": _check_webhooks(tag, set(told["webhook_ids"])),
    }


def _check_redemptions(tag: str, accepted: set[tuple]) -> dict:
    rows = Redemption.objects.filter(perk__slug__startswith=f"load-{tag}-")
    stored = list(rows.values_list("perk__slug", "person__email", "organisation__slug"))
    codes = list(rows.filter(perk__method=Perk.Method.UNIQUE_CODE).values_list("code", flat=True))
    pool = PerkCode.objects.filter(perk__slug=f"load-{tag}-codes")
    return {
        "accepted": len(accepted),
        "stored": len(stored),
        "stored_twice": sorted({row for row in stored if stored.count(row) > 1}),
        "missing": sorted(accepted - set(stored)),
        "not_accepted": sorted(set(stored) - accepted),
        # A pool of unique codes: each code issued at most once, and never more redemptions than codes.
        "codes_issued_twice": len(codes) - len(set(codes)),
        "codes_overdrawn": max(len(codes) - pool.count(), 0),
        "codes_left": pool.filter(redemption__isnull=True).count(),
    }


def _check_registrations(tag: str, accepted: set[int]) -> dict:
    events = EventPage.objects.filter(slug__startswith=f"load-{tag}-")
    rows = EventRegistration.objects.filter(event__in=events)
    live = rows.live()
    small = events.order_by("capacity").first()
    return {
        "accepted": len(accepted),
        "stored": rows.count(),
        "stored_twice": list(
            live.values("event_id", "user_id")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .values_list("event_id", "user_id")
        ),
        "missing": sorted(accepted - set(rows.values_list("pk", flat=True))),
        "not_accepted": sorted(set(rows.values_list("pk", flat=True)) - accepted),
        # Places are exact: the small event never confirms more people than it has places.
        "small_event_places": small.capacity,
        "small_event_confirmed": rows.filter(event=small, status=EventRegistration.Status.CONFIRMED).count(),
        "small_event_waitlisted": rows.filter(event=small, status=EventRegistration.Status.WAITLISTED).count(),
    }


def _check_webhooks(tag: str, delivered: set[str]) -> dict:
    ledger = StripeEvent.objects.filter(event_id__startswith=f"evt_load_{tag}_")
    stored = list(ledger.values_list("event_id", flat=True))
    return {
        "delivered": len(delivered),
        "stored": len(stored),
        "stored_twice": sorted({event_id for event_id in stored if stored.count(event_id) > 1}),
        "missing": sorted(delivered - set(stored)),
        "not_delivered": sorted(set(stored) - delivered),
    }


def snapshot() -> dict:
    """What a webhook delivery can change, in a form two snapshots can be compared by: the ledger, the audit
    log, activity, and every field of every subscription and invoice."""

    def digest(queryset) -> str:
        return hashlib.sha256(repr(list(queryset.order_by("pk").values_list())).encode()).hexdigest()

    return {
        "ledger rows": StripeEvent.objects.count(),
        "audit entries": AuditEntry.objects.count(),
        "activity": ActivityEvent.objects.count(),
        "subscriptions": digest(Subscription.objects.all()),
        "invoices": digest(Invoice.objects.all()),
    }
