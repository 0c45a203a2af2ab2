"""Every form a visitor or a member can send, fuzzed with Hypothesis: no input is answered with a server error,
and input the platform refuses writes nothing.

Each target names who sends it (a visitor, a plain member or an organisation's admin), the fields the form has
and what in the database it could change. Every field may be missing, empty, arbitrary unicode (control
characters included), very long, a number where text belongs or several values at once; a file field gets
random bytes under a random name. The test client raises any exception a view lets escape, so a 500 fails
with the example that caused it.
"""

import os
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace

import pytest
from allauth.account.forms import default_token_generator
from allauth.account.utils import user_pk_to_url_str
from django.contrib.messages import ERROR, get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.forms import BaseForm
from django.urls import resolve
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wagtail.models import Collection, CollectionViewRestriction, PageViewRestriction

from accounts.models import ConsentRecord, User
from benefits.models import Perk, Provider, Redemption
from cms.events.models import EventRegistration
from cms.events.payments import start_checkout
from cms.events.services import register_for_event
from membership import services
from membership.billing import start_card_checkout
from membership.billing_changes import demo_card_url
from membership.models import (
    AuditEntry,
    Invitation,
    JoinRequest,
    Organisation,
    OrganisationMember,
    Subscription,
    Tier,
    TierPrice,
)
from tests import factories
from tests.cms.conftest import publish

MISSING = object()

_NASTY = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\r\n",
        "0",
        "-1",
        "1e309",
        "99999999999999999999999999",
        "NaN",
        "null",
        "[]",
        "{}",
        "' OR 1=1 --",
        "%s%s%n",
        "../../../../etc/passwd",
        "\u202egnp.exe",
        "<script>alert(1)</script>",
        "https://",
        "javascript:alert(1)",
        "\ufeff",
        "\U0001f600" * 3,
    ]
)
_CONTROL = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=31), min_size=1, max_size=20)
_LONG = st.builds(lambda chunk, times: chunk * times, st.text(min_size=1, max_size=4), st.integers(300, 6000))
# PostgreSQL refuses a NUL anywhere in a query, so it gets its own, frequent, branch.
_NUL = st.builds(lambda before, after: f"{before}\x00{after}", st.text(max_size=5), st.text(max_size=5))
VALUE = st.one_of(_NASTY, _NUL, st.text(max_size=60), _CONTROL, _LONG, st.integers().map(str))
ANY = st.one_of(st.just(MISSING), VALUE, st.lists(VALUE, min_size=2, max_size=3))
FILE = st.one_of(
    st.just(MISSING),
    st.builds(
        lambda name, content: SimpleUploadedFile(_file_name(name), content),
        st.text(max_size=30),
        st.binary(max_size=300),
    ),
)


def _file_name(text: str) -> str:
    """A name a browser could send for a file: what is left after its folders, never empty, "." or ".." (the test
    client itself refuses those)."""
    name = os.path.basename(text.replace("\x00", ""))
    return "x" if name in ("", ".", "..") else name


@dataclass
class Target:
    name: str
    who: str  # "visitor", "member", "admin", or "staff" (who has an authenticator app set up)
    url: str  # formatted with the world's attributes
    fields: list[str]
    state: str = ""  # the name of the world's snapshot function to compare
    method: str = "post"
    files: list[str] = field(default_factory=list)
    empty_is_404: bool = False  # the view looks up what the form names, so nothing named is "not found"
    stripe: bool = False  # reaches its work only with Stripe configured (the local fake), not in demo mode
    valid: dict = field(default_factory=dict)  # field -> valid values, drawn as often as anything else
    before: str = ""  # an address to GET first, as a browser would (a reset link stores its key, then redirects)
    reauthenticated: bool = False  # the page asks its user to confirm their password first (allauth's sensitive ones)
    # Why the form itself is never reached in this world, if it is not: every input is turned away before it.
    only_turned_away: str = ""

    def __str__(self) -> str:
        return self.name


ORGANISATION_FIELDS = [
    "name", "organisation_type", "size_band", "specialisms", "description", "website", "town", "postcode",
    "local_authority", "company_number", "linkedin_url", "x_url", "github_url", "email_domains",
    "directory_opt_in", "public_fields", "billing_email", "vat_number", "needs_purchase_order",
]  # fmt: skip
OFFER_FIELDS = [
    "title", "category", "summary", "value_line", "description", "terms", "method", "shared_code",
    "redemption_url", "starts_on", "ends_on", "cap_per_organisation",
]  # fmt: skip

