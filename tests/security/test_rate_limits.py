"""Rate limits: each configured limit lets N attempts through, refuses the next with 429, and the refused one
changes nothing. The numbers are read from the settings, so the tests prove the limits as configured."""

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.urls import reverse

from accounts.models import User
from benefits.models import Perk, Provider, Redemption
from config import ratelimit
from membership.models import ActivityEvent, AuditEntry, Invitation, OrganisationMember, Tier
from tests import factories
from tests.benefits.conftest import make_perk, person_at, subscribe

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "tyne-bridge-lights-2026"


def allowed(limits: dict, action: str, rate_index: int = 0) -> int:
    """How many attempts the action's first (per-minute) rate lets through."""
    return int(limits[action].split(",")[rate_index].split("/")[0])


@pytest.fixture
def clock(monkeypatch):
    """The limiter's clock, held still (so no window ends mid-test) and moved on when a test says."""

    class Clock:
        now = 21_990 * 86_400.0  # the start of a day, so every window starts afresh

        def advance(self, seconds: float) -> None:
            self.now += seconds

    held = Clock()
    monkeypatch.setattr(ratelimit, "_now", lambda: held.now)
    return held


# The limiter itself ------------------------------------------------------------------------------------------


def test_it_parses_rates_in_allauths_notation():
    assert ratelimit.parse_rates("10/m, 100/d") == [ratelimit.Rate(10, 60), ratelimit.Rate(100, 86_400)]
    assert ratelimit.parse_rates("5/15m") == [ratelimit.Rate(5, 900)]
    assert ratelimit.parse_rates("") == []


def test_a_refused_attempt_does_not_use_up_the_longer_allowance(settings, clock):
    settings.RATE_LIMITS = {"demo": "2/m,3/d"}
    assert [ratelimit.consume("demo", "u1") for _ in range(3)] == [0, 0, 60]
    clock.advance(60)
    assert ratelimit.consume("demo", "u1") == 0  # the third of the day: the refused one was not counted
    assert ratelimit.consume("demo", "u1") > 3600  # the day's three are used up: wait for tomorrow
    assert ratelimit.consume("demo", "u2") == 0  # someone else is counted on their own


# Log-in, sign-up and password resets (allauth, ACCOUNT_RATE_LIMITS) ----------------------------------------


def test_the_login_limit_refuses_the_next_attempt_from_one_address(client, member):
    n = allowed(settings.ACCOUNT_RATE_LIMITS, "login")
    for _ in range(n):
        assert client.post("/accounts/login/", {}).status_code == 200  # an empty form, refused by the form
    response = client.post("/accounts/login/", {"login": member.email, "password": factories.PASSWORD})

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    member.refresh_from_db()
    assert member.last_login is None


