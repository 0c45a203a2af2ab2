import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import User
from membership import services, tasks
from membership.models import (
    AuditEntry,
    Invitation,
    JoinRequest,
    OrganisationMember,
    OrganisationType,
    SizeBand,
    Subscription,
    Tier,
)
from membership.services import MembershipError
from tests.conftest import require, two_workers_at_once
from tests.factories import make_user

Role = OrganisationMember.Role


@pytest.fixture
def founder(db):
    return make_user("founder@tyne-analytics.example", first_name="Noah", last_name="Patel")


@pytest.fixture
def organisation(founder):
    return services.create_organisation(
        founder,
        name="Tyne Analytics",
        organisation_type=OrganisationType.SME,
        size_band=SizeBand.SMALL,
        email_domains="tyne-analytics.example",
    )


def _invite(organisation, actor, email, capture, role=Role.MEMBER):
    with capture(execute=True):
        return services.invite_colleague(organisation, actor, email, role)


def _key_from(message) -> str:
    return re.search(r"/my/invitations/([^/\s]+)/", message.body).group(1)


def test_creating_an_organisation_makes_the_creator_its_admin(founder, organisation):
    membership = OrganisationMember.objects.get(organisation=organisation, user=founder)
    assert membership.role == Role.ADMIN
    assert organisation.slug == "tyne-analytics"
    assert organisation.billing_email == founder.email
    assert AuditEntry.objects.filter(action="membership.organisation.created", organisation=organisation).exists()


def test_a_second_organisation_with_the_same_name_gets_its_own_address(founder, organisation):
    other = services.create_organisation(
        make_user("x@other.example"), name="Tyne Analytics", organisation_type="sme", size_band="1-9"
    )
    assert other.slug == "tyne-analytics-2"


def test_an_invitation_is_emailed_and_accepted_once(
    founder, organisation, mailoutbox, django_capture_on_commit_callbacks
):
    invitation = _invite(organisation, founder, "Mia@Tyne-Analytics.example", django_capture_on_commit_callbacks)
    assert invitation.email == "mia@tyne-analytics.example"
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["mia@tyne-analytics.example"]
    assert "Noah Patel invited you to join Tyne Analytics" in message.subject
    assert message.alternatives and "Accept the invitation" in message.alternatives[0][0]

    found = services.find_invitation(_key_from(message))
    assert found == invitation
    mia = make_user("mia@tyne-analytics.example")
    services.accept_invitation(found, mia)
    assert OrganisationMember.objects.get(organisation=organisation, user=mia).role == Role.MEMBER
    entry = AuditEntry.objects.get(action="membership.member.joined")
    assert entry.subject == mia and entry.organisation == organisation

    # The link cannot be used again, by anyone.
    with pytest.raises(MembershipError, match=r"not valid|replaced"):
        services.find_invitation(_key_from(message))
    with pytest.raises(MembershipError, match="already been used"):
        services.accept_invitation(found, mia)


def test_an_invitation_cannot_be_accepted_from_another_address(
    founder, organisation, mailoutbox, django_capture_on_commit_callbacks
):
    invitation = _invite(organisation, founder, "mia@tyne-analytics.example", django_capture_on_commit_callbacks)
    someone_else = make_user("someone@elsewhere.example")
    with pytest.raises(MembershipError, match=r"was sent to mia@tyne-analytics\.example"):
        services.accept_invitation(invitation, someone_else)
    # An unverified address of the right name is not enough either.
    impostor = make_user("mia@tyne-analytics.example", verified=False)
    with pytest.raises(MembershipError):
        services.accept_invitation(invitation, impostor)
    assert not OrganisationMember.objects.filter(user__in=[someone_else, impostor]).exists()


def test_an_invitation_expires(founder, organisation, django_capture_on_commit_callbacks):
    invitation = _invite(organisation, founder, "mia@tyne-analytics.example", django_capture_on_commit_callbacks)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    mia = make_user("mia@tyne-analytics.example")
    with pytest.raises(MembershipError, match="expired"):
        services.accept_invitation(invitation, mia)
    assert not OrganisationMember.objects.filter(user=mia).exists()