TARGETS = [
    # Accounts (allauth) -----------------------------------------------------------------------------------------
    Target("sign-up", "visitor", "/accounts/signup/", ["email", "password1", "password2"], "people"),
    Target("log-in", "visitor", "/accounts/login/", ["login", "password", "remember"], "people"),
    Target("password reset", "visitor", "/accounts/password/reset/", ["email"], "people"),
    Target("log-in code request", "visitor", "/accounts/login/code/", ["email"], "people"),
    Target("password change", "member", "/accounts/password/change/", ["oldpassword", "password1", "password2"]),
    Target("e-mail addresses", "member", "/accounts/email/", ["email", "action_add", "action_remove"], "people"),
    Target("authenticator set-up", "member", "/accounts/2fa/totp/activate/", ["code"], "people", reauthenticated=True),
    Target(
        "log-in code",
        "visitor",
        "/accounts/login/code/confirm/",
        ["code"],
        "people",
        only_turned_away="no log-in code is pending, so allauth sends every post back to the log-in",
    ),
    Target(
        "second factor at log-in",
        "visitor",
        "/accounts/2fa/authenticate/",
        ["code"],
        "people",
        only_turned_away="no log-in is waiting for its second factor, so allauth sends every post back to the log-in",
    ),
    Target("confirm it is you", "member", "/accounts/reauthenticate/", ["password"], "people"),
    Target("confirm it is you, second factor", "staff", "/accounts/2fa/reauthenticate/", ["code"], "people"),
    Target(
        "set a password",
        "member",
        "/accounts/password/set/",
        ["password1", "password2"],
        "people",
    ),
    Target(
        "new password from a reset link",
        "visitor",
        "/accounts/password/reset/key/{reset_uid}-set-password/",
        ["password1", "password2"],
        "people",
        before="/accounts/password/reset/key/{reset_key}/",
    ),
    Target(
        "turn off the authenticator",
        "staff",
        "/accounts/2fa/totp/deactivate/",
        ["anything"],
        "people",
        reauthenticated=True,
    ),
    Target(
        "new recovery codes",
        "staff",
        "/accounts/2fa/recovery-codes/generate/",
        ["anything"],
        "people",
        reauthenticated=True,
    ),
    # My account -------------------------------------------------------------------------------------------------
    Target(
        "my account",
        "member",
        "/my/account/",
        ["profile-first_name", "profile-last_name", "consent-newsletter", "consent-events", "consent-offers"],
        "people",
    ),
    Target("delete my account", "member", "/my/account/delete/", ["password"], "people"),
    # Organisations and colleagues --------------------------------------------------------------------------------
    Target(
        "new organisation", "member", "/my/organisations/new/", ORGANISATION_FIELDS, "organisations", files=["logo"]
    ),
    Target("ask to join", "member", "/my/join/", ["organisation", "message"], "organisations"),
    Target(
        "organisation profile",
        "admin",
        "/my/org/{org.slug}/profile/",
        [*ORGANISATION_FIELDS, "preview"],
        "organisations",
        files=["logo"],
    ),
    Target("invite a colleague", "admin", "/my/org/{org.slug}/colleagues/invite/", ["email", "role"], "organisations"),
    Target("change a role", "admin", "/my/org/{org.slug}/colleagues/{colleague.pk}/role/", ["role"], "organisations"),
    Target(
        "hand over",
        "admin",
        "/my/org/{org.slug}/colleagues/hand-over/",
        ["to"],
        "organisations",
        empty_is_404=True,
        valid={"to": ["{colleague.pk}"]},
    ),
    Target(
        "decide a join request",
        "admin",
        "/my/org/{org.slug}/join-requests/{join_request.pk}/",
        ["decision"],
        "organisations",
    ),
    Target("accept an invitation", "member", "/my/invitations/{invitation_key}/", ["anything"], "organisations"),
    # Billing ----------------------------------------------------------------------------------------------------
    Target(
        "start a membership",
        "admin",
        "/my/org/{org.slug}/billing/start/",
        ["tier", "interval", "payment_method", "po_number", "renew"],
        "billing",
    ),
    Target("change tier", "admin", "/my/org/{member_org.slug}/billing/tier/", ["tier"], "billing"),
    Target("pay by invoice", "admin", "/my/org/{member_org.slug}/billing/pay-by-invoice/", ["po_number"], "billing"),
    Target(
        "pay online from the renewal",
        "admin",
        "/my/org/{member_org.slug}/billing/pay-online/",
        ["payment_method", "po_number"],
        "billing",
        stripe=True,
        valid={"payment_method": ["card", "invoice"], "po_number": ["PO-1"]},
    ),
    Target("demo card", "admin", "/billing/demo-card/{demo_card_token}/", ["save", "cancel"], "billing"),
    Target("join page price finder", "visitor", "/join/", ["organisation_type", "size_band"], method="get"),
    Target("Stripe webhook", "visitor", "/billing/stripe/webhook/", ["id", "type", "data"], "billing"),
    Target("demo checkout", "admin", "/billing/demo-checkout/{demo_checkout_token}/", ["pay", "cancel"], "billing"),
    # Perks ------------------------------------------------------------------------------------------------------
    Target(
        "catalogue search", "visitor", "/perks/", ["q", "category", "provider", "new", "featured", "page"], "", "get"
    ),
    Target("redeem a perk", "member", "/perks/{perk.slug}/redeem/", ["organisation", "message"], "perks"),
    Target("offer a perk", "admin", "/my/org/{org.slug}/offers/new/", OFFER_FIELDS, "perks"),
    Target("change an offer", "admin", "/my/org/{org.slug}/offers/{offer.pk}/", OFFER_FIELDS, "perks"),
    # Events -----------------------------------------------------------------------------------------------------
    Target("register for an event", "member", "/my/events/register/{event.pk}/", ["register_as", "name"], "events"),
    Target(
        "register as the public",
        "visitor_account",
        "/my/events/register/{event.pk}/",
        ["register_as", "name"],
        "events",
    ),
    Target("event programme", "visitor", "/events/", ["page", "past"], method="get"),
    Target(
        "event demo checkout",
        "payer",
        "/my/events/demo-checkout/{event_checkout_token}/",
        ["pay", "cancel"],
        "events",
    ),
    # The public site --------------------------------------------------------------------------------------------
    Target("site search", "visitor", "/search/", ["q", "page"], method="get"),
    Target("news filters", "visitor", "/news/", ["category", "tag", "page"], method="get"),
    Target(
        "directory search",
        "visitor",
        "/directory/",
        ["q", "specialism", "organisation_type", "size_band", "town", "page"],
        method="get",
    ),
    Target(
        "password for a page",
        "visitor",
        "/_util/authenticate_with_password/{page_password}/",
        ["password", "return_url"],
        valid={"password": ["press-only"], "return_url": ["/news/", "https://elsewhere.example/"]},
    ),
    Target(
        "password for documents",
        "visitor",
        "/documents/authenticate_with_password/{documents_password}/",
        ["password", "return_url"],
        valid={"password": ["x"], "return_url": ["/documents/1/a.pdf", "https://elsewhere.example/"]},
    ),
    Target("my redemptions", "member", "/my/redemptions/", ["page"], method="get"),
]