def test_the_signup_limit_refuses_the_next_sign_up_and_creates_no_account(client, db, mailoutbox):
    n = allowed(settings.ACCOUNT_RATE_LIMITS, "signup")
    for i in range(n):
        response = client.post(
            reverse("account_signup"),
            {"email": f"person{i}@wearside.example", "password1": NEW_PASSWORD, "password2": "mismatch-123456"},
        )
        assert response.status_code == 200
    response = client.post(
        reverse("account_signup"),
        {"email": "founder@wearside.example", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert response.status_code == 429
    assert "try again" in response.content.decode().lower()
    assert not User.objects.exists()
    assert not EmailAddress.objects.exists()
    assert mailoutbox == []


def test_the_password_reset_limit_per_address_asked_for(client, member, mailoutbox):
    n = allowed(settings.ACCOUNT_RATE_LIMITS, "reset_password", rate_index=1)  # per e-mail address
    for _ in range(n):
        assert client.post(reverse("account_reset_password"), {"email": member.email}).status_code == 302
    assert len(mailoutbox) == n

    response = client.post(reverse("account_reset_password"), {"email": member.email})

    assert response.status_code == 429
    assert len(mailoutbox) == n


def test_the_password_reset_limit_per_client_address(client, db, mailoutbox):
    n = allowed(settings.ACCOUNT_RATE_LIMITS, "reset_password")  # per IP, whichever addresses are asked for
    for i in range(n):
        assert client.post(reverse("account_reset_password"), {"email": f"p{i}@x.example"}).status_code == 302
    sent = len(mailoutbox)

    response = client.post(reverse("account_reset_password"), {"email": "another@x.example"})

    assert response.status_code == 429
    assert len(mailoutbox) == sent


def test_the_reset_from_key_limit_refuses_the_next_new_password_and_keeps_the_old(client, member, mailoutbox):
    client.post(reverse("account_reset_password"), {"email": member.email})
    link = mailoutbox[-1].body.split("/accounts/password/reset/key/")[1].split()[0]
    form_path = client.get(f"/accounts/password/reset/key/{link}")["Location"]
    n = allowed(settings.ACCOUNT_RATE_LIMITS, "reset_password_from_key")
    # The link's GET above was not counted; these are, though each is refused by the form.
    for _ in range(n):
        assert client.post(form_path, {"password1": NEW_PASSWORD, "password2": "mismatch"}).status_code == 200

    response = client.post(form_path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert response.status_code == 429
    member.refresh_from_db()
    assert member.check_password(factories.PASSWORD)


def test_the_login_code_limit_sends_no_more_codes_to_one_address(client, member, mailoutbox):
    n = allowed(settings.ACCOUNT_RATE_LIMITS, "request_login_code", rate_index=1)  # per e-mail address
    for _ in range(n):
        client.post(reverse("account_request_login_code"), {"email": member.email})
        client.cookies.clear()  # start a fresh log-in each time, as a script would
    assert len(mailoutbox) == n

    response = client.post(reverse("account_request_login_code"), {"email": member.email})

    # allauth refuses this one on the form (so as not to tell a script which addresses exist) rather than 429.
    assert response.status_code == 200
    assert "too many" in response.content.decode().lower()
    assert len(mailoutbox) == n


def test_the_limits_can_be_set_from_the_environment(monkeypatch):
    import importlib

    import config.settings as settings_module

    monkeypatch.setenv("RATE_LIMIT_LOGIN", "7/m/ip")
    monkeypatch.setenv("RATE_LIMIT_REDEMPTIONS", "3/m")
    monkeypatch.setenv("RATE_LIMIT_INVITATIONS", "4/h")
    monkeypatch.setenv("RATE_LIMIT_ACCOUNT_DELETION", "2/m")
    reloaded = importlib.reload(settings_module)
    try:
        assert reloaded.ACCOUNT_RATE_LIMITS["login"] == "7/m/ip"
        assert reloaded.RATE_LIMITS == {
            "redeem_perk": "3/m",
            "invite_colleague": "4/h",
            "confirm_account_deletion": "2/m",
        }
    finally:
        monkeypatch.undo()
        importlib.reload(settings_module)


# Perk redemptions ---------------------------------------------------------------------------------------------


@pytest.fixture
def catalogue(db):
    """Twelve perks any member may redeem, and a member organisation."""
    provider = Provider.objects.create(name="Cloudforge", slug="cloudforge", contact_email="p@cloudforge.example")
    perks = [make_perk(provider, f"Offer {n}", Perk.Method.SHARED_CODE) for n in range(12)]
    organisation = factories.make_organisation("Tyne Analytics")
    subscribe(organisation, Tier.objects.create(name="Growth", slug="growth"))
    return perks, organisation


def _redeem(client, perk, organisation):
    return client.post(reverse("benefits:redeem", args=[perk.slug]), {"organisation": organisation.slug})


def test_the_redemption_limit_refuses_the_next_redemption_and_records_nothing(client, catalogue, clock):
    perks, organisation = catalogue
    mia = person_at(organisation, "mia@tyne-analytics.example")
    client.force_login(mia)
    n = allowed(settings.RATE_LIMITS, "redeem_perk")
    assert n < len(perks)
    for perk in perks[:n]:
        assert _redeem(client, perk, organisation).status_code == 302
    activity = ActivityEvent.objects.count()

    refused = _redeem(client, perks[n], organisation)

    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert "redeemed a lot of perks" in refused.content.decode()
    assert Redemption.objects.count() == n
    assert not Redemption.objects.filter(perk=perks[n]).exists()
    assert ActivityEvent.objects.count() == activity
    assert Perk.objects.get(pk=perks[n].pk).redemption_count == 0

    # A colleague is counted on their own, and the person may go on once the minute is over.
    client.force_login(person_at(organisation, "sam@tyne-analytics.example"))
    assert _redeem(client, perks[n], organisation).status_code == 302
    client.force_login(mia)
    clock.advance(60)
    assert _redeem(client, perks[n], organisation).status_code == 302


def test_the_redemption_limit_follows_the_setting(client, catalogue, settings, clock):
    perks, organisation = catalogue
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "redeem_perk": "2/m"}
    client.force_login(person_at(organisation, "mia@tyne-analytics.example"))
    assert [_redeem(client, perk, organisation).status_code for perk in perks[:3]] == [302, 302, 429]
    assert Redemption.objects.count() == 2


# Colleague invitations ----------------------------------------------------------------------------------------


@pytest.fixture
def admin_org(org_admin):
    return org_admin.memberships.get().organisation


def test_the_invitation_limit_refuses_the_next_invitation_and_sends_nothing(
    client, admin_org, org_admin, mailoutbox, django_capture_on_commit_callbacks, clock
):
    client.force_login(org_admin)
    invite = reverse("membership:invite", args=[admin_org.slug])
    n = allowed(settings.RATE_LIMITS, "invite_colleague")
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(n):
            assert client.post(invite, {"email": f"colleague{i}@tyne.example", "role": "member"}).status_code == 302
    audits, sent = AuditEntry.objects.count(), len(mailoutbox)
    assert Invitation.objects.count() == n

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        refused = client.post(invite, {"email": "one-more@tyne.example", "role": "member"})

    assert refused.status_code == 429
    assert "invitations in a short time" in refused.content.decode()
    assert callbacks == []
    assert Invitation.objects.count() == n
    assert AuditEntry.objects.count() == audits
    assert len(mailoutbox) == sent


def test_resending_an_invitation_counts_towards_the_same_limit(
    client, admin_org, org_admin, settings, mailoutbox, django_capture_on_commit_callbacks, clock
):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "invite_colleague": "2/h"}
    client.force_login(org_admin)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("membership:invite", args=[admin_org.slug]), {"email": "a@tyne.example", "role": "member"})
        invitation = Invitation.objects.get()
        resend = reverse("membership:resend_invitation", args=[admin_org.slug, invitation.pk])
        assert client.post(resend).status_code == 302
    nonce, sent = Invitation.objects.get().nonce, len(mailoutbox)

    with django_capture_on_commit_callbacks(execute=True):
        refused = client.post(resend)

    assert refused.status_code == 429
    assert Invitation.objects.get().nonce == nonce
    assert len(mailoutbox) == sent
    # Withdrawing an invitation is never limited.
    revoke = reverse("membership:revoke_invitation", args=[admin_org.slug, invitation.pk])
    assert client.post(revoke).status_code == 302
    assert Invitation.objects.get().revoked_at is not None
    assert OrganisationMember.objects.filter(organisation=admin_org).count() == 1


