"""Perk fixtures: tiers, member organisations in every membership state, and perks of every kind."""

from datetime import timedelta

import pytest
from django.utils import timezone

from benefits.models import Category, Perk, PerkCode, Provider
from membership.models import OrganisationMember, Subscription, Tier
from tests import factories

Status = Subscription.Status


@pytest.fixture
def tiers(db) -> dict[str, Tier]:
    return {
        slug: Tier.objects.create(name=slug.title(), slug=slug, sort_order=order)
        for order, slug in enumerate(["community", "growth", "enterprise"])
    }


def subscribe(organisation, tier: Tier, status: str = Status.ACTIVE) -> Subscription:
    now = timezone.now()
    ended = status in (Status.LAPSED, Status.CANCELLED)
    return Subscription.objects.create(
        organisation=organisation,
        tier=tier,
        status=status,
        amount_pence=90_000,
        current_period_start=now - timedelta(days=100),
        current_period_end=now + (timedelta(days=-20) if ended else timedelta(days=265)),
        ended_at=now - timedelta(days=20) if ended else None,
    )


def person_at(organisation, email: str, role=OrganisationMember.Role.MEMBER):
    user = factories.make_user(email, first_name=email.split("@")[0].title())
    factories.add_member(organisation, user, role)
    return user


@pytest.fixture
def growth_member(tiers):
    """Mia, at Tyne Analytics, an active Growth member."""
    organisation = factories.make_organisation("Tyne Analytics")
    subscribe(organisation, tiers["growth"])
    return person_at(organisation, "mia@tyne-analytics.example")


@pytest.fixture
def community_member(tiers):
    organisation = factories.make_organisation("Wear Start")
    subscribe(organisation, tiers["community"])
    return person_at(organisation, "sam@wear-start.example")


@pytest.fixture
def lapsed_member(tiers):
    organisation = factories.make_organisation("Lapsed Labs")
    subscribe(organisation, tiers["growth"], Status.LAPSED)
    return person_at(organisation, "lee@lapsed-labs.example")


@pytest.fixture
def provider(db) -> Provider:
    return Provider.objects.create(
        name="Cloudforge", slug="cloudforge", website="https://cloudforge.example", contact_email="p@cloudforge.example"
    )


def make_perk(provider: Provider, title: str, method=Perk.Method.UNIQUE_CODE, *, tiers=(), codes=0, **fields) -> Perk:
    fields.setdefault("category", Category.SOFTWARE)
    fields.setdefault("status", Perk.Status.PUBLISHED)
    if method == Perk.Method.SHARED_CODE:
        fields.setdefault("shared_code", "SHARED-SECRET-42")
    if method == Perk.Method.LINK:
        fields.setdefault("redemption_url", "https://cloudforge.example/secret-offer-link")
    perk = Perk.objects.create(
        provider=provider,
        title=title,
        slug=title.lower().replace(" ", "-"),
        summary=f"{title}: a summary.",
        value_line="20% off for 12 months",
        terms="Members only.",
        method=method,
        **fields,
    )
    perk.eligible_tiers.set(tiers)
    PerkCode.objects.bulk_create([PerkCode(perk=perk, code=f"CODE-{perk.pk}-{n:03d}") for n in range(codes)])
    return perk
