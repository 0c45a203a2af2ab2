"""The platform's promise: no member ever sees, or changes, another organisation's private data.

One world serves every test: two organisations, each with an admin, a member, a pending invitation and a
pending join request; a former member of A, removed by its admin; and an outsider who belongs to none.
Every URL under /my/ that names an organisation or one of its objects is requested by everyone who must
not reach it; each is refused and nothing changes.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.messages import get_messages
from django.core import signing
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

from accounts.models import User
from benefits import services as benefit_services
from benefits.forms import OfferForm
from benefits.models import Category, Perk, Redemption
from membership import services
from membership.models import (
    AuditEntry,
    Invitation,
    Invoice,
    JoinRequest,
    Organisation,
    OrganisationMember,
    OrganisationType,
    SizeBand,
    Subscription,
    Tier,
    TierPrice,
)
from tests.factories import make_user

Role = OrganisationMember.Role
LOGIN = "/accounts/login/"


# The world --------------------------------------------------------------------------------------------


@dataclass
class Tenant:
    """One organisation and a real target in it for every id-taking URL."""

    organisation: Organisation
    admin: User
    member: User
    admin_membership: OrganisationMember
    member_membership: OrganisationMember
    invitation: Invitation
    join_request: JoinRequest
    invitee_email: str
    requester: User
    offer: Perk

    @property
    def slug(self) -> str:
        return self.organisation.slug


@dataclass
class World:
    a: Tenant
    b: Tenant
    outsider: User
    a_former_member: User

    def user(self, name: str) -> User:
        return {
            "a_admin": self.a.admin,
            "a_member": self.a.member,
            "b_admin": self.b.admin,
            "b_member": self.b.member,
            "outsider": self.outsider,
            "a_former_member": self.a_former_member,
        }[name]

    @property
    def everyone(self) -> list[User]:
        people = [self.a.admin, self.a.member, self.a.requester, self.b.admin, self.b.member, self.b.requester]
        return [*people, self.outsider, self.a_former_member]


def _offer_data(name: str) -> dict:
    return {
        "title": f"{name} workshop",
        "category": Category.TRAINING,
        "summary": "A free workshop for members.",
        "value_line": "Free half day",
        "method": Perk.Method.CONTACT,
    }


def _build_tenant(name: str, domain: str, *, member_joins_by: str) -> Tenant:
    """An organisation built the way the platform builds it: through its services."""
    admin = make_user(f"admin@{domain}")
    organisation = services.create_organisation(
        admin,
        name=name,
        organisation_type=OrganisationType.SME,
        size_band=SizeBand.SMALL,
        email_domains=domain,
        description=f"The private profile of {name}.",
    )
    member = make_user(f"member@{domain}")
    if member_joins_by == "invitation":
        services.accept_invitation(services.invite_colleague(organisation, admin, member.email), member)
    else:
        services.decide_join_request(services.request_to_join(organisation, member), admin, approve=True)
    invitee_email = f"invitee@{domain}"
    invitation = services.invite_colleague(organisation, admin, invitee_email)
    requester = make_user(f"requester@{domain}")
    join_request = services.request_to_join(organisation, requester, "Please let me in.")
    offer = benefit_services.submit_offer(organisation, admin, OfferForm(_offer_data(name)))
    return Tenant(
        organisation=organisation,
        admin=admin,
        member=member,
        admin_membership=OrganisationMember.objects.get(organisation=organisation, user=admin),
        member_membership=OrganisationMember.objects.get(organisation=organisation, user=member),
        invitation=invitation,
        join_request=join_request,
        invitee_email=invitee_email,
        requester=requester,
        offer=offer,
    )


@pytest.fixture
def world(db, settings) -> World:
    # Seven people per test: a fast hasher keeps the matrix quick. Nobody here logs in with a password.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    a = _build_tenant("Alpha Robotics", "alpha-robotics.example", member_joins_by="invitation")
    b = _build_tenant("Beta Analytics", "beta-analytics.example", member_joins_by="join request")
    outsider = make_user("outsider@elsewhere.example")
    # Someone who once belonged to A: leaving ends their access, though their membership row stays.
    former = make_user("former@alpha-robotics.example")
    services.accept_invitation(services.invite_colleague(a.organisation, a.admin, former.email), former)
    services.remove_member(OrganisationMember.objects.get(organisation=a.organisation, user=former), a.admin)
    assert Invitation.objects.pending().count() == 2
    assert JoinRequest.objects.filter(status=JoinRequest.Status.PENDING).count() == 2
    # A tier either organisation could join, so joining is a real action to refuse.
    growth = Tier.objects.create(name="Growth", slug="growth")
    TierPrice.objects.create(
        tier=growth, organisation_type=OrganisationType.SME, size_band=SizeBand.SMALL, annual_pence=90_000
    )
    return World(a=a, b=b, outsider=outsider, a_former_member=former)


def snapshot() -> dict:
    """Everything a refused request must leave exactly as it was."""
    return {
        "organisations": list(Organisation.objects.order_by("pk").values()),
        "specialisms": list(Organisation.specialisms.through.objects.order_by("pk").values()),
        "memberships": list(OrganisationMember.objects.order_by("pk").values()),
        "invitations": list(Invitation.objects.order_by("pk").values()),
        "join_requests": list(JoinRequest.objects.order_by("pk").values()),
        "audit_entries": AuditEntry.objects.count(),
        "subscriptions": list(Subscription.objects.order_by("pk").values()),
        "invoices": list(Invoice.objects.order_by("pk").values()),
        "users": list(User.objects.order_by("pk").values_list("pk", "email", "is_active")),
        "perks": list(Perk.objects.order_by("pk").values()),
        "redemptions": list(Redemption.objects.order_by("pk").values()),
    }


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# Every URL under /my/ that names an organisation or one of its objects ---------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: Callable[[Tenant], str]
    # What a successful POST would send: a refused request must not be refused merely for lacking it.
    data: Callable[[Tenant], dict]
    admin_only: bool = True
    changes_state: bool = True
    # The state the organisation's own admin needs for the POST to succeed (a live membership to change, ...).
    prepare: Callable[[Tenant], None] | None = None
    # The POST succeeds only with Stripe configured (the local fake), not in demo mode.
    stripe: bool = False

    def __str__(self) -> str:
        return self.name


def _profile_data(tenant: Tenant) -> dict:
    return {
        "name": "Hijacked Ltd",
        "organisation_type": OrganisationType.CHARITY,
        "size_band": SizeBand.LARGE,
        "description": "Defaced.",
        "email_domains": tenant.organisation.email_domains,  # a new domain needs an address verified there
        "directory_opt_in": "on",
        "public_fields": ["description"],
        "billing_email": "attacker@attacker.example",
    }


ENDPOINTS = [
    Endpoint(
        "overview",
        lambda t: reverse("membership:overview", args=[t.slug]),
        lambda t: {},
        admin_only=False,
        changes_state=False,
    ),
    Endpoint("profile", lambda t: reverse("membership:profile", args=[t.slug]), _profile_data),
    Endpoint(
        "colleagues",
        lambda t: reverse("membership:colleagues", args=[t.slug]),
        lambda t: {},
        admin_only=False,
        changes_state=False,
    ),
    Endpoint(
        "invite",
        lambda t: reverse("membership:invite", args=[t.slug]),
        lambda t: {"email": "intruder@attacker.example", "role": Role.ADMIN},
    ),
    Endpoint(
        "hand_over",
        lambda t: reverse("membership:hand_over", args=[t.slug]),
        lambda t: {"to": t.member_membership.pk},
    ),
    Endpoint(
        "change_role",
        lambda t: reverse("membership:change_role", args=[t.slug, t.member_membership.pk]),
        lambda t: {"role": Role.ADMIN},
    ),
    Endpoint("remove", lambda t: reverse("membership:remove", args=[t.slug, t.member_membership.pk]), lambda t: {}),
    Endpoint(
        "resend_invitation",
        lambda t: reverse("membership:resend_invitation", args=[t.slug, t.invitation.pk]),
        lambda t: {},
    ),
    Endpoint(
        "revoke_invitation",
        lambda t: reverse("membership:revoke_invitation", args=[t.slug, t.invitation.pk]),
        lambda t: {},
    ),
    Endpoint(
        "decide_join_request",
        lambda t: reverse("membership:decide_join_request", args=[t.slug, t.join_request.pk]),
        lambda t: {"decision": "approve"},
    ),
    Endpoint("leave", lambda t: reverse("membership:leave", args=[t.slug]), lambda t: {}, admin_only=False),
    Endpoint(
        "billing",
        lambda t: reverse("membership:billing", args=[t.slug]),
        lambda t: {},
        admin_only=False,
        changes_state=False,
    ),
    Endpoint(
        "start_membership",
        lambda t: reverse("membership:start_membership", args=[t.slug]),
        lambda t: {
            "tier": Tier.objects.get(slug="growth").pk,
            "interval": "year",
            "payment_method": "invoice",
            "po_number": "PO-1234",
        },
    ),
    # In demo mode "change card" goes back to the billing page; it never changes anything here.
    Endpoint(
        "manage_card", lambda t: reverse("membership:manage_card", args=[t.slug]), lambda t: {}, changes_state=False
    ),
    Endpoint(
        "benefits:organisation_perks",
        lambda t: reverse("benefits:organisation_perks", args=[t.slug]),
        lambda t: {},
        admin_only=False,
        changes_state=False,
    ),
    Endpoint("benefits:offers", lambda t: reverse("benefits:offers", args=[t.slug]), lambda t: {}, changes_state=False),
    Endpoint(
        "benefits:offer_new",
        lambda t: reverse("benefits:offer_new", args=[t.slug]),
        lambda t: {**_offer_data("Intruder"), "summary": "Defaced."},
    ),
    Endpoint(
        "benefits:offer_edit",
        lambda t: reverse("benefits:offer_edit", args=[t.slug, t.offer.pk]),
        lambda t: {**_offer_data("Intruder"), "summary": "Defaced."},
    ),
    Endpoint(
        "benefits:offer_withdraw",
        lambda t: reverse("benefits:offer_withdraw", args=[t.slug, t.offer.pk]),
        lambda t: {},
    ),
    Endpoint(
        "change_tier",
        lambda t: reverse("membership:change_tier", args=[t.slug]),
        lambda t: {"tier": Tier.objects.get(slug="growth").pk},
        prepare=lambda t: _subscribe(t, "card", on_starter=True),
    ),
    Endpoint(
        "keep_tier",
        lambda t: reverse("membership:keep_tier", args=[t.slug]),
        lambda t: {},
        prepare=lambda t: _subscribe(t, "invoice", starter_at_renewal=True),
    ),
    Endpoint(
        "switch_to_invoice",
        lambda t: reverse("membership:switch_to_invoice", args=[t.slug]),
        lambda t: {"po_number": "PO-1"},
        prepare=lambda t: _subscribe(t, "card"),
    ),
    Endpoint(
        "switch_to_card",
        lambda t: reverse("membership:switch_to_card", args=[t.slug]),
        lambda t: {},
        prepare=lambda t: _subscribe(t, "invoice"),
    ),
    Endpoint(
        "cancel_membership",
        lambda t: reverse("membership:cancel_membership", args=[t.slug]),
        lambda t: {},
        prepare=lambda t: _subscribe(t, "card"),
    ),
    Endpoint(
        "resume_membership",
        lambda t: reverse("membership:resume_membership", args=[t.slug]),
        lambda t: {},
        prepare=lambda t: _subscribe(t, "card", cancel_at_period_end=True),
    ),
    Endpoint(
        "withdraw_application",
        lambda t: reverse("membership:withdraw_application", args=[t.slug]),
        lambda t: {},
        prepare=lambda t: _subscribe(t, "invoice", status=Subscription.Status.PENDING),
    ),
    Endpoint(
        "pay_online",
        lambda t: reverse("membership:pay_online", args=[t.slug]),
        lambda t: {"payment_method": "card"},
        prepare=lambda t: _subscribe(t, "card"),  # recorded before online payment: no Stripe ids
        stripe=True,
    ),
]


def _subscribe(
    tenant: Tenant, method: str, *, on_starter: bool = False, starter_at_renewal: bool = False, **fields
) -> None:
    """An active membership of Growth for the tenant; with ``on_starter``, of a cheaper tier to move up from; with
    ``starter_at_renewal``, moving down to it at renewal."""
    from datetime import timedelta

    from django.utils import timezone

    tier = Tier.objects.get(slug="growth")
    if on_starter or starter_at_renewal:
        starter = Tier.objects.create(name="Starter", slug="starter")
        TierPrice.objects.create(
            tier=starter, organisation_type=OrganisationType.SME, size_band=SizeBand.SMALL, annual_pence=40_000
        )
        tier, fields["scheduled_tier"] = (starter, None) if on_starter else (tier, starter)
    now = timezone.now()
    fields.setdefault("status", Subscription.Status.ACTIVE)
    Subscription.objects.create(
        organisation=tenant.organisation,
        tier=tier,
        payment_method=method,
        amount_pence=90_000,
        current_period_start=now - timedelta(days=30),
        current_period_end=now + timedelta(days=335),
        **fields,
    )


ADMIN_ENDPOINTS = [endpoint for endpoint in ENDPOINTS if endpoint.admin_only]
INTRUDERS = ["b_admin", "b_member", "outsider", "a_former_member"]


def _portal_urls_naming_an_organisation() -> set[str]:
    """Every URL name, in any app, whose path runs under /my/org/<slug>/."""
    found = set()

    def walk(patterns, prefix: str, namespace: str):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route, pattern.namespace or namespace)
            elif pattern.name and route.startswith("my/org/<slug:slug>/"):
                yield pattern.name if namespace == "membership" else f"{namespace}:{pattern.name}"

    found.update(walk(get_resolver().url_patterns, "", ""))
    return found


def test_every_organisation_url_in_the_portal_is_covered():
    """A new URL under /my/org/<slug>/, from any app, must be added to ENDPOINTS, so it is tested here too."""
    scoped = _portal_urls_naming_an_organisation()
    assert len(scoped) > 15
    assert scoped == {endpoint.name for endpoint in ENDPOINTS}


def _request(client, method: str, endpoint: Endpoint, target: Tenant):
    url = endpoint.url(target)
    if method == "GET":
        return client.get(url)
    return client.post(url, endpoint.data(target))


# Positive control: the URLs and payloads above are real, so a 404 below means a refusal ------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_the_organisations_own_admin_reaches_every_url(client, world, endpoint, request):
    user = world.a.member if endpoint.name == "leave" else world.a.admin  # the only admin may not leave
    if endpoint.stripe:
        request.getfixturevalue("fake_stripe")
    client.force_login(user)
    if endpoint.prepare:
        endpoint.prepare(world.a)
    before = snapshot()

    response = _request(client, "POST", endpoint, world.a)

    assert response.status_code in (200, 302), response.status_code
    assert response.status_code != 302 or not response["Location"].startswith(LOGIN)
    assert not [m for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
    assert (snapshot() != before) == endpoint.changes_state


# Another organisation's people, and people with no organisation, get 404 and change nothing -------------


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("intruder", INTRUDERS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_other_organisations_users_get_404_and_change_nothing(client, world, endpoint, intruder, method):
    client.force_login(world.user(intruder))
    before = snapshot()

    response = _request(client, method, endpoint, world.a)

    assert response.status_code == 404
    assert world.a.organisation.name.encode() not in response.content
    assert snapshot() == before
    assert client.session.get("current_organisation") != world.a.organisation.pk


@pytest.mark.parametrize("intruder", INTRUDERS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_a_post_with_the_intruders_own_ids_under_another_slug_gets_404(client, world, endpoint, intruder):
    """b_admin sends B's own ids (which they may act on) under A's slug: still A's URL, still 404."""
    client.force_login(world.user(intruder))
    before = snapshot()

    response = client.post(endpoint.url(_with_slug_of(world.b, world.a)), endpoint.data(world.b))

    assert response.status_code == 404
    assert snapshot() == before


