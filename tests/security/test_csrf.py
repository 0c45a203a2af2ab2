"""Every POST is protected against cross-site request forgery.

The tests walk every URL pattern the project serves (the member portal, perks, events, billing, allauth's
account pages, the Wagtail back office and the Django admin), make a concrete address for each from real
objects (an organisation the user admins, a colleague, an invitation, a perk, an event, a registration), and
POST to it with CSRF checks on, as a logged-in staff member who admins the organisation and as a visitor. The
browser's CSRF cookie is there but the token is not, as in a forged cross-site form. Each POST must be refused
with 403 and must change nothing in the database.

The only views exempt from Django's CSRF middleware are listed below with the reason; a new ``csrf_exempt``
view fails ``test_no_view_is_csrf_exempt_unless_listed`` until it is added here with its own protection.
"""

import re
from dataclasses import dataclass

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils.crypto import get_random_string
from django.utils.regex_helper import normalize
from wagtail.models import Page

from benefits.models import Perk, Provider
from cms.events import services as event_services
from membership import services as membership_services
from membership.models import Invitation, JoinRequest, OrganisationMember
from tests import factories
from tests.benefits.conftest import make_perk
from tests.conftest import _ensure_page_tree

pytestmark = pytest.mark.django_db

# Views Django's CSRF middleware does not check, and what protects each instead.
SIGNATURE_VERIFIED = {
    # Stripe cannot send our CSRF token; the signature over the raw body (STRIPE_WEBHOOK_SECRET) authenticates it.
    "membership.webhooks.stripe_webhook",
}
CSRF_CHECKED_BY_REST_FRAMEWORK = {
    # Wagtail's admin API (page explorer, choosers): Django REST framework's views are csrf_exempt for the
    # middleware, and its SessionAuthentication enforces the same CSRF check on every logged-in unsafe request.
    "wagtail.admin.api.views.PagesAdminAPIViewSet",
    "wagtail.documents.api.admin.views.DocumentsAdminAPIViewSet",
    "wagtail.images.api.admin.views.ImagesAdminAPIViewSet",
}
EXEMPT = SIGNATURE_VERIFIED | CSRF_CHECKED_BY_REST_FRAMEWORK
# Routes no request can reach, because an earlier pattern answers their address (and is tested in their place).
SHADOWED = {
    "admin/login/": "Wagtail's own log-in form; config.urls hands /admin/login/ over to allauth first",
}

# Our own apps' views, also posted to with a valid token, to prove each address reaches its view.
OWN_APPS = ("accounts.", "membership.", "benefits.", "cms.")


@dataclass(frozen=True)
class Route:
    """One URL pattern, as the resolver reports it: its full route and its view."""

    parts: tuple
    callback: object

    @property
    def route(self) -> str:
        text = ""
        for part in self.parts:
            piece = str(part)
            text += piece[1:] if text and piece.startswith("^") else piece  # as Django joins them
        return text

    @property
    def view_name(self) -> str:
        view = getattr(self.callback, "view_class", None) or getattr(self.callback, "cls", None) or self.callback
        if not hasattr(view, "__qualname__"):  # a callable instance, such as a feed
            view = type(view)
        return f"{view.__module__}.{view.__qualname__}"


def _routes(patterns=None, parts=()) -> list[Route]:
    found = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            found += _routes(pattern.url_patterns, (*parts, pattern.pattern))
        elif isinstance(pattern, URLPattern):
            found.append(Route((*parts, pattern.pattern), pattern.callback))
    return found


# Real objects to fill the addresses with ----------------------------------------------------------------------


@pytest.fixture
def world(db):
    return build_world()