def test_resending_replaces_the_link_and_revoking_withdraws_it(
    founder, organisation, mailoutbox, django_capture_on_commit_callbacks
):
    invitation = _invite(organisation, founder, "mia@tyne-analytics.example", django_capture_on_commit_callbacks)
    first_key = _key_from(mailoutbox[0])
    # Inviting the same address again resends instead of creating a second invitation.
    _invite(organisation, founder, "MIA@tyne-analytics.example", django_capture_on_commit_callbacks)
    assert Invitation.objects.count() == 1
    second_key = _key_from(mailoutbox[1])
    assert first_key != second_key
    with pytest.raises(MembershipError, match="replaced"):
        services.find_invitation(first_key)
    assert services.find_invitation(second_key) == invitation

    services.revoke_invitation(invitation, founder)
    with pytest.raises(MembershipError):
        services.find_invitation(second_key)
    with pytest.raises(MembershipError, match="withdrawn"):
        services.accept_invitation(invitation, make_user("mia@tyne-analytics.example"))


def test_a_forged_key_is_refused(db):
    with pytest.raises(MembershipError, match="not valid"):
        services.find_invitation("eyJpIjoxLCJuIjoieCJ9:forged:signature")


def test_a_member_cannot_perform_admin_actions(founder, organisation, django_capture_on_commit_callbacks):
    invitation = _invite(organisation, founder, "mia@tyne-analytics.example", django_capture_on_commit_callbacks)
    mia = make_user("mia@tyne-analytics.example")
    mia_membership = services.accept_invitation(invitation, mia)
    founder_membership = OrganisationMember.objects.get(user=founder)

    attempts = [
        lambda: services.invite_colleague(organisation, mia, "x@tyne-analytics.example"),
        lambda: services.change_role(mia_membership, mia, Role.ADMIN),
        lambda: services.change_role(founder_membership, mia, Role.MEMBER),
        lambda: services.remove_member(founder_membership, mia),
        lambda: services.hand_over_admin(organisation, mia, founder_membership),
    ]
    for attempt in attempts:
        with pytest.raises(MembershipError, match="admin"):
            attempt()
    assert OrganisationMember.objects.get(user=mia).role == Role.MEMBER
    assert OrganisationMember.objects.get(user=founder).role == Role.ADMIN
    assert Invitation.objects.count() == 1


def test_the_last_admin_can_neither_leave_nor_be_demoted(founder, organisation):
    membership = OrganisationMember.objects.get(user=founder)
    with pytest.raises(MembershipError, match="only admin"):
        services.remove_member(membership, founder)
    with pytest.raises(MembershipError, match="only admin"):
        services.change_role(membership, founder, Role.MEMBER)
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN and membership.left_at is None


def test_handing_over_the_admin_role(founder, organisation, django_capture_on_commit_callbacks):
    invitation = _invite(organisation, founder, "mia@tyne-analytics.example", django_capture_on_commit_callbacks)
    mia = services.accept_invitation(invitation, make_user("mia@tyne-analytics.example"))
    services.hand_over_admin(organisation, founder, mia)
    assert OrganisationMember.objects.get(user=mia.user).role == Role.ADMIN
    assert OrganisationMember.objects.get(user=founder).role == Role.MEMBER
    # Now the former admin can leave.
    services.remove_member(OrganisationMember.objects.get(user=founder), founder)
    assert AuditEntry.objects.filter(action="membership.member.left", subject=founder).exists()
    assert list(AuditEntry.objects.filter(action="membership.member.role_changed").values_list("changes", flat=True))


def test_removing_a_colleague_keeps_their_login_and_history(founder, organisation, django_capture_on_commit_callbacks):
    invitation = _invite(organisation, founder, "mia@tyne-analytics.example", django_capture_on_commit_callbacks)
    mia = services.accept_invitation(invitation, make_user("mia@tyne-analytics.example"))
    services.remove_member(mia, founder)

    assert User.objects.filter(email="mia@tyne-analytics.example", is_active=True).exists()
    mia.refresh_from_db()
    assert mia.left_at is not None
    assert AuditEntry.objects.filter(subject=mia.user).count() == 2  # joined, then removed
    assert organisation.active_members().count() == 1

    # They can be invited back: a fresh membership, the old one kept as history.
    again = _invite(organisation, founder, "mia@tyne-analytics.example", django_capture_on_commit_callbacks)
    services.accept_invitation(again, mia.user)
    assert OrganisationMember.objects.filter(user=mia.user).count() == 2


