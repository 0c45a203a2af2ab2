"""Every kind of response carries the security headers: public pages, the member portal, the back office, error
pages, the webhook's refusal, static files, the health check, and JSON and CSV downloads.

HSTS is switched on only by an https:// SITE_URL, which is read when the settings load, so it is proved on the
production-like server in tests/test_production_headers.py (which checks these same headers there too).
"""

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from membership.permissions import grant_membership_team_permissions
from tests import factories
from tests.conftest import _ensure_page_tree

pytestmark = pytest.mark.django_db

SITE_POLICY = "default-src 'self'"
BACK_OFFICE_POLICY = "form-action 'self'"


def assert_security_headers(response, *, policy: str = SITE_POLICY) -> None:
    where = f"{response.request['PATH_INFO']} ({response.status_code})"
    csp = response.headers.get("Content-Security-Policy", "")
    assert policy in csp, where
    assert "object-src 'none'" in csp, where
    assert "base-uri 'self'" in csp, where
    # Framing: refused by CSP for browsers that know frame-ancestors, and by X-Frame-Options for those that don't.
    assert "frame-ancestors 'none'" in csp or "frame-ancestors 'self'" in csp, where
    assert response.headers.get("X-Frame-Options") in ("DENY", "SAMEORIGIN"), where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    assert response.headers.get("Referrer-Policy") == "strict-origin-when-cross-origin", where
    assert response.headers.get("Cross-Origin-Opener-Policy") == "same-origin", where
    permissions = response.headers.get("Permissions-Policy", "")
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
        assert feature in permissions, where


@pytest.fixture
def people(db):
    _ensure_page_tree()
    member = factories.make_user("mia@tyne-analytics.example")
    organisation = factories.make_organisation("Tyne Analytics")
    factories.add_member(organisation, member)
    staff = factories.make_staff("engagement@netech.example")
    grant_membership_team_permissions(Group.objects.get(name="Membership team"))
    return {"member": member, "organisation": organisation, "staff": staff}


def _client(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200),
        ("/perks/", 200),
        ("/join/", 200),
        ("/accounts/login/", 200),
        ("/search/?q=tech", 200),
        ("/feeds/news/rss/", 200),
        ("/sitemap.xml", 200),
        ("/robots.txt", 200),
        ("/healthz", 200),
        ("/no-such-page/", 404),
        ("/static/css/site.css", 200),
        ("/admin/", 302),  # sent to log in: the redirect carries them too
    ],
)
def test_public_responses_carry_the_headers(people, path, status):
    response = _client().get(path)
    assert response.status_code == status
    assert_security_headers(response, policy=BACK_OFFICE_POLICY if path == "/admin/" else SITE_POLICY)


def test_the_member_portal_and_its_json_download_carry_the_headers(people):
    client = _client(people["member"])
    for path in ("/my/", f"/my/org/{people['organisation'].slug}/", "/my/account/", "/my/account/export/"):
        response = client.get(path, follow=path == "/my/")
        assert response.status_code == 200, path
        assert_security_headers(response)
    assert response["Content-Type"].startswith("application/json")


def test_a_403_carries_the_headers(people):
    outsider = factories.make_user("outsider@elsewhere.example")
    response = _client(outsider).get("/django-admin/")  # the Django admin is for superusers only
    assert response.status_code in (302, 403)
    assert_security_headers(response, policy=BACK_OFFICE_POLICY)

    # A member who is not an admin may not open the organisation's offers.
    response = _client(people["member"]).get(f"/my/org/{people['organisation'].slug}/offers/")
    assert response.status_code == 403
    assert_security_headers(response)


def test_a_refused_forgery_and_the_webhooks_400_carry_the_headers(people):
    response = Client(enforce_csrf_checks=True).post("/accounts/login/", {"login": "x", "password": "y"})
    assert response.status_code == 403
    assert_security_headers(response)

    response = Client().post("/billing/stripe/webhook/", b"{}", content_type="application/json")
    assert response.status_code == 400
    assert_security_headers(response)


