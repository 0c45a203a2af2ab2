"""Offers from member organisations: submitted by an admin, approved or rejected by staff, told either way."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from benefits import services
from benefits.forms import OfferForm
from benefits.models import Category, Perk
from benefits.permissions import grant_perks_team_permissions
from membership.models import AuditEntry, OrganisationMember
from membership.services import MembershipError
from tests import factories
from tests.benefits.conftest import person_at, subscribe

pytestmark = pytest.mark.django_db

OFFER = {
    "title": "Accessibility audit",
    "category": Category.PROFESSIONAL,
    "summary": "A WCAG 2.2 audit of one site.",
    "value_line": "25% off",
    "description": "We audit <script>alert('x')</script> sites.\n\nSecond paragraph.",
    "terms": "One per member.",
    "method": Perk.Method.CONTACT,
}


@pytest.fixture
def offering_admin(tiers):
    organisation = factories.make_organisation("Inclusive Design Co")
    subscribe(organisation, tiers["growth"])
    return person_at(organisation, "ada@inclusive.example", OrganisationMember.Role.ADMIN)


@pytest.fixture
def approver(staff_user):
    grant_perks_team_permissions(Group.objects.get(name="Membership team"))
    return staff_user


def offers_url(user, name="benefits:offers", *args):
    return reverse(name, args=[user.memberships.get().organisation.slug, *args])


def submit(client, admin, **changes):
    client.force_login(admin)
    return client.post(offers_url(admin, "benefits:offer_new"), {**OFFER, **changes})


def test_an_admin_offers_a_perk_and_staff_are_asked_to_approve_it(
    client, offering_admin, approver, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = submit(client, offering_admin)

    assert response.status_code == 302
    perk = Perk.objects.get()
    assert perk.status == Perk.Status.PENDING
    assert perk.provider.organisation == offering_admin.memberships.get().organisation
    assert perk.submitted_by == offering_admin
    assert "&lt;script&gt;" in perk.description and "<script>" not in perk.description
    assert AuditEntry.objects.filter(action="benefits.offer.submitted").count() == 1
    assert [m.to for m in mailoutbox] == [[approver.email]]
    assert reverse("benefits_perks:review", args=[perk.pk]) in mailoutbox[0].body
    # Not in the catalogue until approved.
    assert client.get(reverse("benefits:catalogue")).context["page"].paginator.count == 0


def test_a_bad_offer_keeps_what_was_typed_and_saves_nothing(client, offering_admin):
    response = submit(client, offering_admin, method=Perk.Method.LINK, redemption_url="", title="Kept title")

    assert response.status_code == 400
    assert "Give the link where members claim the offer." in response.content.decode()
    assert 'value="Kept title"' in response.content.decode()
    assert not Perk.objects.exists()


def test_members_who_are_not_admins_cannot_offer_perks(client, offering_admin):
    colleague = person_at(offering_admin.memberships.get().organisation, "bo@inclusive.example")
    client.force_login(colleague)

    assert client.get(offers_url(colleague, "benefits:offer_new")).status_code == 403
    assert client.post(offers_url(colleague, "benefits:offer_new"), OFFER).status_code == 403
    assert not Perk.objects.exists()


def test_staff_approve_it_and_the_organisation_is_told(
    client, offering_admin, approver, mailoutbox, django_capture_on_commit_callbacks
):
    submit(client, offering_admin)
    perk = Perk.objects.get()
    client.force_login(approver)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("benefits_perks:review", args=[perk.pk]), {"decision": "approve"})

    assert response.status_code == 302
    perk.refresh_from_db()
    assert perk.status == Perk.Status.PUBLISHED
    assert perk.published_at is not None
    told = [m for m in mailoutbox if m.to == [offering_admin.email]]
    assert told[0].subject == "Your offer is live: Accessibility audit"
    assert AuditEntry.objects.filter(action="benefits.offer.approved", actor=approver).exists()


def test_a_rejection_reason_is_stored_without_control_characters(client, offering_admin, approver):
    submit(client, offering_admin)
    perk = Perk.objects.get()
    client.force_login(approver)
    response = client.post(
        reverse("benefits_perks:review", args=[perk.pk]), {"decision": "reject", "reason": "Add\x00 the price."}
    )
    assert response.status_code == 302
    perk.refresh_from_db()
    assert (perk.status, perk.rejection_reason) == (Perk.Status.REJECTED, "Add the price.")


def test_staff_reject_it_with_a_reason_the_organisation_reads(
    client, offering_admin, approver, mailoutbox, django_capture_on_commit_callbacks
):
    submit(client, offering_admin)
    perk = Perk.objects.get()
    client.force_login(approver)

    refused = client.post(reverse("benefits_perks:review", args=[perk.pk]), {"decision": "reject", "reason": " "})
    assert refused.status_code == 400
    perk.refresh_from_db()
    assert perk.status == Perk.Status.PENDING

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("benefits_perks:review", args=[perk.pk]),
            {"decision": "reject", "reason": "Please add the price after the discount."},
        )
    perk.refresh_from_db()
    assert perk.status == Perk.Status.REJECTED
    told = [m for m in mailoutbox if m.to == [offering_admin.email]]
    assert "Please add the price after the discount." in told[0].body
    client.force_login(offering_admin)
    assert "Please add the price after the discount." in client.get(offers_url(offering_admin)).content.decode()

    # They change it and submit it again.
    response = client.post(
        offers_url(offering_admin, "benefits:offer_edit", perk.pk), {**OFFER, "value_line": "£500 off"}
    )
    assert response.status_code == 302
    perk.refresh_from_db()
    assert (perk.status, perk.value_line, perk.rejection_reason) == (Perk.Status.PENDING, "£500 off", "")


def test_people_without_the_approve_permission_cannot_decide(client, offering_admin, staff_user):
    submit(client, offering_admin)
    perk = Perk.objects.get()
    client.force_login(staff_user)  # on the team, but the perks permissions were not granted

    response = client.post(reverse("benefits_perks:review", args=[perk.pk]), {"decision": "approve"})

    # The back office answers a refusal by sending staff to its home page with a message.
    assert (response.status_code, response["Location"]) == (302, "/admin/")
    perk.refresh_from_db()
    assert perk.status == Perk.Status.PENDING


def test_a_live_offer_cannot_be_edited_by_the_member_but_can_be_withdrawn(client, offering_admin, approver):
    submit(client, offering_admin)
    perk = Perk.objects.get()
    services.approve_offer(perk, approver)
    client.force_login(offering_admin)

    response = client.post(offers_url(offering_admin, "benefits:offer_edit", perk.pk), {**OFFER, "title": "Changed"})
    assert response.status_code == 302
    perk.refresh_from_db()
    assert perk.title == "Accessibility audit"

    client.post(offers_url(offering_admin, "benefits:offer_withdraw", perk.pk))
    perk.refresh_from_db()
    assert perk.status == Perk.Status.EXPIRED
    assert AuditEntry.objects.filter(action="benefits.offer.withdrawn").exists()


def test_an_offer_approved_while_its_edit_was_on_the_way_is_not_changed_or_unpublished(
    client, offering_admin, approver
):
    """The member's edit was read while the offer was pending; staff approve it before the change is saved. The
    live offer keeps what staff approved, and stays published."""
    submit(client, offering_admin)
    organisation = offering_admin.memberships.get().organisation
    form = OfferForm({**OFFER, "title": "Changed after approval"}, instance=Perk.objects.get())
    assert form.is_valid()
    services.approve_offer(Perk.objects.get(), approver)

    with pytest.raises(MembershipError):
        services.submit_offer(organisation, offering_admin, form)
    perk = Perk.objects.get()
    assert perk.status == Perk.Status.PUBLISHED
    assert perk.title == "Accessibility audit"


def test_the_provider_sees_how_often_its_offer_was_redeemed(client, offering_admin, approver, growth_member):
    submit(client, offering_admin, method=Perk.Method.SHARED_CODE, shared_code="A11Y")
    perk = services.approve_offer(Perk.objects.get(), approver)
    services.redeem_perk(perk, growth_member, growth_member.memberships.get().organisation)
    client.force_login(offering_admin)

    response = client.get(offers_url(offering_admin))

    row = response.context["perks"].get()
    assert (row.redemption_count, row.recent, row.organisations) == (1, 1, 1)
    # The provider sees counts, not who redeemed.
    assert growth_member.email not in response.content.decode()


def _edit_form(perk: Perk, **changes) -> dict:
    """The back office's perk form, filled in as it shows ``perk``."""
    return {
        "title": perk.title,
        "slug": perk.slug,
        "provider": perk.provider_id,
        "category": perk.category,
        "summary": perk.summary,
        "value_line": perk.value_line,
        "description": '{"blocks":[],"entityMap":{}}',
        "terms": "",
        "method": perk.method,
        "shared_code": "",
        "redemption_url": "",
        "low_codes_threshold": "10",
        "starts_on": "",
        "ends_on": "",
        "cap_per_organisation": "",
        "total_cap": "",
        "status": perk.status,
        **changes,
    }