# The addresses no target fuzzes, each with the reason. Every other address a visitor or member can reach is a
# target above: ``test_every_address_is_fuzzed_or_says_why_not`` fails for a new one until it is either.
NOT_FUZZED = {
    "config.views.healthz": "reads nothing from the request",
    "allauth.account.views.LogoutView": "no fields: logging out",
    "allauth.account.views.AccountInactiveView": "a page: reads nothing from the request",
    "allauth.account.views.email_verification_sent": "a page: reads nothing from the request",
    "allauth.account.views.ConfirmEmailView": "no fields: the key in its address, checked by allauth",
    "allauth.account.views.PasswordResetFromKeyDoneView": "a page: reads nothing from the request",
    "allauth.account.views.PasswordResetDoneView": "a page: reads nothing from the request",
    "allauth.mfa.base.views.IndexView": "a page: reads nothing from the request",
    "allauth.mfa.recovery_codes.views.ViewRecoveryCodesView": "a page: reads nothing from the request",
    "allauth.mfa.recovery_codes.views.DownloadRecoveryCodesView": "a download: reads nothing from the request",
    "accounts.views.export": "a download: reads nothing from the request",
    "accounts.views.frontend_login_redirect": "reads only ?next=, checked against this host (test_login_routes)",
    "cms.events.views.my_events": "a page: reads nothing from the request",
    "cms.events.views.registration": "reads only the fixed ?checkout= return flags",
    "cms.events.views.registration_calendar": "a download: reads nothing from the request",
    "cms.events.views.cancel": "no fields: a button",
    "cms.events.views.pay": "no fields: a button",
    "membership.views.portal": "a page: reads nothing from the request",
    "membership.views.overview": "a page: reads nothing from the request",
    "membership.views.colleagues": "a page: reads nothing from the request",
    "membership.views.remove": "no fields: a button",
    "membership.views.invitation_action": "no fields: a button",
    "membership.views.leave": "no fields: a button",
    "membership.billing_views.billing_page": "reads only the fixed ?checkout=, ?card= and ?online= return flags",
    "membership.billing_views.manage_card": "no fields: a button",
    "membership.billing_views.keep_tier": "no fields: a button",
    "membership.billing_views.switch_to_card": "no fields: a button",
    "membership.billing_views.cancel_membership": "no fields: a button",
    "membership.billing_views.resume_membership": "no fields: a button",
    "membership.billing_views.withdraw_application": "no fields: a button",
    "benefits.views.perk_page": "a page: reads nothing from the request",
    "benefits.views.organisation_perks": "a page: reads nothing from the request",
    "benefits.views.offers": "a page: reads nothing from the request",
    "benefits.views.withdraw_offer": "no fields: a button",
    "cms.feeds.NewsFeed": "a feed: reads nothing from the request",
    "cms.feeds.NewsAtomFeed": "a feed: reads nothing from the request",
    "django.contrib.sitemaps.views.sitemap": "reads only ?p=, the sitemap's page, checked by Django",
    "cms.views.robots_txt": "reads nothing from the request",
    "django.views.generic.base.RedirectView": "the favicon's redirect: reads nothing from the request",
    "config.urls.serve_media": "a file by its path, judged by the path alone (tests/security/test_uploads.py)",
    "wagtail.documents.views.serve.serve": "a document by its id and name, private ones behind their password",
}


