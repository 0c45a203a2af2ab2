"""Redeeming a perk: who may, what they get, and that caps and codes are exact."""

import html
import threading

import pytest
from django.db import close_old_connections, connection
from django.urls import reverse

from benefits import services
from benefits.models import Perk, PerkCode, Redemption
from membership.models import ActivityEvent, ActivityKind
from tests import factories
from tests.benefits.conftest import make_perk, person_at, subscribe
from tests.conftest import require

pytestmark = pytest.mark.django_db

SECRETS = ["CODE-", "SHARED-SECRET-42", "secret-offer-link"]


def text(response) -> str:
    return html.unescape(response.content.decode())


def org(user):
    return user.memberships.get().organisation


def redeem(client, user, perk, **data):
    client.force_login(user)
    return client.post(reverse("benefits:redeem", args=[perk.slug]), {"organisation": org(user).slug, **data})


def test_it_gives_an_eligible_member_a_unique_code_and_records_it(
    client, growth_member, provider, mailoutbox, django_capture_on_commit_callbacks
):
    perk = make_perk(provider, "Cloud credits", codes=3)

    with django_capture_on_commit_callbacks(execute=True):
        response = redeem(client, growth_member, perk)

    assert response.status_code == 302
    redemption = Redemption.objects.get()
    assert (redemption.person, redemption.organisation) == (growth_member, org(growth_member))
    assert redemption.code == PerkCode.objects.get(redemption=redemption).code == f"CODE-{perk.pk}-000"
    page = client.get(response["Location"])
    assert redemption.code in page.content.decode()
    assert "Your code is below" in page.content.decode()
    perk.refresh_from_db()
    assert perk.redemption_count == 1
    event = ActivityEvent.objects.get(kind=ActivityKind.PERK_REDEEMED)
    assert (event.organisation, event.person, event.detail) == (org(growth_member), growth_member, "Cloud credits")
    assert [m.to for m in mailoutbox] == [[growth_member.email]]
    assert redemption.code in mailoutbox[0].body


def test_redeeming_again_shows_the_same_code_and_takes_no_other(client, growth_member, provider):
    perk = make_perk(provider, "Cloud credits", codes=3)
    redeem(client, growth_member, perk)
    redeem(client, growth_member, perk)

    assert Redemption.objects.count() == 1
    assert PerkCode.objects.filter(redemption__isnull=False).count() == 1
    assert ActivityEvent.objects.filter(kind=ActivityKind.PERK_REDEEMED).count() == 1


def test_a_shared_code_and_a_link_are_revealed_only_after_redeeming(client, growth_member, provider):
    shared = make_perk(provider, "Shared", Perk.Method.SHARED_CODE)
    link = make_perk(provider, "Linked", Perk.Method.LINK)
    client.force_login(growth_member)

    before = (
        client.get(shared.get_absolute_url()).content.decode() + client.get(link.get_absolute_url()).content.decode()
    )
    assert "SHARED-SECRET-42" not in before and "secret-offer-link" not in before

    redeem(client, growth_member, shared)
    redeem(client, growth_member, link)
    after = (
        client.get(shared.get_absolute_url()).content.decode() + client.get(link.get_absolute_url()).content.decode()
    )
    assert "SHARED-SECRET-42" in after and "secret-offer-link" in after


def test_a_contact_request_goes_to_the_provider_with_the_members_message(
    client, growth_member, provider, mailoutbox, django_capture_on_commit_callbacks
):
    perk = make_perk(provider, "Tax review", Perk.Method.CONTACT)

    refused = redeem(client, growth_member, perk, message="   ")
    assert refused.status_code == 400  # something to add, not a refusal
    assert "Tell the provider what you would like" in refused.content.decode()
    assert not Redemption.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        redeem(client, growth_member, perk, message="We claim R&D credits each year.")
    to_provider = next(m for m in mailoutbox if m.to == ["p@cloudforge.example"])
    assert "We claim R&D credits each year." in to_provider.body
    assert to_provider.reply_to == [growth_member.email]
    assert "Mia" in to_provider.body