def build_world() -> dict:
    """A superuser on the membership team (with an authenticator app) who admins an organisation with a
    colleague, an open invitation, a join request, an offer of its own; a published perk; an event the user
    registered for. Other crawls of every address (headers, stored XSS) use it too."""
    _ensure_page_tree()
    user = factories.make_staff("director@netech.example", superuser=True, first_name="Dana", last_name="Hall")
    organisation = factories.make_organisation("Tyne Analytics", email_domains="tyne-analytics.example")
    factories.add_member(organisation, user, OrganisationMember.Role.ADMIN)
    colleague = factories.add_member(organisation, factories.make_user("mia@tyne-analytics.example"))
    invitation = Invitation(organisation=organisation, email="new@tyne-analytics.example", invited_by=user)
    invitation.refresh_nonce()
    invitation.save()
    asker = factories.make_user("sam@tyne-analytics.example")
    join_request = JoinRequest.objects.create(organisation=organisation, user=asker, email=asker.email)
    partner = Provider.objects.create(name="Cloudforge", slug="cloudforge", contact_email="p@cloudforge.example")
    perk = make_perk(partner, "Cloud credits", Perk.Method.SHARED_CODE)
    own = Provider.objects.create(name="Tyne Analytics", slug="tyne-analytics", organisation=organisation)
    offer = make_perk(own, "Data audit", Perk.Method.CONTACT, status=Perk.Status.PENDING)
    event = factories.make_event()
    registration = event_services.register_for_event(event, user, organisation=organisation, name="Dana Hall")
    return {
        "user": user,
        "organisation": organisation,
        "colleague": colleague,
        "invitation": invitation,
        "join_request": join_request,
        "perk": perk,
        "offer": offer,
        "event": event,
        "registration": registration,
    }


def _value(name: str, converter: str, route: str, world: dict) -> str:
    """A value for one path parameter: the real object the route is about, else one its converter accepts."""
    by_route = [
        ("my/org/<slug:slug>/colleagues/<int:pk>", "pk", world["colleague"].pk),
        ("invitations/<int:pk>", "pk", world["invitation"].pk),
        ("join-requests/<int:pk>", "pk", world["join_request"].pk),
        ("offers/<int:pk>", "pk", world["offer"].pk),
        ("my/events/<int:pk>", "pk", world["registration"].pk),
        ("my/events/register/<int:event_id>", "event_id", world["event"].pk),
        ("perks/<slug:slug>", "slug", world["perk"].slug),
        ("my/invitations/<str:key>", "key", membership_services.invitation_key(world["invitation"])),
        ("django-admin/", "app_label", "auth"),
        ("password/reset/key/", "uidb36", "1"),
        ("password/reset/key/", "key", "set-password"),
        ("documents/", "_0", "1"),
        ("documents/", "_1", "report.pdf"),
        ("pages/", "pk", world["event"].pk),
        ("users/", "pk", world["user"].pk),
    ]
    for fragment, param, value in by_route:
        if fragment in route and name == param:
            return str(value)
    by_name = {
        "slug": world["organisation"].slug,
        "app_label": "membership",
        "model_name": "organisation",
        "revision_id_a": "earliest",
        "revision_id_b": "latest",
        "_0": "",  # Wagtail's page catch-all: the home page
    }
    if name in by_name:
        return by_name[name]
    return {"int": str(world["organisation"].pk), "uuid": "2f1c6c1e-1f1a-4b3e-9c55-8d8f6a1c2b3d"}.get(
        converter, "example"
    )


CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def concrete_url(route: Route, world: dict) -> str:
    url = "/"
    for part in route.parts:
        if isinstance(part, RoutePattern):
            url += CONVERTER.sub(
                lambda m: _value(m["name"], m["converter"] or "str", route.route, world), str(part._route)
            )
        elif isinstance(part, RegexPattern):
            template, params = normalize(part._regex)[0]
            url += template % {p: _value(p, "str", route.route, world) for p in params}
    return url


def _resolves_to_itself(url: str, route: Route) -> bool:
    try:
        match = resolve(url.split("?")[0])
    except Exception:
        return False
    return match.route == route.route and match.func is route.callback


@pytest.fixture
def addresses(world) -> list[tuple[Route, str]]:
    """Every route's concrete address, plus the live pages that the catch-all page view serves."""
    found = []
    for route in _routes():
        found.append((route, concrete_url(route, world)))
    catch_all = next(route for route, url in found if route.view_name == "cms.views.serve_page")
    for page in Page.objects.live().exclude(depth=1).specific():
        found.append((catch_all, page.get_url()))
    return found


# What a request changed ---------------------------------------------------------------------------------------


def writes() -> int:
    """Rows inserted, updated or deleted so far in this test's transaction (or on this connection)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables")
            return int(cursor.fetchone()[0])
    connection.ensure_connection()
    return connection.connection.total_changes


def _forging_client(user=None) -> Client:
    """A browser on another site's form: it sends the CSRF cookie, and no token."""
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    client.cookies["csrftoken"] = get_random_string(32)
    return client