def test_a_429_carries_the_headers(people, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "invite_colleague": "0/m"}
    admin = factories.make_user("noah@tyne-analytics.example")
    factories.add_member(people["organisation"], admin, "admin")
    response = _client(admin).post(
        f"/my/org/{people['organisation'].slug}/colleagues/invite/", {"email": "a@b.example", "role": "member"}
    )
    assert response.status_code == 429
    assert_security_headers(response)


def test_the_back_office_enforces_its_own_policy_and_reports_the_strict_one(people):
    client = _client(people["staff"])
    for path in ("/admin/", "/admin/engagement/export/?export=organisations&format=csv"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_security_headers(response, policy=BACK_OFFICE_POLICY)
        assert SITE_POLICY in response["Content-Security-Policy-Report-Only"]
    assert response["Content-Type"].startswith("text/csv")


def test_a_view_that_sets_its_own_framing_keeps_it(people):
    """Wagtail's page preview is framed by the editor, so it says SAMEORIGIN; that is not overwritten."""
    from wagtail.models import Page

    home = Page.objects.get(depth=2)
    client = _client(factories.make_staff("editor@netech.example", superuser=True))
    response = client.get(f"/admin/pages/{home.pk}/edit/preview/")
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert_security_headers(response, policy="frame-ancestors 'self'")


def test_the_redirect_to_https_carries_the_headers(people, settings):
    """In production (an https:// SITE_URL) SecurityMiddleware answers a plain-http request itself, with a
    redirect: the headers are added outside it, so that answer has them too."""
    settings.SECURE_SSL_REDIRECT = True

    response = Client().get("/perks/")

    assert response.status_code == 301 and response["Location"] == "https://testserver/perks/"
    assert_security_headers(response)


def _missing_headers(response) -> list[str]:
    csp = response.headers.get("Content-Security-Policy", "")
    checks = {
        "CSP object-src": "object-src 'none'" in csp,
        "CSP frame-ancestors": "frame-ancestors" in csp,
        "X-Frame-Options": response.headers.get("X-Frame-Options") in ("DENY", "SAMEORIGIN"),
        "nosniff": response.headers.get("X-Content-Type-Options") == "nosniff",
        "Referrer-Policy": response.headers.get("Referrer-Policy") == "strict-origin-when-cross-origin",
        "COOP": response.headers.get("Cross-Origin-Opener-Policy") == "same-origin",
        "Permissions-Policy": "camera=()" in response.headers.get("Permissions-Policy", ""),
    }
    return [name for name, present in checks.items() if not present]


def test_every_address_answers_with_the_security_headers(db, settings):
    """Every address the platform serves (from the URLconf, with real objects in it), anonymous and logged in,
    whatever it answers (a page, a redirect, a 403, a 405 from a POST-only view, a download, a feed); and a 413."""
    from tests.security.test_csrf import _routes, build_world, concrete_url

    world = build_world()
    anonymous = Client(raise_request_exception=False)
    member = Client(raise_request_exception=False)
    member.force_login(world["user"])
    addresses = [concrete_url(route, world) for route in _routes()]
    addresses += [f"/my/events/{world['registration'].pk}/calendar.ics", "/feeds/news/atom/", "/favicon.ico"]
    problems = []
    for url in addresses:
        if "logout" in url:
            continue
        for client in (anonymous, member):
            response = client.get(url)
            if missing := _missing_headers(response):
                problems.append((url, response.status_code, missing))
    too_big = anonymous.generic(
        "POST", "/accounts/login/", b"x" * (settings.MAX_REQUEST_BYTES + 1), content_type="application/octet-stream"
    )
    assert too_big.status_code == 413
    if missing := _missing_headers(too_big):
        problems.append(("413", too_big.status_code, missing))

    assert len(addresses) > 80
    assert problems == []
