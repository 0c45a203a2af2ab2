"""The catalogue at /perks/: teasers for everyone, filters, and constant queries as it grows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from benefits import services
from benefits.models import Category, Perk, Provider
from tests.benefits.conftest import make_perk

pytestmark = pytest.mark.django_db


def titles(response) -> list[str]:
    return [perk.title for perk in response.context["page"].object_list]


@pytest.fixture
def catalogue(tiers, provider):
    other = Provider.objects.create(name="Quayside Works", slug="quayside-works")
    make_perk(provider, "Cloud credits", Perk.Method.SHARED_CODE, featured=True)
    make_perk(provider, "Helpdesk trial", Perk.Method.LINK, tiers=[tiers["growth"]])
    make_perk(other, "Hot desks", Perk.Method.CONTACT, category=Category.WORKSPACE)
    old = make_perk(other, "Meeting rooms", Perk.Method.SHARED_CODE, category=Category.WORKSPACE)
    Perk.objects.filter(pk=old.pk).update(published_at=timezone.now() - timezone.timedelta(days=90))
    make_perk(provider, "Draft deal", Perk.Method.SHARED_CODE, status=Perk.Status.DRAFT)
    make_perk(provider, "Waiting deal", Perk.Method.SHARED_CODE, status=Perk.Status.PENDING)
    return other


def test_anyone_sees_the_published_perks_as_teasers_with_a_way_to_join(client, catalogue):
    response = client.get(reverse("benefits:catalogue"))

    assert response.status_code == 200
    assert sorted(titles(response)) == ["Cloud credits", "Helpdesk trial", "Hot desks", "Meeting rooms"]
    content = response.content.decode()
    assert reverse("join") in content
    assert "SHARED-SECRET-42" not in content
    assert "secret-offer-link" not in content
    assert "Growth only" in content


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"category": Category.WORKSPACE}, ["Hot desks", "Meeting rooms"]),
        ({"provider": "quayside-works"}, ["Hot desks", "Meeting rooms"]),
        ({"q": "helpdesk"}, ["Helpdesk trial"]),
        ({"q": "quayside"}, ["Hot desks", "Meeting rooms"]),
        ({"featured": "on"}, ["Cloud credits"]),
        ({"new": "on"}, ["Cloud credits", "Helpdesk trial", "Hot desks"]),
        ({"category": Category.WORKSPACE, "new": "on"}, ["Hot desks"]),
        ({"category": "not-a-category"}, ["Cloud credits", "Helpdesk trial", "Hot desks", "Meeting rooms"]),
    ],
)
def test_it_filters_and_searches(client, catalogue, query, expected):
    response = client.get(reverse("benefits:catalogue"), query)
    assert sorted(titles(response)) == expected


def test_a_member_sees_which_perks_they_have_redeemed(client, growth_member, catalogue):
    perk = Perk.objects.get(title="Cloud credits")
    services.redeem_perk(perk, growth_member, growth_member.memberships.get().organisation)
    client.force_login(growth_member)

    response = client.get(reverse("benefits:catalogue"))

    assert response.context["redeemed"] == {perk.pk}
    assert "Redeeming for Tyne Analytics (Growth member)" in response.content.decode()


def _queries(client, path: str) -> int:
    # The header's page addresses are looked up once, then kept until a page is published: look them up on
    # another page, so the figure is the catalogue's own (and a visitor's copy of it is not yet cached).
    client.get(reverse("join"))
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


def _grow(provider, tiers, count: int) -> None:
    existing = Perk.objects.count()
    for n in range(existing, count):
        make_perk(provider, f"Perk number {n}", Perk.Method.SHARED_CODE, tiers=[tiers["growth"]], featured=n % 5 == 0)


@pytest.mark.parametrize("who", ["anonymous", "growth_member"])
def test_the_catalogue_runs_the_same_queries_with_20_and_200_perks(client, request, tiers, provider, who):
    if who != "anonymous":
        user = request.getfixturevalue(who)
        client.force_login(user)
        client.get(reverse("benefits:catalogue"))  # the session's first save is not the page's cost
    _grow(provider, tiers, 20)
    with_20 = _queries(client, reverse("benefits:catalogue"))
    _grow(provider, tiers, 200)
    with_200 = _queries(client, reverse("benefits:catalogue"))
    filtered = _queries(client, reverse("benefits:catalogue") + "?featured=on&q=perk&page=2")

    assert with_20 == with_200
    assert filtered == with_200
    assert with_200 <= 12
    assert with_200 >= (4 if who == "anonymous" else 8)  # the page was rendered, not served from the cache


def test_a_perk_page_runs_the_same_queries_however_many_codes_and_redemptions(client, growth_member, tiers, provider):
    perk = make_perk(provider, "Big pool", codes=5)
    client.force_login(growth_member)
    few = _queries(client, perk.get_absolute_url())
    make_perk(provider, "Other", codes=0)
    from benefits.models import PerkCode

    PerkCode.objects.bulk_create([PerkCode(perk=perk, code=f"X-{n}") for n in range(500)])
    many = _queries(client, perk.get_absolute_url())
    assert few == many


def test_a_first_time_visitor_gets_a_cached_page_that_follows_every_change(client, catalogue, tiers):
    first = client.get(reverse("benefits:catalogue"))
    with CaptureQueriesContext(connection) as captured:
        again = client.get(reverse("benefits:catalogue"))
    assert len(captured) == 0
    assert again.content == first.content

    perk = Perk.objects.get(title="Cloud credits")
    perk.title = "Cloud credits, doubled"
    perk.save()
    assert "Cloud credits, doubled" in client.get(reverse("benefits:catalogue")).content.decode()

    perk.eligible_tiers.set([tiers["enterprise"]])
    assert "Enterprise only" in client.get(reverse("benefits:catalogue")).content.decode()

    Perk.objects.filter(pk=perk.pk).update(ends_on=timezone.localdate() - timezone.timedelta(days=1))
    services.expire_perks()
    assert "Cloud credits, doubled" not in client.get(reverse("benefits:catalogue")).content.decode()


def test_logged_in_people_always_get_their_own_page(client, growth_member, catalogue):
    client.get(reverse("benefits:catalogue"))  # cached for visitors
    client.force_login(growth_member)

    response = client.get(reverse("benefits:catalogue"))

    assert "Redeeming for Tyne Analytics" in response.content.decode()
    assert "Log in" not in response.content.decode()