@pytest.fixture
def world(db, client):
    """Organisations, people, a tier, a perk, an offer, an event and the public pages the targets need."""
    from tests.benefits.conftest import subscribe

    growth = Tier.objects.create(name="Growth", slug="growth", is_public=True)
    for kind in ("sme", "public_sector"):
        TierPrice.objects.create(
            tier=growth, organisation_type=kind, size_band="10-49", annual_pence=120_000, monthly_pence=11_000
        )
    admin = factories.make_user("admin@tyne.example", first_name="Noah", last_name="Patel")
    org = factories.make_organisation("Tyne Analytics", email_domains="tyne.example")
    factories.add_member(org, admin, OrganisationMember.Role.ADMIN)
    member = factories.make_user("mia@tyne.example", first_name="Mia")
    colleague = factories.add_member(org, member)
    member_org = factories.make_organisation("Wear Start")
    factories.add_member(member_org, admin, OrganisationMember.Role.ADMIN)
    subscribe(member_org, growth)
    subscribe(org, growth, Subscription.Status.LAPSED)
    wanting = factories.make_user("sam@tyne.example")
    join_request = JoinRequest.objects.create(organisation=org, user=wanting)
    invitation = Invitation(
        organisation=org, email="lee@tyne.example", invited_by=admin, expires_at=timezone.now() + timedelta(days=3)
    )
    invitation.refresh_nonce()
    invitation.save()
    provider = Provider.objects.create(name="Cloudforge", slug="cloudforge")
    perk = Perk.objects.create(
        provider=provider,
        title="Cloud credits",
        slug="cloud-credits",
        summary="s",
        value_line="v",
        terms="t",
        method=Perk.Method.CONTACT,
        status=Perk.Status.PUBLISHED,
    )
    offering = Provider.objects.create(name=org.name, slug="tyne-offers", organisation=org)
    offer = Perk.objects.create(
        provider=offering, title="Data audit", slug="data-audit", summary="s", value_line="v", terms="t",
        method=Perk.Method.CONTACT, status=Perk.Status.REJECTED,
    )  # fmt: skip
    event = factories.make_event(member_price_pence=0, non_member_price_pence=2_500)
    from cms.models import DirectoryPage, HomePage, NewsIndexPage

    home = HomePage.objects.get()
    news = publish(home, NewsIndexPage(title="News", slug="news"))
    publish(home, DirectoryPage(title="Member directory", slug="directory"))
    page_password = PageViewRestriction.objects.create(
        page=news, restriction_type=PageViewRestriction.PASSWORD, password="press-only"
    )
    documents_password = CollectionViewRestriction.objects.create(
        collection=Collection.get_first_root_node(), restriction_type=CollectionViewRestriction.PASSWORD, password="x"
    )
    # An invoiced membership the admin may save a card for (the demo's stand-in checkout), and a place held for
    # payment at the event (the demo's checkout for it).
    council = factories.make_organisation("Durham Council", organisation_type="public_sector")
    factories.add_member(council, admin, OrganisationMember.Role.ADMIN)
    invoiced = subscribe(council, growth)
    invoiced.payment_method = Subscription.PaymentMethod.INVOICE
    invoiced.save(update_fields=["payment_method"])
    payer = factories.make_user("payer@nowhere.example", first_name="Pay")
    held = register_for_event(event, payer, organisation=None, name="Pay Er")
    return SimpleNamespace(
        client=client,
        admin=admin,
        member=member,
        visitor_account=factories.make_user("pat@nowhere.example"),
        staff=factories.make_staff("director@netech.example"),  # with an authenticator app set up
        org=org,
        member_org=member_org,
        colleague=colleague,
        join_request=join_request,
        invitation_key=services.invitation_key(invitation),
        token="nonsense-token",
        reset_uid=user_pk_to_url_str(member),
        reset_key=f"{user_pk_to_url_str(member)}-{default_token_generator.make_token(member)}",
        demo_card_token=demo_card_url(invoiced, 1).rstrip("/").rsplit("/", 1)[1],
        demo_checkout_token=start_card_checkout(org, growth, "year", admin).rstrip("/").rsplit("/", 1)[1],
        payer=payer,
        event_checkout_token=start_checkout(held, payer).rstrip("/").rsplit("/", 1)[1],
        page_password=f"{page_password.pk}/{news.pk}",
        documents_password=documents_password.pk,
        perk=perk,
        offer=offer,
        event=event,
    )


