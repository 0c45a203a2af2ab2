"""Who may read a members-only page, and what everyone else is told.

A members-only page is for people whose organisation is entitled now (an active membership, or one in its
payment retry or grace period: ``membership.renewals.entitled_tier``) and, when the page names tiers, whose
organisation's tier is one of them. Staff who work in the back office may read every page, to check what
they publish. A page read by an entitled member counts as engagement activity once per person, page and day.
"""

from dataclasses import dataclass
from enum import StrEnum

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.middleware import is_back_office_user
from membership.models import Organisation, Subscription, Tier
from membership.renewals import entitled_tier


class Refusal(StrEnum):
    LOG_IN = "log_in"
    NO_ORGANISATION = "no_organisation"
    NOT_A_MEMBER = "not_a_member"
    LAPSED = "lapsed"
    WRONG_TIER = "wrong_tier"


@dataclass(frozen=True)
class Access:
    """The answer for one person and page: allowed (and through which organisation), or refused and why."""

    allowed: bool
    refusal: Refusal | None = None
    organisation: Organisation | None = None
    tier: Tier | None = None
    tiers: tuple[Tier, ...] = ()


def check_access(page, user) -> Access:
    """Whether ``user`` may read ``page`` (a page with ``members_only`` and ``tiers``)."""
    if not getattr(page, "members_only", False):
        return Access(allowed=True)
    if not user.is_authenticated:
        return Access(allowed=False, refusal=Refusal.LOG_IN)
    if is_back_office_user(user):
        return Access(allowed=True)
    organisations = list(Organisation.objects.for_user(user).order_by("name"))
    if not organisations:
        return Access(allowed=False, refusal=Refusal.NO_ORGANISATION)
    tiers = tuple(page.tiers.all())
    wrong_tier = None
    for organisation in organisations:
        tier = entitled_tier(organisation)
        if tier is None:
            continue
        if not tiers or tier in tiers:
            return Access(allowed=True, organisation=organisation, tier=tier)
        wrong_tier = wrong_tier or Access(
            allowed=False, refusal=Refusal.WRONG_TIER, organisation=organisation, tier=tier, tiers=tiers
        )
    if wrong_tier:
        return wrong_tier
    lapsed = Subscription.objects.filter(
        organisation__in=organisations, status__in=[Subscription.Status.LAPSED, Subscription.Status.CANCELLED]
    ).exists()
    return Access(
        allowed=False,
        refusal=Refusal.LAPSED if lapsed else Refusal.NOT_A_MEMBER,
        organisation=organisations[0],
    )


def refuse_or_record(page, request: HttpRequest) -> HttpResponse | None:
    """The response refusing ``request`` the page, or None to serve it (recording the read when it counts)."""
    from cms.services import record_page_read

    access = check_access(page, request.user)
    if access.allowed:
        if access.organisation is not None and request.method == "GET":
            record_page_read(page, request.user, access.organisation)
        return None
    if access.refusal == Refusal.LOG_IN:
        return redirect_to_login(request.get_full_path())
    context = {
        "page": page,
        "access": access,
        "refusal": access.refusal,
        "join_url": reverse("join"),
        "tier_names": ", ".join(tier.name for tier in access.tiers),
    }
    return TemplateResponse(request, "cms/members_only_refused.html", context, status=403)