def test_seat_limits_apply_at_invitation_and_at_acceptance(founder, organisation, django_capture_on_commit_callbacks):
    organisation.seat_limit = 2
    organisation.save()
    first = _invite(organisation, founder, "one@tyne-analytics.example", django_capture_on_commit_callbacks)
    with pytest.raises(MembershipError, match="all 2 of its seats"):
        services.invite_colleague(organisation, founder, "two@tyne-analytics.example")
    assert Invitation.objects.count() == 1

    # The open invitation holds its seat; accepting it fills the organisation exactly.
    services.accept_invitation(first, make_user("one@tyne-analytics.example"))
    assert organisation.active_members().count() == 2

    # If the limit drops after an invitation is sent, accepting it is refused.
    organisation.seat_limit = 3
    organisation.save()
    late = _invite(organisation, founder, "late@tyne-analytics.example", django_capture_on_commit_callbacks)
    organisation.seat_limit = 2
    organisation.save()
    with pytest.raises(MembershipError, match="seats"):
        services.accept_invitation(late, make_user("late@tyne-analytics.example"))
    assert organisation.active_members().count() == 2


def test_asking_to_join_by_a_verified_work_address(
    founder, organisation, mailoutbox, django_capture_on_commit_callbacks
):
    colleague = make_user("sam@tyne-analytics.example")
    assert services.organisations_matching_domains(colleague) == [organisation]
    with django_capture_on_commit_callbacks(execute=True):
        join_request = services.request_to_join(organisation, colleague, "I run the data team")
    assert mailoutbox[-1].to == [founder.email]
    with pytest.raises(MembershipError, match="already asked"):
        services.request_to_join(organisation, colleague)

    with django_capture_on_commit_callbacks(execute=True):
        services.decide_join_request(join_request, founder, approve=True)
    assert OrganisationMember.objects.filter(organisation=organisation, user=colleague).exists()
    assert mailoutbox[-1].to == [colleague.email]
    assert "You have joined Tyne Analytics" in mailoutbox[-1].subject


def test_a_declined_request_adds_nobody(founder, organisation):
    colleague = make_user("sam@tyne-analytics.example")
    join_request = services.request_to_join(organisation, colleague)
    services.decide_join_request(join_request, founder, approve=False)
    join_request.refresh_from_db()
    assert join_request.status == JoinRequest.Status.DECLINED
    assert not OrganisationMember.objects.filter(user=colleague).exists()
    with pytest.raises(MembershipError, match="already been decided"):
        services.decide_join_request(join_request, founder, approve=True)


def test_after_a_decline_the_same_person_may_ask_again_only_a_month_later(
    founder, organisation, mailoutbox, django_capture_on_commit_callbacks
):
    colleague = make_user("sam@tyne-analytics.example")
    join_request = services.request_to_join(organisation, colleague)
    services.decide_join_request(join_request, founder, approve=False)
    mailoutbox.clear()

    with (
        pytest.raises(MembershipError, match=r"declined your request\. You can ask again from"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.request_to_join(organisation, colleague, "please?")
    assert JoinRequest.objects.filter(user=colleague).count() == 1
    assert mailoutbox == []  # the admins are not asked again

    JoinRequest.objects.filter(pk=join_request.pk).update(decided_at=timezone.now() - timedelta(days=31))
    with django_capture_on_commit_callbacks(execute=True):
        again = services.request_to_join(organisation, colleague, "we have a new project")
    assert again.status == JoinRequest.Status.PENDING
    assert mailoutbox[-1].to == [founder.email]


def test_only_verified_addresses_at_a_listed_domain_may_ask(founder, organisation):
    stranger = make_user("sam@gmail.example")
    unverified = make_user("kim@tyne-analytics.example", verified=False)
    assert services.organisations_matching_domains(stranger) == []
    assert services.organisations_matching_domains(unverified) == []
    for user in (stranger, unverified):
        with pytest.raises(MembershipError, match=r"verify an e-mail address at tyne-analytics\.example"):
            services.request_to_join(organisation, user)
    assert not JoinRequest.objects.exists()


def test_the_tier_sets_the_seats_unless_the_organisation_has_its_own(
    founder, organisation, django_capture_on_commit_callbacks
):
    tier = Tier.objects.create(name="Start-up", slug="start-up", seat_limit=2)
    Subscription.objects.create(organisation=organisation, tier=tier, status="active", amount_pence=30_000)
    assert services.seat_limit(organisation) == 2
    _invite(organisation, founder, "one@tyne-analytics.example", django_capture_on_commit_callbacks)
    with pytest.raises(MembershipError, match="all 2 of its seats"):
        services.invite_colleague(organisation, founder, "two@tyne-analytics.example")

    organisation.seat_limit = 5  # seats agreed with this organisation override the tier's
    organisation.save()
    _invite(organisation, founder, "two@tyne-analytics.example", django_capture_on_commit_callbacks)
    assert organisation.invitations.pending().count() == 2


def test_an_ended_subscription_sets_no_seat_limit(founder, organisation):
    tier = Tier.objects.create(name="Start-up", slug="start-up", seat_limit=1)
    Subscription.objects.create(organisation=organisation, tier=tier, status="lapsed", amount_pence=30_000)
    assert services.seat_limit(organisation) is None


def test_sending_an_expired_invitation_again_needs_a_free_seat(
    founder, organisation, django_capture_on_commit_callbacks
):
    organisation.seat_limit = 2
    organisation.save()
    old = _invite(organisation, founder, "old@tyne-analytics.example", django_capture_on_commit_callbacks)
    Invitation.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=1))
    _invite(organisation, founder, "new@tyne-analytics.example", django_capture_on_commit_callbacks)
    assert organisation.seats_taken() == 2  # the founder and the new invitation: full

    with pytest.raises(MembershipError, match="all 2 of its seats"):
        services.resend_invitation(Invitation.objects.get(pk=old.pk), founder)

    assert Invitation.objects.get(pk=old.pk).status == "expired"
    assert organisation.seats_taken() == 2
    # An open invitation sent again takes no further seat, and goes.
    new = Invitation.objects.get(email="new@tyne-analytics.example")
    assert services.resend_invitation(new, founder).status == "pending"