def _snapshot(world, kind: str):
    """What a refused form must leave exactly as it was."""
    if kind == "people":
        return (
            list(User.objects.order_by("pk").values_list("email", "first_name", "last_name", "is_active", "password")),
            ConsentRecord.objects.count(),
        )
    if kind == "organisations":
        return (
            list(Organisation.objects.order_by("pk").values()),
            list(OrganisationMember.objects.order_by("pk").values()),
            Invitation.objects.count(),
            list(JoinRequest.objects.order_by("pk").values_list("status", flat=True)),
            AuditEntry.objects.count(),
        )
    if kind == "billing":
        return list(Subscription.objects.order_by("pk").values()), AuditEntry.objects.count()
    if kind == "perks":
        return list(Perk.objects.order_by("pk").values()), Redemption.objects.count()
    if kind == "events":
        return list(EventRegistration.objects.order_by("pk").values())
    return None


def _refused(response) -> bool:
    """Whether the platform turned the input down: an error status, a form shown again with errors, or an error
    message on the page it redirects to."""
    if response.status_code >= 400:
        return True
    if any(message.level >= ERROR for message in get_messages(response.wsgi_request)):
        return True
    for context in response.context or []:
        for value in context.flatten().values():
            if isinstance(value, BaseForm) and value.is_bound and value.errors:
                return True
    return False


def _payload(values: dict) -> dict:
    return {name: value for name, value in values.items() if value is not MISSING}