def _with_slug_of(ids_from: Tenant, slug_from: Tenant) -> Tenant:
    """A tenant carrying one organisation's object ids and another's slug."""
    return Tenant(**{**ids_from.__dict__, "organisation": slug_from.organisation})


# An admin of A putting B's ids into A's URLs and forms ------------------------------------------------


# (URL name, which of B's objects goes into A's URL, what a successful POST would send)
MIRRORED = [
    ("change_role", "member_membership", {"role": Role.ADMIN}),
    ("change_role", "admin_membership", {"role": Role.MEMBER}),
    ("remove", "member_membership", {}),
    ("remove", "admin_membership", {}),
    ("resend_invitation", "invitation", {}),
    ("revoke_invitation", "invitation", {}),
    ("decide_join_request", "join_request", {"decision": "approve"}),
    ("decide_join_request", "join_request", {"decision": "decline"}),
    ("benefits:offer_edit", "offer", {**_offer_data("Intruder"), "summary": "Defaced."}),
    ("benefits:offer_withdraw", "offer", {}),
]


@pytest.mark.parametrize(("endpoint_name", "object_of_b", "data"), MIRRORED)
def test_an_admin_gets_404_for_another_organisations_ids_under_their_own_slug(
    client, world, endpoint_name, object_of_b, data
):
    client.force_login(world.a.admin)
    before = snapshot()
    name = endpoint_name if ":" in endpoint_name else f"membership:{endpoint_name}"
    url = reverse(name, args=[world.a.slug, getattr(world.b, object_of_b).pk])

    response = client.post(url, data)

    assert response.status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize("object_of_b", ["member_membership", "admin_membership"])