@pytest.mark.parametrize("may_approve", [False, True])
def test_a_members_offer_is_decided_on_its_review_page_not_through_the_perk_form(
    client, offering_admin, staff_user, may_approve, mailoutbox
):
    """The perk form is open to anyone who may change perks; publishing a member's offer through it would skip the
    approval permission, the audit of the decision and the e-mail telling the organisation."""
    submit(client, offering_admin)
    perk = Perk.objects.get()
    codenames = ["view_perk", "change_perk"] + (["approve_perk"] if may_approve else [])
    staff_user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="benefits", codename__in=codenames)
    )
    client.force_login(staff_user)
    mailoutbox.clear()

    response = client.post(
        reverse("benefits_perks:edit", args=[perk.pk]), _edit_form(perk, status=Perk.Status.PUBLISHED)
    )

    assert response.status_code == 200
    assert "waiting for approval: approve or reject it from its Review page" in response.text
    assert 'value="published" selected' in response.text  # what was chosen is kept, with the reason it was refused
    perk.refresh_from_db()
    assert perk.status == Perk.Status.PENDING and perk.published_at is None
    assert not AuditEntry.objects.filter(action="benefits.offer.approved").exists() and mailoutbox == []


def test_the_perk_form_neither_publishes_a_rejected_offer_nor_rejects_one(client, offering_admin, approver):
    submit(client, offering_admin)
    perk = services.reject_offer(Perk.objects.get(), approver, "Too vague.")
    client.force_login(approver)
    edit = reverse("benefits_perks:edit", args=[perk.pk])

    published = client.post(edit, _edit_form(perk, status=Perk.Status.PUBLISHED))
    to_draft = client.post(edit, _edit_form(perk, status=Perk.Status.DRAFT))
    perk.refresh_from_db()
    rejected_again = client.post(edit, _edit_form(perk, status=Perk.Status.REJECTED))

    assert published.status_code == 200 and "its organisation changes it and offers it again" in published.text
    assert to_draft.status_code == 302  # taking it out of the queue is no decision
    assert rejected_again.status_code == 200 and "rejected from its Review page" in rejected_again.text
    perk.refresh_from_db()
    assert perk.status == Perk.Status.DRAFT


def test_staff_publish_their_own_perk_through_the_perk_form(client, offering_admin, approver):
    submit(client, offering_admin)
    perk = services.approve_offer(Perk.objects.get(), approver)
    Perk.objects.filter(pk=perk.pk).update(status=Perk.Status.DRAFT, published_at=None)
    perk.refresh_from_db()
    client.force_login(approver)

    response = client.post(
        reverse("benefits_perks:edit", args=[perk.pk]), _edit_form(perk, status=Perk.Status.PUBLISHED)
    )

    assert response.status_code == 302
    perk.refresh_from_db()
    assert perk.status == Perk.Status.PUBLISHED and perk.published_at is not None