def _is_csrf_refusal(response) -> bool:
    return response.status_code == 403 and b"CSRF" in response.content


# The tests ---------------------------------------------------------------------------------------------------


def test_no_view_is_csrf_exempt_unless_listed():
    exempt = {route.view_name for route in _routes() if getattr(route.callback, "csrf_exempt", False)}
    assert exempt == EXEMPT, (
        "A view is csrf_exempt that is not listed (or a listed one no longer is): "
        f"unlisted {sorted(exempt - EXEMPT)}, no longer exempt {sorted(EXEMPT - exempt)}"
    )


def test_every_route_gets_a_concrete_address_that_resolves_to_it(addresses):
    unresolved = [(route.route, url) for route, url in addresses if not _resolves_to_itself(url, route)]
    assert unresolved == [(route, f"/{route}") for route in SHADOWED]
    assert len({route.route for route, _ in addresses}) > 300  # the back office's routes are in the walk


def test_a_logged_in_post_without_the_token_is_refused_everywhere_and_writes_nothing(world, addresses):
    client = _forging_client(world["user"])
    accepted, written = [], []
    for route, url in addresses:
        before = writes()
        response = client.post(
            url, {"name": "forged", "email": "forged@evil.example", "role": "admin", "confirm": "yes"}
        )
        if writes() != before:
            written.append(url)
        if route.view_name in SIGNATURE_VERIFIED:
            assert response.status_code == 400, url  # no signature: not trusted, and not a CSRF matter
        elif not _is_csrf_refusal(response):
            accepted.append((url, response.status_code))
    assert accepted == []
    assert written == []


def test_an_anonymous_post_without_the_token_is_refused_everywhere_and_writes_nothing(world, addresses):
    client = _forging_client()
    accepted, written = [], []
    for route, url in addresses:
        before = writes()
        response = client.post(url, {"login": world["user"].email, "password": factories.PASSWORD})
        if writes() != before:
            written.append(url)
        if route.view_name in SIGNATURE_VERIFIED:
            assert response.status_code == 400, url
        elif route.view_name in CSRF_CHECKED_BY_REST_FRAMEWORK:
            # Anonymous: sent to log in before any CSRF question arises, since the API is for staff only.
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
        elif not _is_csrf_refusal(response):
            accepted.append((url, response.status_code))
    assert accepted == []
    assert written == []


def test_with_the_token_our_own_addresses_reach_their_views(world, addresses):
    """The control: the same addresses with a valid token get past the check, so the refusals above are the
    CSRF check's doing and the walk reached every POST the portal, perks, events and billing accept."""
    accepting = set()
    for route, url in addresses:
        if not route.view_name.startswith(OWN_APPS) or route.view_name in EXEMPT:
            continue
        client = _forging_client(world["user"])
        token = client.cookies["csrftoken"].value
        try:
            with transaction.atomic():  # whatever the view does is undone before the next address
                response = client.post(url, {"csrfmiddlewaretoken": token})
                raise _Undo
        except _Undo:
            pass
        assert not _is_csrf_refusal(response), url
        if response.status_code != 405:
            accepting.add(route.view_name.rsplit(".", 1)[1])
    assert {
        "redeem",
        "invite",
        "invitation_action",
        "change_role",
        "remove",
        "decide_join_request",
        "leave",
        "profile",
        "start_membership",
        "cancel_membership",
        "withdraw_offer",
        "register",
        "cancel",
        "delete",
        "create_organisation",
    } <= accepting


class _Undo(Exception):
    pass


# A GET changes nothing: CSRF protection covers unsafe methods only, and another site's <img src> sends a GET -------

# What a GET may write: the session, and the ledger's "who was active when" (a log-in, a members-only page read).
GET_BOOKKEEPING = {"membership_activityevent", "django_session"}


def test_no_get_changes_anything(world):
    client = Client(raise_request_exception=False)
    client.force_login(world["user"])
    client.get("/")  # the session and the page tree's caches settle
    written = set()
    for route in _routes():
        url = concrete_url(route, world)
        if "logout" in url:
            continue
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        for query in queries.captured_queries:
            match = re.match(r'\s*(INSERT INTO|UPDATE|DELETE FROM)\s+"?(\w+)', query["sql"])
            if match and match[2] not in GET_BOOKKEEPING:
                written.add((route.route, response.status_code, match[1], match[2]))

    assert sorted(written) == []
