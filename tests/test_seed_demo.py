import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.core.management import call_command

from accounts.models import User
from benefits.models import Perk, PerkCode, Provider, Redemption
from membership.models import (
    FollowUp,
    Invoice,
    Note,
    Organisation,
    OrganisationMember,
    OrganisationType,
    SizeBand,
    Subscription,
    Tier,
    TierPrice,
)

MODELS = (
    Perk,
    PerkCode,
    Provider,
    Redemption,
    Organisation,
    User,
    OrganisationMember,
    EmailAddress,
    Authenticator,
    Note,
    FollowUp,
    Organisation.specialisms.through,
    Invoice,
    Subscription,
    Tier,
    TierPrice,
)


def _counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


@pytest.mark.django_db
def test_running_it_twice_leaves_the_same_counts(capsys):
    call_command("seed_demo", orgs=40)
    first = _counts()
    call_command("seed_demo", orgs=40)
    assert _counts() == first
    assert first["Organisation"] == 40


@pytest.mark.django_db
def test_it_covers_every_type_and_size_across_the_region(capsys):
    call_command("seed_demo", orgs=60)
    organisations = Organisation.objects.all()
    assert {o.organisation_type for o in organisations} == set(OrganisationType.values)
    assert {o.size_band for o in organisations} == set(SizeBand.values)
    assert len({o.town for o in organisations}) >= 10
    # Every organisation has an admin, contacts at its own domain, specialisms, a manager and notes.
    assert not organisations.filter(notes__isnull=True).exists()
    assert not organisations.filter(specialisms__isnull=True).exists()
    assert not organisations.filter(account_manager__isnull=True).exists()
    statuses = set(Subscription.objects.values_list("status", flat=True))
    assert statuses == set(Subscription.Status.values)
    assert organisations.filter(subscriptions__isnull=True).exists()  # some never subscribed
    for organisation in organisations:
        members = list(organisation.memberships.select_related("user"))
        assert any(m.role == OrganisationMember.Role.ADMIN for m in members), organisation
        assert all(m.user.email.endswith(f"@{organisation.slug}.example") for m in members)


@pytest.mark.django_db
def test_it_prints_a_staff_login_that_works(client, capsys):
    call_command("seed_demo", orgs=5)
    output = capsys.readouterr().out
    email = output.split("e-mail:", 1)[1].split()[0]
    password = output.split("password:", 1)[1].split()[0]
    recovery_code = output.split("recovery codes:", 1)[1].split()[0]

    response = client.post("/accounts/login/", {"login": email, "password": password})
    assert response["Location"] == "/accounts/2fa/authenticate/"
    response = client.post("/accounts/2fa/authenticate/", {"code": recovery_code})
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_a_larger_run_extends_a_smaller_one(capsys):
    call_command("seed_demo", orgs=10)
    first_names = set(Organisation.objects.values_list("name", flat=True))
    call_command("seed_demo", orgs=25)
    assert first_names < set(Organisation.objects.values_list("name", flat=True))
    assert Organisation.objects.count() == 25


@pytest.mark.django_db
def test_it_adds_perks_from_partners_and_members_with_redemptions(capsys):
    call_command("seed_demo", orgs=60)
    published = Perk.objects.published()
    assert published.count() >= 25
    assert published.filter(provider__organisation__isnull=False).count() >= 3
    assert published.filter(provider__organisation__isnull=True).values("provider").distinct().count() >= 10
    assert set(Perk.objects.values_list("status", flat=True)) >= {"published", "pending", "rejected"}
    assert set(published.values_list("method", flat=True)) == set(Perk.Method.values)
    assert Redemption.objects.count() >= 50
    # Every redemption went through the service: counters and code pools agree with the rows.
    for perk in Perk.objects.all():
        assert perk.redemption_count == perk.redemptions.count()
        assert perk.codes.filter(redemption__isnull=False).count() == (
            perk.redemptions.count() if perk.method == Perk.Method.UNIQUE_CODE else 0
        )