def test_the_account_deletion_limit_stops_guessing_the_password_with_a_borrowed_session(client, member, clock):
    client.force_login(member)
    n = allowed(settings.RATE_LIMITS, "confirm_account_deletion")
    for guess in range(n):
        wrong = client.post(reverse("accounts:delete"), {"password": f"guess-{guess}"})
        assert wrong.status_code == 200 and "That is not your password." in wrong.content.decode()

    refused = client.post(reverse("accounts:delete"), {"password": factories.PASSWORD})

    assert refused.status_code == 429 and "confirming your account" in refused.content.decode()
    assert User.objects.get(pk=member.pk).email == member.email  # not erased
    clock.advance(60)
    assert client.post(reverse("accounts:delete"), {"password": factories.PASSWORD}).status_code == 302
    assert User.objects.get(pk=member.pk).email != member.email  # erased now


def test_the_failed_login_limit_per_account_holds_however_the_address_is_spelt(db):
    """allauth counts failed log-ins per account (``login_failed``), not only per client address: guesses from
    many addresses, each spelling the e-mail differently, use up the same allowance."""
    from django.test import Client

    member = factories.make_user("mia@tyne.example")
    allowed = int(settings.ACCOUNT_RATE_LIMITS["login_failed"].split(",")[1].split("/")[0])
    control = Client(REMOTE_ADDR="10.9.9.9")  # the odd spelling logs in when nothing was guessed before
    control.post("/accounts/login/", {"login": "  MiA@tYnE.eXaMpLe ", "password": factories.PASSWORD})
    assert control.session.get("_auth_user_id") == str(member.pk)
    spellings = ["MIA@TYNE.EXAMPLE", " mia@tyne.example ", "Mia@Tyne.Example", "mia@TYNE.example\t", "mIa@tyne.example"]
    for n in range(allowed):
        Client(REMOTE_ADDR=f"10.0.0.{n + 1}").post(
            "/accounts/login/", {"login": spellings[n % len(spellings)], "password": f"guess-{n}"}
        )

    client = Client(REMOTE_ADDR="10.0.1.1")
    response = client.post("/accounts/login/", {"login": "  MiA@tYnE.eXaMpLe ", "password": factories.PASSWORD})

    assert "_auth_user_id" not in client.session
    assert response.status_code in (200, 429)
