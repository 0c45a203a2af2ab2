"""Every form a visitor or a member can send, fuzzed with Hypothesis: no input is answered with a server error,
and input the platform refuses writes nothing.

Each target names who sends it (a visitor, a plain member or an organisation's admin), the fields the form has
and what in the database it could change. Every field may be missing, empty, arbitrary unicode (control
characters included), very long, a number where text belongs or several values at once; a file field gets
random bytes under a random name. The test client raises any exception a view lets escape, so a 500 fails
with the example that caused it.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.messages import ERROR, get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.forms import BaseForm
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import ConsentRecord, User
from benefits.models import Perk, Provider, Redemption
from cms.events.models import EventRegistration
from membership import services
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
        lambda name, content: SimpleUploadedFile(name or "x", content),
        st.text(max_size=30).map(lambda s: s.replace("\x00", "")),
        st.binary(max_size=300),
    ),
)


@dataclass
class Target:
    name: str
    who: str  # "visitor", "member" or "admin"
    url: str  # formatted with the world's attributes
    fields: list[str]
    state: str = ""  # the name of the world's snapshot function to compare
    method: str = "post"
    files: list[str] = field(default_factory=list)
    empty_is_404: bool = False  # the view looks up what the form names, so nothing named is "not found"

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
    Target("authenticator set-up", "member", "/accounts/2fa/totp/activate/", ["code"], "people"),
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
        "hand over", "admin", "/my/org/{org.slug}/colleagues/hand-over/", ["to"], "organisations", empty_is_404=True
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
    Target("join page price finder", "visitor", "/join/", ["organisation_type", "size_band"], method="get"),
    Target("Stripe webhook", "visitor", "/billing/stripe/webhook/", ["id", "type", "data"], "billing"),
    Target(
        "demo checkout", "admin", "/billing/demo-checkout/{token}/", ["pay", "cancel"], "billing", empty_is_404=True
    ),
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
]


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
    publish(home, NewsIndexPage(title="News", slug="news"))
    publish(home, DirectoryPage(title="Member directory", slug="directory"))
    return SimpleNamespace(
        client=client,
        admin=admin,
        member=member,
        visitor_account=factories.make_user("pat@nowhere.example"),
        org=org,
        member_org=member_org,
        colleague=colleague,
        join_request=join_request,
        invitation_key=services.invitation_key(invitation),
        token="nonsense-token",
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


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_no_form_input_causes_a_server_error(world, target: Target):
    client = world.client
    if target.who != "visitor":
        client.force_login(getattr(world, target.who))
    url = target.url.format(**vars(world))
    strategy = st.fixed_dictionaries(
        {**{name: ANY for name in target.fields}, **{name: FILE for name in target.files}}
    ).map(_payload)

    # The target is there: an empty submission is answered (a typo in its address would make the fuzzing moot).
    assert getattr(client, target.method)(url).status_code != 404 or target.empty_is_404

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

    fuzz()


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