def test_handing_the_admin_role_to_another_organisations_member_gets_404(client, world, object_of_b):
    client.force_login(world.a.admin)
    before = snapshot()

    response = client.post(
        reverse("membership:hand_over", args=[world.a.slug]), {"to": getattr(world.b, object_of_b).pk}
    )

    assert response.status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize("asker", ["a_admin", "a_member", "outsider"])
def test_asking_to_join_an_organisation_whose_domain_you_have_not_verified_is_refused(client, world, asker):
    user = world.user(asker)
    # An unverified address at B's domain proves nothing.
    user.emailaddress_set.create(email=f"{asker}@beta-analytics.example", verified=False, primary=False)
    client.force_login(user)
    before = snapshot()

    response = client.post(
        reverse("membership:ask_to_join"), {"organisation": world.b.organisation.pk, "message": "Let me in"}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("membership:ask_to_join")
    assert _messages(response) == ["You cannot ask to join that organisation with your verified addresses."]
    assert not JoinRequest.objects.filter(user=user, organisation=world.b.organisation).exists()
    assert snapshot() == before


def test_the_join_page_offers_only_organisations_of_your_verified_domains(client, world):
    client.force_login(world.outsider)
    response = client.get(reverse("membership:ask_to_join"))
    assert response.status_code == 200
    for tenant in (world.a, world.b):
        assert tenant.organisation.name.encode() not in response.content


# A member of A is not an admin of A ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("endpoint", ADMIN_ENDPOINTS, ids=str)
def test_a_member_gets_403_for_admin_actions_and_changes_nothing(client, world, endpoint, method):
    client.force_login(world.a.member)
    before = snapshot()

    response = _request(client, method, endpoint, world.a)

    assert response.status_code == 403
    assert snapshot() == before


def test_a_member_sees_no_admin_controls_or_pending_people(client, world):
    client.force_login(world.a.member)
    response = client.get(reverse("membership:colleagues", args=[world.a.slug]))
    assert response.status_code == 200
    content = response.content.decode()
    assert world.a.invitee_email not in content
    assert world.a.requester.email not in content
    assert reverse("membership:invite", args=[world.a.slug]) not in content
    assert reverse("membership:profile", args=[world.a.slug]) not in content


# Nobody logged in ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_anonymous_visitors_are_sent_to_log_in_and_change_nothing(client, world, endpoint, method):
    before = snapshot()

    response = _request(client, method, endpoint, world.a)

    assert response.status_code == 302
    assert response["Location"].startswith(f"{LOGIN}?next=")
    assert snapshot() == before


# What each organisation's own pages show -----------------------------------------------------------------


@pytest.mark.parametrize("user_name", ["a_admin", "a_member"])
def test_an_organisations_pages_show_nothing_of_another_organisation(client, world, user_name):
    client.force_login(world.user(user_name))
    b_private = [
        world.b.organisation.name,
        world.b.slug,
        world.b.admin.email,
        world.b.member.email,
        world.b.invitee_email,
        world.b.requester.email,
        world.outsider.email,
    ]
    pages = ["overview", "colleagues", "leave"] + (["profile"] if user_name == "a_admin" else [])
    for page in pages:
        response = client.get(reverse(f"membership:{page}", args=[world.a.slug]))
        assert response.status_code == 200, page
        content = response.content.decode()
        for secret in b_private:
            assert secret not in content, (page, secret)
    response = client.get(reverse("membership:portal"))
    assert response.status_code == 302
    assert response["Location"] == reverse("membership:overview", args=[world.a.slug])


def test_the_portal_never_sends_you_to_an_organisation_you_do_not_belong_to(client, world):
    client.force_login(world.b.member)
    session = client.session
    session["current_organisation"] = world.a.organisation.pk  # e.g. left over from an earlier session
    session.save()
    response = client.get(reverse("membership:portal"))
    assert response["Location"] == reverse("membership:overview", args=[world.b.slug])


# The back office -----------------------------------------------------------------------------------------


# Wagtail admin URLs that are not the back office's data: static assets, the log-in and log-out handover,
# and the password-reset flow that works for anyone who is logged out.
NOT_BACK_OFFICE = {
    "wagtailadmin_login",
    "wagtailadmin_logout",
    "wagtailadmin_sprite",
    "wagtailadmin_javascript_catalog",
    "wagtailadmin_password_reset",
    "wagtailadmin_password_reset_done",
    "wagtailadmin_password_reset_complete",
}
FIXED_ADMIN_PATHS = ["/admin/", "/admin/pages/", "/admin/users/", "/admin/snippets/", "/admin/reports/"]


def _admin_paths_without_arguments() -> list[str]:
    """Every /admin/ URL that can be reversed with no arguments, plus a fixed list."""
    found = set(FIXED_ADMIN_PATHS)

    def walk(patterns, namespace: str):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}:{pattern.namespace}" if namespace and pattern.namespace else pattern.namespace
                yield from walk(pattern.url_patterns, inner or namespace)
            elif isinstance(pattern, URLPattern) and pattern.name and pattern.name not in NOT_BACK_OFFICE:
                yield f"{namespace}:{pattern.name}" if namespace else pattern.name

    for name in walk(get_resolver().url_patterns, ""):
        try:
            path = reverse(name)
        except NoReverseMatch:
            continue  # needs arguments
        if path.startswith("/admin/"):
            found.add(path)
    return sorted(found)


