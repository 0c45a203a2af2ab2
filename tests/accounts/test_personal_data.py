import json

import pytest
from allauth.account.models import EmailAddress

from accounts import services
from accounts.models import ConsentRecord, User
from membership import services as membership_services
from membership.models import AuditEntry, OrganisationMember
from tests.factories import PASSWORD, add_member, make_organisation, make_user

Role = OrganisationMember.Role


@pytest.fixture
def person(db):
    user = make_user("mia@tyne-analytics.example", first_name="Mia", last_name="Robson")
    organisation = make_organisation("Tyne Analytics")
    admin = make_user("boss@tyne-analytics.example")
    add_member(organisation, admin, Role.ADMIN)
    add_member(organisation, user)
    membership_services.record_audit(
        "membership.member.joined", "Mia Robson joined Tyne Analytics", organisation=organisation, subject=user
    )
    return user


def test_marketing_consent_is_off_until_given(person):
    assert services.current_consents(person) == {"newsletter": False, "events": False, "offers": False}


def test_consent_is_recorded_per_channel_with_time_and_source(client, person):
    client.force_login(person)
    response = client.post(
        "/my/account/", {"profile-first_name": "Mia", "profile-last_name": "Robson", "consent-events": "on"}
    )
    assert response.status_code == 302
    record = ConsentRecord.objects.get()
    assert (record.channel, record.granted, record.source) == ("events", True, "my account")
    assert record.recorded_at is not None

    # Saving again unchanged adds nothing; withdrawing adds a record and wins.
    client.post("/my/account/", {"profile-first_name": "Mia", "consent-events": "on"})
    assert ConsentRecord.objects.count() == 1
    client.post("/my/account/", {"profile-first_name": "Mia"})
    assert services.current_consents(person)["events"] is False
    assert ConsentRecord.objects.count() == 2


