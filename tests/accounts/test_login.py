from django.urls import reverse

from tests.factories import PASSWORD, current_totp, make_user, totp_secret

LOGIN = "/accounts/login/"


def _login(client, email, password=PASSWORD):
    return client.post(LOGIN, {"login": email, "password": password})


def test_it_logs_in_with_email_and_password(client, member):
    response = _login(client, "MEMBER@tyne-analytics.example")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(member.pk)


def test_it_refuses_the_sixth_failed_login_within_five_minutes(client, member):
    for _ in range(5):
        response = _login(client, member.email, "wrong-password")
        assert response.status_code == 200
        assert "_auth_user_id" not in client.session
    # The sixth attempt is refused even with the right password.
    response = _login(client, member.email)
    assert response.status_code in (200, 429)
    assert "_auth_user_id" not in client.session
    assert b"Too many failed login attempts" in response.content


def test_the_failed_login_limit_is_per_account(client, member, outsider):
    for _ in range(5):
        _login(client, member.email, "wrong-password")
    response = _login(client, outsider.email)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(outsider.pk)


def test_an_unverified_user_cannot_log_in(client, db, mailoutbox):
    user = make_user("new@wearside-robotics.example", verified=False)
    response = _login(client, user.email)
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert "_auth_user_id" not in client.session
    # A fresh verification e-mail is sent instead.
    assert [m.to for m in mailoutbox] == [[user.email]]


def test_the_django_admin_login_hands_over_to_allauth(client, superuser):
    response = client.post("/django-admin/login/", {"username": superuser.email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert "_auth_user_id" not in client.session


def test_the_wagtail_login_hands_over_to_allauth(client, staff_user):
    response = client.post("/admin/login/", {"username": staff_user.email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert "_auth_user_id" not in client.session


def test_the_admin_login_redirect_refuses_other_sites(client, db):
    response = client.get("/admin/login/", {"next": "https://evil.example/"})
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"


def test_the_admin_login_redirect_keeps_a_secure_visit_on_https(client, db):
    response = client.get("/admin/login/", {"next": "http://testserver/admin/pages/"}, secure=True)
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    response = client.get("/admin/login/", {"next": "https://testserver/admin/pages/"}, secure=True)
    assert response["Location"] == "/accounts/login/?next=https%3A%2F%2Ftestserver%2Fadmin%2Fpages%2F"


def test_staff_with_mfa_are_asked_for_their_code_at_login(client, staff_user):
    response = _login(client, staff_user.email)
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_authenticate")
    assert "_auth_user_id" not in client.session

    response = client.post(reverse("mfa_authenticate"), {"code": "000000"})
    assert "_auth_user_id" not in client.session

    response = client.post(reverse("mfa_authenticate"), {"code": current_totp(totp_secret(staff_user))})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.session["_auth_user_id"] == str(staff_user.pk)
    assert client.get("/admin/").status_code == 200


def test_a_staff_user_without_mfa_cannot_reach_the_back_office(client, staff_without_mfa):
    client.force_login(staff_without_mfa)
    for path in ("/admin/", "/admin/pages/", "/django-admin/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith(reverse("mfa_activate_totp")), path


def test_a_member_reaches_no_part_of_the_back_office(client, member):
    client.force_login(member)
    for path in (
        "/admin/",
        "/admin/pages/",
        "/admin/users/",
        "/django-admin/",
        "/django-admin/accounts/user/",
    ):
        response = client.get(path, follow=True)
        assert response.status_code == 403, path
        assert len(response.redirect_chain) <= 1, path  # refused, never sent round in a loop
    response = client.post("/admin/pages/add/cms/homepage/1/", {"title": "Hijack"}, follow=True)
    assert response.status_code == 403


def test_the_django_admin_is_for_superusers_only(client, staff_user, superuser):
    client.force_login(staff_user)
    assert client.get("/django-admin/login/").status_code == 403
    response = client.get("/django-admin/")
    assert response.status_code == 302 and "/django-admin/login/" in response["Location"]
    client.force_login(superuser)
    assert client.get("/django-admin/").status_code == 200


def test_anonymous_visitors_are_sent_to_log_in(client, db):
    response = client.get("/admin/pages/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert response.status_code == 200