ADMIN_PATHS = _admin_paths_without_arguments()


def test_the_back_office_list_is_not_empty():
    assert len(ADMIN_PATHS) > 30
    assert {"/admin/", "/admin/pages/", "/admin/users/"} <= set(ADMIN_PATHS)


def _admin_paths_for_organisation(organisation: Organisation) -> list[str]:
    """The back office's own pages about one organisation (edit, delete, history, its record...)."""
    found = set()

    def walk(patterns, namespace: str):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}:{pattern.namespace}" if namespace and pattern.namespace else pattern.namespace
                yield from walk(pattern.url_patterns, inner or namespace)
            elif isinstance(pattern, URLPattern) and pattern.name:
                yield f"{namespace}:{pattern.name}" if namespace else pattern.name

    for name in walk(get_resolver().url_patterns, ""):
        try:
            path = reverse(name, kwargs={"pk": organisation.pk})
        except NoReverseMatch:
            continue
        if path.startswith("/admin/") and "organisation" in path:
            found.add(path)
    return sorted(found)


@pytest.mark.parametrize("user_name", ["a_admin", "a_member", "outsider", "a_former_member"])
def test_members_and_outsiders_reach_no_part_of_the_back_office(client, world, user_name):
    client.force_login(world.user(user_name))
    before = snapshot()
    reached = {}
    for path in ADMIN_PATHS + _admin_paths_for_organisation(world.a.organisation):
        for method in (client.get, client.post):
            response = method(path, follow=True)
            if response.status_code != 403 or len(response.redirect_chain) > 1:
                reached[(method.__name__, path)] = (response.status_code, response.redirect_chain)
    assert reached == {}
    assert snapshot() == before