@pytest.mark.parametrize(
    ("who", "reason"),
    [
        ("community_member", "This offer is for Growth and Enterprise members; Wear Start is on the Community tier."),
        ("lapsed_member", "Lapsed Labs's membership has lapsed, so its perks are paused."),
    ],
)
@pytest.mark.parametrize("method", [Perk.Method.UNIQUE_CODE, Perk.Method.SHARED_CODE, Perk.Method.LINK])
def test_an_ineligible_or_lapsed_organisation_is_told_why_and_gets_nothing(
    client, request, tiers, provider, who, reason, method
):
    user = request.getfixturevalue(who)
    perk = make_perk(provider, "Growth deal", method, tiers=[tiers["growth"], tiers["enterprise"]], codes=2)
    client.force_login(user)

    page = client.get(perk.get_absolute_url())
    posted = redeem(client, user, perk)
    pages = [page, posted, client.get(reverse("benefits:catalogue")), client.get(reverse("benefits:my_redemptions"))]

    assert reason in text(page)
    assert posted.status_code == 403
    assert reason in text(posted)
    for response in pages:
        for secret in SECRETS:
            assert secret not in response.content.decode()
    assert not Redemption.objects.exists()
    assert not PerkCode.objects.filter(redemption__isnull=False).exists()


def test_people_without_a_member_organisation_cannot_redeem(client, outsider, tiers, provider):
    perk = make_perk(provider, "Anyone", Perk.Method.SHARED_CODE)
    pending_org = factories.make_organisation("Pending Ltd")
    subscribe(pending_org, tiers["growth"], "pending")
    waiting = person_at(pending_org, "wait@pending.example")

    client.force_login(outsider)
    response = client.post(reverse("benefits:redeem", args=[perk.slug]))
    assert response.status_code == 403
    assert "Perks are for the people of member organisations" in response.content.decode()

    response = redeem(client, waiting, perk)
    assert response.status_code == 403
    assert "starts when its first payment arrives" in response.content.decode()
    assert not Redemption.objects.exists()


def test_anonymous_visitors_see_the_terms_and_are_sent_to_log_in(client, tiers, provider):
    perk = make_perk(provider, "Teaser", Perk.Method.SHARED_CODE)

    page = client.get(perk.get_absolute_url())
    posted = client.post(reverse("benefits:redeem", args=[perk.slug]))

    assert "Members only." in page.content.decode()
    assert "Log in to redeem" in page.content.decode()
    assert "SHARED-SECRET-42" not in page.content.decode()
    assert posted.status_code == 302 and posted["Location"].startswith("/accounts/login/")
    assert not Redemption.objects.exists()


def test_a_member_cannot_redeem_for_an_organisation_they_do_not_belong_to(client, growth_member, provider, tiers):
    other = factories.make_organisation("Someone Else")
    subscribe(other, tiers["growth"])
    perk = make_perk(provider, "Cloud credits", codes=2)
    client.force_login(growth_member)

    response = client.post(reverse("benefits:redeem", args=[perk.slug]), {"organisation": other.slug})

    assert response.status_code == 400
    assert not Redemption.objects.exists()
    with pytest.raises(services.RedemptionRefused, match="an organisation you belong to"):
        services.redeem_perk(perk, growth_member, other)


def test_the_cap_per_organisation_counts_everyone_at_it(client, growth_member, provider):
    colleague = person_at(org(growth_member), "col@tyne-analytics.example")
    perk = make_perk(provider, "Desk days", codes=5, cap_per_organisation=1)

    redeem(client, growth_member, perk)
    response = redeem(client, colleague, perk)

    assert response.status_code == 403
    assert "Tyne Analytics has already redeemed this offer." in response.content.decode()
    assert Redemption.objects.count() == 1


def test_the_total_cap_and_an_empty_pool_close_the_offer(client, growth_member, community_member, provider):
    capped = make_perk(provider, "Pitch slot", Perk.Method.SHARED_CODE, total_cap=1)
    pool = make_perk(provider, "Last code", codes=1)

    redeem(client, growth_member, capped)
    redeem(client, growth_member, pool)

    assert "This offer has been fully claimed." in redeem(client, community_member, capped).content.decode()
    assert "All the codes for this offer have been claimed." in redeem(client, community_member, pool).content.decode()
    assert Redemption.objects.count() == 2


