import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.services import purge_unverified_accounts
from tests.factories import PASSWORD, add_member, current_totp, make_organisation, make_user

NEW_PASSWORD = "tyne-bridge-lights-2026"


def _link(message, path_prefix: str) -> str:
    match = re.search(rf"https?://[^/\s]+({re.escape(path_prefix)}\S+)", message.body)
    assert match, message.body
    return match.group(1)


@pytest.mark.django_db
def test_sign_up_needs_a_verified_address_before_the_first_log_in(client, mailoutbox):
    response = client.post(
        reverse("account_signup"),
        {"email": "Founder@Wearside-Robotics.example", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    user = User.objects.get()
    assert user.email == "founder@wearside-robotics.example"
    assert "_auth_user_id" not in client.session

    confirm_path = _link(mailoutbox[0], "/accounts/confirm-email/")
    assert client.get(confirm_path).status_code == 200
    client.post(confirm_path)
    assert EmailAddress.objects.get(user=user).verified

    response = client.post(reverse("account_login"), {"login": user.email, "password": NEW_PASSWORD})
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_a_sign_up_with_errors_keeps_what_was_typed(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "someone@example.org", "password1": NEW_PASSWORD, "password2": "something-else-entirely"},
    )
    assert response.status_code == 200
    assert not User.objects.exists()
    html = response.content.decode()
    assert 'value="someone@example.org"' in html
    assert 'aria-invalid="true"' in html


@pytest.mark.django_db
def test_it_logs_in_by_a_code_sent_by_email(client, member, mailoutbox):
    response = client.post(reverse("account_request_login_code"), {"email": member.email})
    assert response.status_code == 302
    body = mailoutbox[-1].body
    code = body.split("Please enter it in your open browser window.", 1)[1].split()[0]

    response = client.post(reverse("account_confirm_login_code"), {"code": "WRONG1"})
    assert "_auth_user_id" not in client.session
    response = client.post(reverse("account_confirm_login_code"), {"code": code})
    assert client.session["_auth_user_id"] == str(member.pk)


@pytest.mark.django_db
def test_it_resets_a_forgotten_password(client, member, mailoutbox):
    client.post(reverse("account_reset_password"), {"email": member.email})
    reset_path = _link(mailoutbox[-1], "/accounts/password/reset/key/")
    response = client.get(reset_path)
    assert response.status_code == 302  # allauth moves the key out of the URL into the session
    form_path = response["Location"]
    client.post(form_path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    member.refresh_from_db()
    assert member.check_password(NEW_PASSWORD)
    assert not member.check_password(PASSWORD)


@pytest.mark.django_db
def test_a_reset_for_an_unknown_address_reveals_nothing(client, db, mailoutbox):
    response = client.post(reverse("account_reset_password"), {"email": "nobody@example.org"})
    assert response.status_code == 302
    assert response["Location"] == reverse("account_reset_password_done")


@pytest.mark.django_db
def test_it_changes_the_email_address_once_the_new_one_is_verified(client, member, mailoutbox):
    client.force_login(member)
    response = client.post(reverse("account_email"), {"action_add": "", "email": "mia@new-employer.example"})
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.email == "member@tyne-analytics.example"  # not until verified

    client.post(_link(mailoutbox[-1], "/accounts/confirm-email/"))
    member.refresh_from_db()
    assert member.email == "mia@new-employer.example"


@pytest.mark.django_db
def test_any_member_can_set_up_an_authenticator_app_and_recovery_codes(client, member):
    client.post(reverse("account_login"), {"login": member.email, "password": PASSWORD})
    assert client.get(reverse("mfa_index")).status_code == 200
    # Setting up a second factor asks for the password again first.
    response = client.get(reverse("mfa_activate_totp"))
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    client.post(response["Location"], {"password": PASSWORD})
    response = client.get(reverse("mfa_activate_totp"))
    assert response.status_code == 200
    secret = response.context["form"].secret
    client.post(reverse("mfa_activate_totp"), {"code": current_totp(secret)})
    types = set(Authenticator.objects.filter(user=member).values_list("type", flat=True))
    assert types == {Authenticator.Type.TOTP, Authenticator.Type.RECOVERY_CODES}


@pytest.mark.django_db
def test_account_pages_use_the_site_layout(client, member):
    for name in ("account_login", "account_signup", "account_reset_password"):
        html = client.get(reverse(name)).content.decode()
        assert 'class="site-header"' in html, name
        assert "/static/css/site.css" in html, name
    client.force_login(member)
    html = client.get(reverse("account_email")).content.decode()
    assert 'class="account-menu"' in html


def test_a_second_user_cannot_take_an_address_in_another_case(db):
    make_user("taken@example.org")
    with pytest.raises(Exception):  # noqa: B017 - the database's case-insensitive unique constraint
        User.objects.create_user("TAKEN@example.org")


@pytest.mark.django_db
def test_the_purge_removes_only_abandoned_sign_ups_never_people_an_organisation_or_the_team_added(client):
    client.post(
        reverse("account_signup"),
        {"email": "abandoned@example.org", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    # The team made an account for someone (as an import does): no password until they set one, not verified.
    added = User.objects.create_user("added@example.org")
    EmailAddress.objects.create(user=added, email=added.email, verified=False, primary=True)
    # Someone who signed up and was then added to an organisation by the team, before verifying.
    colleague = make_user("colleague@example.org", verified=False)
    add_member(make_organisation("Wearside Robotics"), colleague)
    User.objects.update(date_joined=timezone.now() - timedelta(days=15))

    assert purge_unverified_accounts() == 1

    assert set(User.objects.values_list("email", flat=True)) == {added.email, colleague.email}
