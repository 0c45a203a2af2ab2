"""The activity ledger: the services that cause activity record it, once per occasion."""

from datetime import date, timedelta

import pytest
from django.forms import modelform_factory
from django.test import Client

from membership import billing, services
from membership.activity import record_activity
from membership.models import ActivityEvent, ActivityKind, Invoice, Organisation, OrganisationMember
from tests import factories

pytestmark = pytest.mark.django_db


def kinds(organisation) -> list[str]:
    return list(ActivityEvent.objects.filter(organisation=organisation).values_list("kind", flat=True))


def test_the_same_occasion_is_recorded_once():
    organisation = factories.make_organisation("Wear Robotics")

    first, created = record_activity(organisation, ActivityKind.PERK_REDEEMED, key="redemption:1")
    again, created_again = record_activity(organisation, ActivityKind.PERK_REDEEMED, key="redemption:1")

    assert (created, created_again) == (True, False)
    assert first.pk == again.pk
    assert ActivityEvent.objects.count() == 1


def test_an_unknown_kind_is_refused():
    organisation = factories.make_organisation("Wear Robotics")

    with pytest.raises(ValueError, match="Unknown activity kind"):
        record_activity(organisation, "tweeted", key="1")
    assert not ActivityEvent.objects.exists()


def test_a_log_in_counts_once_a_day_for_each_of_the_persons_organisations(member):
    other = factories.make_organisation("Durham Data")
    factories.add_member(other, member)
    for _ in range(3):
        client = Client()
        response = client.post("/accounts/login/", {"login": member.email, "password": factories.PASSWORD})
        assert response.status_code == 302

    logins = ActivityEvent.objects.filter(kind=ActivityKind.LOGIN, person=member)
    assert logins.count() == 2
    assert set(logins.values_list("organisation__name", flat=True)) == {"Tyne Analytics", "Durham Data"}


def test_accepting_an_invitation_records_a_colleague_joining(org_admin):
    organisation = org_admin.memberships.get().organisation
    invitation = services.invite_colleague(organisation, org_admin, "new@tyne-analytics.example")
    newcomer = factories.make_user("new@tyne-analytics.example")

    services.accept_invitation(invitation, newcomer)

    event = ActivityEvent.objects.get(kind=ActivityKind.COLLEAGUE_JOINED)
    assert (event.organisation, event.person) == (organisation, newcomer)


def test_a_profile_edit_and_a_logged_call_are_recorded(org_admin, staff_user):
    organisation = org_admin.memberships.get().organisation
    form = modelform_factory(Organisation, fields=["town"])({"town": "Sunderland"}, instance=organisation)
    assert form.is_valid()
    services.update_organisation(organisation, org_admin, form)
    services.add_note(organisation, staff_user, kind="call", date=date(2026, 11, 2), body="Talked renewals")

    assert sorted(kinds(organisation)) == [ActivityKind.PROFILE_UPDATED, ActivityKind.STAFF_INTERACTION]


def test_a_call_logged_late_counts_on_the_day_it_happened(staff_user):
    from django.utils import timezone

    from membership.models import EngagementScore

    organisation = factories.make_organisation("Tyne Analytics")
    today = timezone.localdate()
    services.add_note(organisation, staff_user, kind="call", date=today - timedelta(days=75), body="Renewal chat")
    services.add_note(organisation, staff_user, kind="call", date=today + timedelta(days=3), body="Booked ahead")

    early, ahead = ActivityEvent.objects.filter(organisation=organisation).order_by("occurred_at")
    assert timezone.localtime(early.occurred_at).date() == today - timedelta(days=75)
    assert ahead.occurred_at <= timezone.now()  # never ahead of now
    assert EngagementScore.objects.get(pk=organisation.pk).last_activity_at == ahead.occurred_at


def test_an_invoice_paid_out_of_band_is_recorded_once(staff_user):
    organisation = factories.make_organisation("Gateshead Council")
    invoice = Invoice.objects.create(organisation=organisation, amount_due_pence=144_000)

    billing.mark_invoice_paid_out_of_band(invoice, staff_user, "BACS 1")
    billing.mark_invoice_paid_out_of_band(invoice, staff_user, "BACS 1")

    assert kinds(organisation) == [ActivityKind.INVOICE_PAID]


def test_leaving_keeps_the_history(member):
    organisation = member.memberships.get().organisation
    record_activity(organisation, ActivityKind.PAGE_READ, key="x", person=member)
    OrganisationMember.objects.filter(user=member).update(left_at="2026-11-01T00:00Z")

    assert ActivityEvent.objects.filter(organisation=organisation, person=member).count() == 1