def test_staff_hear_once_when_the_pool_runs_low(
    growth_member, community_member, provider, staff_user, mailoutbox, django_capture_on_commit_callbacks
):
    from django.contrib.auth.models import Group

    from benefits.permissions import grant_perks_team_permissions

    grant_perks_team_permissions(Group.objects.get(name="Membership team"))
    perk = make_perk(provider, "Helpdesk", codes=4, low_codes_threshold=3)

    with django_capture_on_commit_callbacks(execute=True):
        services.redeem_perk(perk, growth_member, org(growth_member))
        services.redeem_perk(perk, community_member, org(community_member))

    alerts = [m for m in mailoutbox if "running low" in m.subject]
    assert len(alerts) == 1
    assert alerts[0].to == [staff_user.email]
    assert "2 unused codes left" in alerts[0].body
    services.add_codes(perk, ["NEW-1", "NEW-2", "NEW-3"], staff_user)
    perk.refresh_from_db()
    assert perk.low_codes_alerted_at is None  # topped up: the next low point alerts again


def test_an_offer_outside_its_dates_cannot_be_redeemed_and_expires(client, growth_member, provider):
    from datetime import timedelta

    from django.utils import timezone

    today = timezone.localdate()
    ended = make_perk(provider, "Ended", Perk.Method.SHARED_CODE, ends_on=today - timedelta(days=1))
    future = make_perk(provider, "Future", Perk.Method.SHARED_CODE, starts_on=today + timedelta(days=3))

    assert "This offer ended on" in redeem(client, growth_member, ended).content.decode()
    assert "This offer opens on" in redeem(client, growth_member, future).content.decode()
    assert services.expire_perks() == 1
    assert services.expire_perks() == 0
    ended.refresh_from_db()
    assert ended.status == Perk.Status.EXPIRED
    assert not Redemption.objects.exists()


def test_draft_and_pending_perks_are_not_found_by_members(client, growth_member, provider):
    draft = make_perk(provider, "Draft", Perk.Method.SHARED_CODE, status=Perk.Status.DRAFT)
    client.force_login(growth_member)
    assert client.get(draft.get_absolute_url()).status_code == 404
    assert redeem(client, growth_member, draft).status_code == 404


def test_my_redemptions_lists_only_the_persons_own(client, growth_member, provider):
    colleague = person_at(org(growth_member), "col@tyne-analytics.example")
    perk = make_perk(provider, "Cloud credits", codes=2)
    mine = services.redeem_perk(perk, growth_member, org(growth_member)).redemption
    theirs = services.redeem_perk(perk, colleague, org(growth_member)).redemption
    client.force_login(growth_member)

    content = client.get(reverse("benefits:my_redemptions")).content.decode()

    assert mine.code in content
    assert theirs.code not in content


# Concurrency, on PostgreSQL ---------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_people_redeeming_the_last_code_at_once_make_one_redemption(tiers, provider):
    require(connection.vendor == "postgresql", "PostgreSQL (set DATABASE_URL) to redeem fifty times at once")
    perk = make_perk(provider, "Last code", codes=1)
    people = []
    for n in range(50):
        organisation = factories.make_organisation(f"Member {n}")
        subscribe(organisation, tiers["growth"])
        people.append((person_at(organisation, f"p{n}@member{n}.example"), organisation))
    barrier = threading.Barrier(50)
    outcomes: list[str] = []

    def attempt(person, organisation):
        try:
            barrier.wait()
            services.redeem_perk(perk, person, organisation)
            outcomes.append("redeemed")
        except services.RedemptionRefused as error:
            outcomes.append(str(error))
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=attempt, args=pair) for pair in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("redeemed") == 1
    assert outcomes.count("All the codes for this offer have been claimed.") == 49
    assert Redemption.objects.count() == 1
    perk.refresh_from_db()
    assert perk.redemption_count == 1
    assert PerkCode.objects.get().redemption == Redemption.objects.get()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_colleagues_at_once_stay_within_the_cap_per_organisation(tiers, provider):
    require(connection.vendor == "postgresql", "PostgreSQL (set DATABASE_URL) to redeem fifty times at once")
    perk = make_perk(provider, "Two per organisation", Perk.Method.SHARED_CODE, cap_per_organisation=2)
    organisation = factories.make_organisation("Busy Org")
    subscribe(organisation, tiers["growth"])
    people = [person_at(organisation, f"p{n}@busy.example") for n in range(50)]
    barrier = threading.Barrier(50)

    def attempt(person):
        try:
            barrier.wait()
            services.redeem_perk(perk, person, organisation)
        except services.RedemptionRefused:
            pass
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Redemption.objects.filter(organisation=organisation).count() == 2