def test_every_address_is_fuzzed_or_says_why_not(world):
    """Every address outside the back offices is a target, or in ``NOT_FUZZED`` with the reason."""
    from tests.security.test_csrf import Route, _routes

    def view_name(url: str) -> str:
        return Route((), resolve(url.split("?")[0]).func).view_name

    fuzzed = {view_name(target.url.format(**vars(world))) for target in TARGETS}
    everywhere = {route.view_name for route in _routes() if not route.route.startswith(("admin/", "django-admin/"))}

    assert everywhere - fuzzed - NOT_FUZZED.keys() == set(), "new addresses: fuzz them, or say why not"
    assert fuzzed & NOT_FUZZED.keys() == set()
    assert NOT_FUZZED.keys() <= everywhere, "addresses that are gone"


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_no_form_input_causes_a_server_error(world, target: Target, request):
    stripe = request.getfixturevalue("fake_stripe") if target.stripe else None
    client = world.client
    if target.who == "staff":
        _log_in_with_second_factor(client, world.staff)  # as allauth records it: some pages ask for it lately
    elif target.who != "visitor":
        client.force_login(getattr(world, target.who))
    if target.reauthenticated:
        assert client.post("/accounts/reauthenticate/", {"password": factories.PASSWORD}).status_code == 302
    if target.before:
        client.get(target.before.format(**vars(world)))
    url = target.url.format(**vars(world))
    reached = []  # whether each request got to the form

    def values(name: str):
        if name not in target.valid:
            return ANY
        return st.one_of(st.sampled_from([str(value).format(**vars(world)) for value in target.valid[name]]), ANY)

    strategy = st.fixed_dictionaries(
        {**{name: values(name) for name in target.fields}, **{name: FILE for name in target.files}}
    ).map(_payload)

    # The target is there: an empty submission is answered (a typo in its address would make the fuzzing moot).
    empty = getattr(client, target.method)(url)
    assert empty.status_code != 404 or target.empty_is_404
    reached.append(_reached(empty))

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=strategy)
    def fuzz(data):
        before = _snapshot(world, target.state)
        for upload in target.files:
            if upload in data:
                data[upload].seek(0)
        response = getattr(client, target.method)(url, data)
        assert response.status_code < 500
        if target.state and _refused(response):
            assert _snapshot(world, target.state) == before, f"{target} was refused but wrote something"
        reached.append(_reached(response))

    fuzz()
    assert stripe is None or stripe.requests, f"{target} never got past its form to Stripe"
    # A target every input of which is turned away before its form (not found, or sent to log in) fuzzes nothing.
    assert any(reached) != bool(target.only_turned_away), f"{target}: reached its form {sum(reached)} times"


_TURNED_AWAY_TO = ("/accounts/login/", "/accounts/reauthenticate/", "/accounts/2fa/reauthenticate/")


def _reached(response) -> bool:
    """Whether a request got to the form: not a 404, nor sent to log in or to confirm who it is first."""
    if response.status_code == 404:
        return False
    return not (response.status_code in (301, 302, 303) and response["Location"].startswith(_TURNED_AWAY_TO))


def _log_in_with_second_factor(client, user) -> None:
    response = client.post("/accounts/login/", {"login": user.email, "password": factories.PASSWORD})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/2fa/authenticate/")
    response = client.post("/accounts/2fa/authenticate/", {"code": factories.current_totp(factories.totp_secret(user))})
    assert response.status_code == 302 and "_auth_user_id" in client.session


@pytest.mark.parametrize(
    ("who", "url", "data"),
    [
        ("admin", "/my/organisations/new/", {"name": "Huge Ltd", "specialisms": "9223372036854775808"}),
        ("admin", "/my/org/{org.slug}/profile/", {"name": "Tyne Analytics", "specialisms": "9223372036854775808"}),
        # Django's single-choice field refuses such a number itself: kept here so that stays proved.
        ("admin", "/my/org/{member_org.slug}/billing/tier/", {"tier": "9223372036854775808"}),
    ],
)
def test_a_choice_too_large_for_the_database_is_refused_as_an_unknown_one(world, who, url, data):
    """SQLite cannot take such a number: the choice is refused like any other unknown one, not a 500."""
    world.client.force_login(getattr(world, who))
    before = _snapshot(world, "organisations"), _snapshot(world, "billing")

    response = world.client.post(url.format(**vars(world)), data)

    assert response.status_code < 500 and _refused(response)
    assert (_snapshot(world, "organisations"), _snapshot(world, "billing")) == before
