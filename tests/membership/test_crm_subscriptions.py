"""The staff CRM's view of subscriptions: tier, status and renewal month on the organisations list."""

import re
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from membership.models import Organisation, Subscription, Tier
from membership.permissions import grant_membership_team_permissions
from tests import factories

INDEX = "/admin/membership/organisation/"


@pytest.fixture
def crm(client, staff_user):
    grant_membership_team_permissions(Group.objects.get(name="Membership team"))
    client.force_login(staff_user)
    return client


@pytest.fixture
def tiers(db):
    return {
        "growth": Tier.objects.create(name="Growth", slug="growth", seat_limit=10),
        "enterprise": Tier.objects.create(name="Enterprise", slug="enterprise"),
    }


def _subscribe(organisation, tier, status, *, ends: datetime, created: datetime | None = None) -> Subscription:
    return Subscription.objects.create(
        organisation=organisation,
        tier=tier,
        status=status,
        amount_pence=90_000,
        current_period_end=ends,
        created_at=created or ends - timedelta(days=365),
    )


def _names(response) -> set[str]:
    html = response.content.decode()
    return {name for name in ("Alpha", "Bravo", "Charlie", "Delta") if re.search(rf">\s*{name}\s*<", html)}


@pytest.fixture
def world(tiers):
    march = timezone.make_aware(datetime(timezone.now().year + 1, 3, 15))
    june = timezone.make_aware(datetime(timezone.now().year + 1, 6, 15))
    alpha = factories.make_organisation("Alpha")
    bravo = factories.make_organisation("Bravo")
    charlie = factories.make_organisation("Charlie")
    factories.make_organisation("Delta")  # never subscribed
    _subscribe(alpha, tiers["growth"], "active", ends=march)
    _subscribe(bravo, tiers["enterprise"], "grace", ends=june)
    # Charlie lapsed from Enterprise, then came back on Growth: the newest subscription is what counts.
    _subscribe(charlie, tiers["enterprise"], "lapsed", ends=march - timedelta(days=400))
    _subscribe(charlie, tiers["growth"], "pending", ends=june, created=timezone.now())
    return tiers


def test_it_filters_by_tier_of_the_live_subscription(crm, world):
    assert _names(crm.get(INDEX, {"tier": world["growth"].pk})) == {"Alpha", "Charlie"}
    assert _names(crm.get(INDEX, {"tier": world["enterprise"].pk})) == {"Bravo"}


@pytest.mark.parametrize(
    ("status", "expected"),
    [("active", {"Alpha"}), ("grace", {"Bravo"}), ("pending", {"Charlie"}), ("lapsed", set()), ("none", {"Delta"})],
)
def test_it_filters_by_membership_status(crm, world, status, expected):
    assert _names(crm.get(INDEX, {"status": status})) == expected


def test_it_filters_by_renewal_month(crm, world):
    assert _names(crm.get(INDEX, {"renewal_month": 3})) == {"Alpha"}
    assert _names(crm.get(INDEX, {"renewal_month": 6})) == {"Bravo", "Charlie"}


def test_the_list_shows_tier_status_and_renewal(crm, world):
    html = crm.get(INDEX).content.decode()
    row = re.split(r">\s*Bravo\s*<", html, maxsplit=1)[1].split("</tr>", 1)[0]
    assert "Enterprise" in row and "In grace period" in row


def test_the_record_shows_the_subscription_and_its_history(crm, world):
    charlie = Organisation.objects.get(name="Charlie")
    html = crm.get(f"/admin/membership/organisation/{charlie.pk}/record/").content.decode()
    assert "Pending payment" in html
    assert "Earlier subscriptions" in html and "Lapsed" in html


def test_the_list_runs_the_same_queries_with_ten_times_the_subscriptions(crm, tiers):
    def count(n: int) -> int:
        Subscription.objects.all().delete()
        Organisation.objects.all().delete()
        Organisation.objects.bulk_create(
            [
                Organisation(name=f"Org {i:04d}", slug=f"org-{i}", organisation_type="sme", size_band="1-9")
                for i in range(n)
            ]
        )
        ends = timezone.now() + timedelta(days=30)
        Subscription.objects.bulk_create(
            [
                Subscription(
                    organisation=o, tier=tiers["growth"], status="active", amount_pence=1, current_period_end=ends
                )
                for o in Organisation.objects.all()
            ]
        )
        with CaptureQueriesContext(connection) as queries:
            assert crm.get(INDEX).status_code == 200
        return len(queries)

    assert count(50) == count(500)