# The invitation link ----------------------------------------------------------------------------------


def _key(invitation: Invitation) -> str:
    invitation.refresh_from_db()
    return services.invitation_key(invitation)


@pytest.mark.parametrize("user_name", ["b_member", "b_admin", "outsider", "a_member", "a_former_member"])
def test_an_invitation_for_another_address_is_refused_and_creates_no_membership(client, world, user_name):
    user = world.user(user_name)
    key = _key(world.a.invitation)
    client.force_login(user)
    memberships_before = OrganisationMember.objects.filter(user=user).count()
    before = snapshot()

    response = client.post(reverse("membership:invitation", args=[key]))

    assert response.status_code == 302
    assert response["Location"] == reverse("membership:invitation", args=[key])
    assert _messages(response) == [
        f"This invitation was sent to {world.a.invitee_email}. Log in with that address to accept it."
    ]
    assert OrganisationMember.objects.filter(user=user).count() == memberships_before
    assert snapshot() == before
    # The link still works for the person it was sent to.
    assert services.find_invitation(key) == world.a.invitation


def _tampered_keys(world: World) -> list[str]:
    good = _key(world.a.invitation)
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    return [
        flipped,  # a changed signature
        good + "x",
        "not-a-key",
        # Signed with the right salt but naming B's invitation with A's nonce.
        signing.dumps({"i": world.b.invitation.pk, "n": world.a.invitation.nonce}, salt=services.INVITATION_SALT),
        # A's invitation, signed with another salt (as if lifted from another signed value of the site).
        signing.dumps({"i": world.a.invitation.pk, "n": world.a.invitation.nonce}, salt="another.salt"),
    ]