def test_inviting_an_address_again_with_another_role_invites_with_that_role(
    founder, organisation, django_capture_on_commit_callbacks
):
    first = _invite(organisation, founder, "cto@tyne-analytics.example", django_capture_on_commit_callbacks)
    assert first.role == Role.MEMBER

    with django_capture_on_commit_callbacks(execute=True):
        again = services.invite_colleague(organisation, founder, "cto@tyne-analytics.example", Role.ADMIN)

    assert again.pk == first.pk and again.role == Role.ADMIN
    assert Invitation.objects.get(pk=first.pk).role == Role.ADMIN
    entry = AuditEntry.objects.get(action="membership.invitation.role_changed")
    assert entry.changes == {"role": [Role.MEMBER, Role.ADMIN]}
    cto = make_user("cto@tyne-analytics.example")
    assert services.accept_invitation(again, cto).role == Role.ADMIN


def test_a_join_decision_that_is_neither_approve_nor_decline_decides_nothing(
    client, founder, organisation, mailoutbox, django_capture_on_commit_callbacks
):
    colleague = make_user("sam@tyne-analytics.example")
    with django_capture_on_commit_callbacks(execute=True):
        join_request = services.request_to_join(organisation, colleague, "hello")
    mailoutbox.clear()
    client.force_login(founder)
    url = f"/my/org/{organisation.slug}/join-requests/{join_request.pk}/"

    for decision in ({"decision": "Approve"}, {"decision": ""}, {}):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, decision, follow=True)
        assert "Choose approve or decline." in response.content.decode()

    join_request.refresh_from_db()
    assert join_request.status == JoinRequest.Status.PENDING
    assert mailoutbox == []
    assert not OrganisationMember.objects.filter(user=colleague).exists()


# Each e-mail goes once, however often its job runs -----------------------------------------------------------


def _smtp_down_once(monkeypatch):
    send = tasks.send_email
    calls = {"n": 0}

    def smtp_down_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionRefusedError("SMTP is down")
        send(*args, **kwargs)

    monkeypatch.setattr(tasks, "send_email", smtp_down_once)


def test_the_invitation_email_job_run_twice_sends_one_email(
    founder, organisation, mailoutbox, django_capture_on_commit_callbacks
):
    invitation = _invite(organisation, founder, "mia@tyne-analytics.example", django_capture_on_commit_callbacks)
    tasks.send_invitation_email(invitation.pk)  # the broker delivers the job again

    assert len(mailoutbox) == 1
    invitation.refresh_from_db()
    assert invitation.emailed_nonce == invitation.nonce