def test_the_export_holds_all_my_personal_data_and_nobody_elses(client, person):
    services.record_consents(person, {"newsletter": True}, source="sign-up")
    client.force_login(person)
    response = client.get("/my/account/export/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="my-data-')
    data = json.loads(response.content)
    assert data["account"]["email"] == "mia@tyne-analytics.example"
    assert data["account"]["email_addresses"] == [
        {"email": "mia@tyne-analytics.example", "verified": True, "primary": True}
    ]
    assert data["marketing_consent"][0]["channel"] == "newsletter"
    assert data["membership"]["organisations"][0]["organisation"] == "Tyne Analytics"
    assert data["membership"]["history"][0]["action"] == "membership.member.joined"
    assert "boss@tyne-analytics.example" not in response.content.decode()


def test_deleting_my_account_erases_personal_data_and_keeps_records(client, person):
    services.record_consents(person, {"offers": True}, source="sign-up")
    client.force_login(person)
    response = client.post("/my/account/delete/", {"password": "wrong"})
    assert response.status_code == 200
    assert "That is not your password" in response.content.decode()
    assert User.objects.get(pk=person.pk).is_active

    response = client.post("/my/account/delete/", {"password": PASSWORD})
    assert response["Location"] == "/"
    erased = User.objects.get(pk=person.pk)
    assert erased.email == f"erased-{person.pk}@erased.invalid"
    assert (erased.first_name, erased.last_name, erased.is_active) == ("", "", False)
    assert not erased.has_usable_password()
    assert not EmailAddress.objects.filter(user=erased).exists()
    assert not ConsentRecord.objects.filter(user=erased).exists()
    # The organisation keeps its history, without the name.
    membership = OrganisationMember.objects.get(user=erased)
    assert membership.left_at is not None
    summaries = list(AuditEntry.objects.filter(subject=erased).values_list("summary", flat=True))
    assert summaries and not any("Mia Robson" in s or "mia@" in s for s in summaries)
    # Logged out everywhere, and the old password no longer works.
    assert "_auth_user_id" not in client.session
    assert not client.login(username="mia@tyne-analytics.example", password=PASSWORD)


def test_the_only_admin_must_hand_over_before_deleting(client, db):
    admin = make_user("boss@tyne-analytics.example")
    organisation = make_organisation("Tyne Analytics")
    add_member(organisation, admin, Role.ADMIN)
    add_member(organisation, make_user("mia@tyne-analytics.example"))
    client.force_login(admin)
    response = client.get("/my/account/delete/")
    assert "You are the only admin of Tyne Analytics" in response.content.decode()
    client.post("/my/account/delete/", {"password": PASSWORD})
    assert User.objects.get(pk=admin.pk).is_active
    with pytest.raises(services.AccountDeletionRefused):
        services.delete_account(admin)


def test_a_sole_person_can_delete_and_the_organisation_stays(client, db):
    founder = make_user("solo@bede.example")
    organisation = make_organisation("Bede Robotics")
    add_member(organisation, founder, Role.ADMIN)
    services.delete_account(founder)
    assert organisation.active_members().count() == 0
    assert organisation.__class__.objects.filter(pk=organisation.pk).exists()


def test_deleting_my_account_erases_my_address_from_invitations(client, db, django_capture_on_commit_callbacks):
    from membership.models import Invitation

    admin = make_user("boss@tyne-analytics.example")
    organisation = make_organisation("Tyne Analytics")
    add_member(organisation, admin, Role.ADMIN)
    invitee = make_user("kim@tyne-analytics.example")
    accepted = membership_services.invite_colleague(organisation, admin, invitee.email)
    membership_services.accept_invitation(accepted, invitee)
    other = make_organisation("Wear Cloud")
    other_admin = make_user("admin@wear-cloud.example")
    add_member(other, other_admin, Role.ADMIN)
    pending = membership_services.invite_colleague(other, other_admin, "KIM@tyne-analytics.example")

    services.delete_account(invitee)

    assert not Invitation.objects.filter(email__icontains="kim@").exists()
    pending.refresh_from_db()
    assert pending.revoked_at is not None


def test_a_sole_admin_who_deletes_their_account_withdraws_the_invitations_nobody_could_manage(
    db, django_capture_on_commit_callbacks
):
    from membership.models import Invitation

    founder = make_user("solo@bede.example")
    organisation = make_organisation("Bede Robotics")
    add_member(organisation, founder, Role.ADMIN)
    with django_capture_on_commit_callbacks():
        waiting = membership_services.invite_colleague(organisation, founder, "new.starter@bede.example")
    other = make_organisation("Wear Cloud")
    add_member(other, founder, Role.ADMIN)
    add_member(other, make_user("admin@wear-cloud.example"), Role.ADMIN)
    with django_capture_on_commit_callbacks():
        elsewhere = membership_services.invite_colleague(other, founder, "friend@wear-cloud.example")

    services.delete_account(founder)

    waiting.refresh_from_db()
    assert waiting.revoked_at is not None
    assert Invitation.objects.pending().filter(organisation=organisation).count() == 0
    entry = AuditEntry.objects.get(organisation=organisation, action="membership.invitation.revoked")
    assert "its only admin deleted their account" in entry.summary
    assert entry.changes == {"open_invitations": [1, 0]}
    # Where an admin remains, their colleagues' invitations stand.
    elsewhere.refresh_from_db()
    assert elsewhere.revoked_at is None


def test_someone_with_no_password_is_shown_how_to_confirm_deleting_their_account(client, person):
    person.set_unusable_password()  # imported, and logs in with codes sent by e-mail
    person.save()
    client.force_login(person)

    page = client.get("/my/account/delete/").content.decode()

    assert 'type="password"' not in page  # no password to type: the form would only ever refuse it
    assert 'href="/accounts/password/set/?next=/my/account/delete/"' in page
    # Once a password is set, the page asks for it and deletes the account.
    client.post("/accounts/password/set/", {"password1": "a-new-pass-phrase-9", "password2": "a-new-pass-phrase-9"})
    assert 'type="password"' in client.get("/my/account/delete/").content.decode()
    response = client.post("/my/account/delete/", {"password": "a-new-pass-phrase-9"})
    assert response["Location"] == "/"
    assert not User.objects.get(pk=person.pk).is_active