@pytest.mark.parametrize("user_name", ["b_member", "outsider", None])
def test_a_tampered_invitation_key_is_a_404_page(client, world, user_name):
    if user_name:
        client.force_login(world.user(user_name))
    before = snapshot()
    for key in _tampered_keys(world):
        for method in (client.get, client.post):
            response = method(reverse("membership:invitation", args=[key]))
            assert response.status_code == 404, key
            assert b"This invitation cannot be used" in response.content
            assert world.a.organisation.name.encode() not in response.content
            assert world.b.organisation.name.encode() not in response.content
    assert snapshot() == before


# The personal data export --------------------------------------------------------------------------------


def _export(client, user: User) -> dict:
    client.force_login(user)
    response = client.get(reverse("accounts:export"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    return json.loads(response.content)


def _organisations_ever(user: User) -> set[str]:
    """The organisations a person belongs to or once belonged to: their own history may name these."""
    return set(OrganisationMember.objects.filter(user=user).values_list("organisation__name", flat=True))


@pytest.mark.parametrize("user_name", ["a_admin", "a_member", "b_admin", "b_member", "outsider", "a_former_member"])
def test_the_export_holds_nothing_of_another_organisation(client, world, user_name):
    user = world.user(user_name)
    data = _export(client, user)
    text = json.dumps(data)
    assert data["account"]["email"] == user.email
    mine = _organisations_ever(user)
    others = set(Organisation.objects.values_list("name", flat=True)) - mine
    strangers = [u for u in world.everyone if u.pk != user.pk and not (_organisations_ever(u) & mine)]
    assert others and strangers
    for secret in [*others, *(u.email for u in strangers), world.a.invitee_email, world.b.invitee_email]:
        assert secret not in text, secret


@pytest.mark.parametrize(
    "user_name",
    [
        "a_admin",
        "a_member",  # joined by invitation
        "b_admin",
        "b_member",  # joined by a request an admin approved: the history must not name that admin
        "outsider",
        "a_former_member",  # removed by an admin: likewise
    ],
)
def test_the_export_holds_no_other_persons_email_address(client, world, user_name):
    user = world.user(user_name)
    text = json.dumps(_export(client, user))
    assert user.email in text
    for other in world.everyone:
        if other.pk != user.pk:
            assert other.email not in text, other.email