def test_a_resent_invitation_emails_its_new_link_once(
    founder, organisation, mailoutbox, django_capture_on_commit_callbacks
):
    invitation = _invite(organisation, founder, "mia@tyne-analytics.example", django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.resend_invitation(invitation, founder)
    tasks.send_invitation_email(invitation.pk)

    assert len(mailoutbox) == 2
    assert _key_from(mailoutbox[0]) != _key_from(mailoutbox[1])
    assert services.find_invitation(_key_from(mailoutbox[1])) == invitation


def test_an_invitation_email_that_failed_to_send_is_sent_once_by_the_retry(
    founder, organisation, mailoutbox, monkeypatch
):
    invitation = services.invite_colleague(organisation, founder, "mia@tyne-analytics.example")
    _smtp_down_once(monkeypatch)

    with pytest.raises(OSError):
        tasks.send_invitation_email(invitation.pk)
    assert mailoutbox == []
    tasks.send_invitation_email(invitation.pk)
    tasks.send_invitation_email(invitation.pk)

    assert len(mailoutbox) == 1


def test_an_outbox_publish_that_dies_after_the_broker_took_the_job_sends_one_email(
    founder, organisation, mailoutbox, monkeypatch, django_capture_on_commit_callbacks
):
    from config import outbox
    from config.celery import app
    from config.models import QueuedTask

    broker = []  # what the broker has taken; a worker runs it later, in its own transaction
    monkeypatch.setattr(outbox.app, "send_task", lambda name, args, **kwargs: broker.append((name, args)))
    app.conf.task_always_eager = False  # through the outbox, as with a broker (the conftest fixture restores it)
    save = QueuedTask.save
    dying = {"on": True}

    def die_after_the_broker_took_it(self, *args, **kwargs):
        if dying["on"] and kwargs.get("update_fields") == ["sent_at", "attempts"]:
            raise RuntimeError("the web process died here")
        return save(self, *args, **kwargs)

    monkeypatch.setattr(QueuedTask, "save", die_after_the_broker_took_it)
    with django_capture_on_commit_callbacks(execute=True):
        services.invite_colleague(organisation, founder, "new@tyne-analytics.example")
    dying["on"] = False
    assert outbox.relay_pending() == 1  # the row was never marked sent, so the relay publishes it again

    assert len(broker) == 2
    for name, args in broker:
        app.tasks[name](*args)
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["new@tyne-analytics.example"]


def test_two_workers_given_the_same_invitation_email_send_it_once(transactional_db, mailoutbox, monkeypatch):
    require(connection.vendor == "postgresql", "PostgreSQL (set DATABASE_URL) to send one invitation twice at once")
    founder = make_user("founder@tyne-analytics.example")
    organisation = services.create_organisation(
        founder, name="Tyne Analytics", organisation_type=OrganisationType.SME, size_band=SizeBand.SMALL
    )
    invitation = services.invite_colleague(organisation, founder, "mia@tyne-analytics.example")

    two_workers_at_once(lambda: tasks.send_invitation_email(invitation.pk), monkeypatch, tasks)

    assert len(mailoutbox) == 1


def test_the_join_request_and_decision_email_jobs_run_twice_send_one_email_each(
    founder, organisation, mailoutbox, django_capture_on_commit_callbacks
):
    colleague = make_user("sam@tyne-analytics.example")
    with django_capture_on_commit_callbacks(execute=True):
        join_request = services.request_to_join(organisation, colleague, "I run the data team")
    tasks.send_join_request_email(join_request.pk)
    assert [message.to for message in mailoutbox] == [[founder.email]]

    with django_capture_on_commit_callbacks(execute=True):
        services.decide_join_request(join_request, founder, approve=True)
    tasks.send_join_decision_email(join_request.pk)
    assert [message.to for message in mailoutbox] == [[founder.email], [colleague.email]]


def test_join_request_and_decision_emails_that_failed_to_send_are_sent_once_by_the_retry(
    founder, organisation, mailoutbox, monkeypatch
):
    colleague = make_user("sam@tyne-analytics.example")
    join_request = services.request_to_join(organisation, colleague)
    _smtp_down_once(monkeypatch)
    with pytest.raises(OSError):
        tasks.send_join_request_email(join_request.pk)
    tasks.send_join_request_email(join_request.pk)
    tasks.send_join_request_email(join_request.pk)
    assert [message.to for message in mailoutbox] == [[founder.email]]

    services.decide_join_request(join_request, founder, approve=False)
    _smtp_down_once(monkeypatch)
    with pytest.raises(OSError):
        tasks.send_join_decision_email(join_request.pk)
    tasks.send_join_decision_email(join_request.pk)
    tasks.send_join_decision_email(join_request.pk)
    assert [message.to for message in mailoutbox] == [[founder.email], [colleague.email]]
