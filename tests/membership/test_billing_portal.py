"""The portal's billing page: what members and admins see and do, and every change in demo mode, where the demo
plays Stripe and delivers signed events through the webhook code."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from membership import billing, billing_changes
from membership.models import (
    AuditEntry,
    Invoice,
    OrganisationMember,
    OrganisationType,
    SizeBand,
    StripeEvent,
    Subscription,
    Tier,
    TierPrice,
)
from membership.services import MembershipError
from tests import factories

Status = Subscription.Status
PAGE = "/my/org/tyne-robotics/billing/"


def fresh(subscription: Subscription) -> Subscription:
    return Subscription.objects.get(pk=subscription.pk)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


@pytest.fixture
def demo_member(client, demo, robotics, growth, billing_admin) -> Subscription:
    """Tyne Robotics joined Growth by card through the demo checkout."""
    url = billing.start_card_checkout(robotics, growth, Subscription.Interval.YEAR, billing_admin)
    client.force_login(billing_admin)
    client.post(url, {"pay": "1"})
    subscription = Subscription.objects.get(organisation=robotics)
    assert subscription.status == Status.ACTIVE
    return subscription


@pytest.fixture
def colleague(robotics):
    user = factories.make_user("intern@tyne-robotics.example")
    factories.add_member(robotics, user)
    return user


# What each person sees ------------------------------------------------------------------------------------------


def test_an_admin_is_offered_every_change_and_a_member_only_sees_the_status(
    client, demo_member, colleague, scale, starter
):
    admin_page = client.get(PAGE).content.decode()
    for offered in ("Change tier", "Scale: £3,000 a year", "(upgrade", "Starter: £600 a year", "(downgrade"):
        assert offered in admin_page
    for action in ("tier", "pay-by-invoice", "cancel"):
        assert f'action="{PAGE}{action}/"' in admin_page

    client.force_login(colleague)
    member_page = client.get(PAGE).content.decode()

    assert "Growth membership" in member_page and "Active" in member_page
    assert "Only your organisation's admins can change the membership." in member_page
    assert "Change tier" not in member_page
    assert f"{PAGE}tier/" not in member_page and f"{PAGE}cancel/" not in member_page
    for url in ("tier/", "tier/keep/", "pay-by-invoice/", "pay-by-card/", "cancel/", "resume/"):
        assert client.post(PAGE + url, {"tier": scale.pk, "po_number": "PO-1"}).status_code == 403
    assert fresh(demo_member).tier.name == "Growth"


# Every change in demo mode ----------------------------------------------------------------------------------------


def test_an_admin_upgrades_in_demo_mode_through_the_webhook_path(client, demo, demo_member, scale):
    response = client.post(f"{PAGE}tier/", {"tier": scale.pk}, follow=True)

    subscription = fresh(demo_member)
    assert (subscription.tier, subscription.amount_pence) == (scale, 300_000)
    assert any("is moving to Scale" in text for text in messages_of(response))
    events = list(StripeEvent.objects.order_by("received_at", "pk").values_list("event_id", "type"))
    assert events[-2:] == [
        (f"evt_demo_sub_{subscription.pk}_change_1", "customer.subscription.updated"),
        (f"evt_demo_sub_{subscription.pk}_change_1_invoice", "invoice.paid"),
    ]
    proration = Invoice.objects.get(stripe_invoice_id=f"demo_in_{subscription.pk}_change_1")
    assert proration.status == Invoice.Status.PAID
    assert 0 < proration.amount_due_pence <= 216_000  # the difference for the rest of the year, plus VAT
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"billing.subscription.upgrade_requested", "billing.subscription.updated"} <= actions
    assert "Scale membership" in response.content.decode()
    assert demo.requests == []


def test_the_demo_prorates_an_upgrade_in_integer_pence(demo, demo_member, robotics, billing_admin, monkeypatch):
    premier = Tier.objects.create(name="Premier", slug="premier")
    TierPrice.objects.create(
        tier=premier, organisation_type=OrganisationType.SME, size_band=SizeBand.SMALL, annual_pence=253_457
    )
    start, end = datetime(2027, 1, 10, 9, tzinfo=UTC), datetime(2028, 1, 10, 9, tzinfo=UTC)
    Subscription.objects.filter(pk=demo_member.pk).update(current_period_start=start, current_period_end=end)
    now = datetime(2027, 2, 13, 12, 57, 49, 980593, tzinfo=UTC)
    monkeypatch.setattr(billing_changes, "timezone", SimpleNamespace(now=lambda: now))

    billing_changes.change_tier(robotics, premier, billing_admin)

    invoice = Invoice.objects.get(stripe_invoice_id=f"demo_in_{demo_member.pk}_change_1")
    unused, length = (end - now) // timedelta(microseconds=1), (end - start) // timedelta(microseconds=1)
    exact = (253_457 - 120_000) * unused // length
    assert exact == 120_964  # float seconds would make it 120,965
    assert invoice.amount_due_pence == billing.with_vat(exact)


def test_an_admin_cancels_and_keeps_the_membership_in_demo_mode(client, demo, demo_member):
    response = client.post(f"{PAGE}cancel/", follow=True)

    assert fresh(demo_member).cancel_at_period_end is True
    page = response.content.decode()
    assert "This membership is set to end on" in page
    assert "Keep my membership" in page

    client.post(f"{PAGE}resume/")

    assert fresh(demo_member).cancel_at_period_end is False
    assert StripeEvent.objects.filter(type="customer.subscription.updated").count() == 2
    assert demo.requests == []


def test_an_admin_switches_to_invoices_and_back_to_card_in_demo_mode(client, demo, demo_member):
    client.post(f"{PAGE}pay-by-invoice/", {"po_number": "PO-31"})

    subscription = fresh(demo_member)
    assert (subscription.payment_method, subscription.po_number) == ("invoice", "PO-31")

    response = client.post(f"{PAGE}pay-by-card/")

    demo_page = response["Location"]
    assert demo_page.startswith("/billing/demo-card/")
    assert "Demo payment: no card is saved or charged." in client.get(demo_page).content.decode()
    assert client.post(demo_page, {"save": "1"})["Location"] == f"{PAGE}?card=saved"
    assert fresh(demo_member).payment_method == "card"
    assert StripeEvent.objects.filter(type="checkout.session.completed", payload__data__object__mode="setup")
    assert AuditEntry.objects.filter(action="billing.subscription.switched_to_card").count() == 1
    # Saving again (the back button) changes nothing.
    assert client.post(demo_page, {"save": "1"})["Location"] == PAGE
    assert AuditEntry.objects.filter(action="billing.subscription.switched_to_card").count() == 1
    assert demo.requests == []


def test_the_demo_card_page_is_not_found_for_anyone_else(client, demo, demo_member, colleague, org_admin):
    client.post(f"{PAGE}pay-by-invoice/", {"po_number": ""})
    demo_page = client.post(f"{PAGE}pay-by-card/")["Location"]

    for user in (colleague, org_admin):
        client.force_login(user)
        assert client.get(demo_page).status_code == 404
        assert client.post(demo_page, {"save": "1"}).status_code == 404
    assert fresh(demo_member).payment_method == "invoice"


def test_an_invoice_payer_schedules_a_downgrade_and_takes_it_back_in_demo_mode(
    client, demo, demo_member, starter, staff_user
):
    Subscription.objects.filter(pk=demo_member.pk).update(payment_method="invoice")

    response = client.post(f"{PAGE}tier/", {"tier": starter.pk}, follow=True)

    subscription = fresh(demo_member)
    assert (subscription.tier.name, subscription.scheduled_tier) == ("Growth", starter)
    assert "Moves to Starter when it renews" in response.content.decode()
    assert "Stay on Growth" in response.content.decode()

    client.post(f"{PAGE}tier/keep/")

    assert fresh(demo_member).scheduled_tier is None
    assert demo.requests == []


# Bad input ----------------------------------------------------------------------------------------------------------


def test_a_missing_po_number_is_explained_at_the_field_and_changes_nothing(client, demo, demo_member, robotics):
    robotics.needs_purchase_order = True
    robotics.save()

    response = client.post(f"{PAGE}pay-by-invoice/", {"po_number": "  "})

    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_po_number_error"' in page
    assert 'aria-invalid="true"' in page
    assert fresh(demo_member).payment_method == "card"
    assert not AuditEntry.objects.filter(action="billing.subscription.switch_to_invoice_requested").exists()


def test_a_refused_switch_keeps_the_po_number_typed(client, demo, demo_member):
    Subscription.objects.filter(pk=demo_member.pk).update(interval="month")

    response = client.post(f"{PAGE}pay-by-invoice/", {"po_number": "PO-TYPED-77"})

    assert response.status_code == 400
    page = response.content.decode()
    assert "Invoices are annual" in page
    assert 'value="PO-TYPED-77"' in page
    assert fresh(demo_member).payment_method == "card"


def test_choosing_no_tier_is_refused_with_a_message(client, demo, demo_member):
    response = client.post(f"{PAGE}tier/", {}, follow=True)
    assert "Choose the tier to move to." in messages_of(response)
    assert fresh(demo_member).changes_requested == 0


# Renewing a lapsed or cancelled membership ----------------------------------------------------------------------------


@pytest.mark.parametrize("ended", [Status.LAPSED, Status.CANCELLED])
def test_an_admin_renews_an_ended_membership_on_its_last_terms(client, demo, demo_member, ended):
    Subscription.objects.filter(pk=demo_member.pk).update(status=ended, ended_at=timezone.now() - timedelta(days=3))

    page = client.get(PAGE).content.decode()

    assert "Renew Growth" in page
    assert f'action="{PAGE}start/"' in page
    response = client.post(f"{PAGE}start/", {"renew": "1", "tier": demo_member.tier_id, "interval": "year",
                                             "payment_method": "card", "po_number": ""})  # fmt: skip
    assert response["Location"].startswith("/billing/demo-checkout/")
    client.post(response["Location"], {"pay": "1"})
    renewed = Subscription.objects.live().get(organisation=demo_member.organisation)
    assert renewed.pk != demo_member.pk
    assert renewed.status == Status.ACTIVE


def test_a_renewal_form_error_keeps_what_was_typed(client, demo, demo_member):
    Subscription.objects.filter(pk=demo_member.pk).update(status=Status.LAPSED)

    response = client.post(f"{PAGE}start/", {"renew": "1", "tier": demo_member.tier_id, "interval": "month",
                                             "payment_method": "invoice", "po_number": "PO-KEEP-ME"})  # fmt: skip

    assert response.status_code == 400
    page = response.content.decode()
    assert "Invoices are annual; choose annual billing to pay by invoice." in page
    assert 'value="PO-KEEP-ME"' in page
    assert not Subscription.objects.live().filter(organisation=demo_member.organisation).exists()


def test_a_member_who_is_not_an_admin_is_not_offered_to_renew(client, demo, demo_member, colleague):
    Subscription.objects.filter(pk=demo_member.pk).update(status=Status.LAPSED)
    client.force_login(colleague)
    page = client.get(PAGE).content.decode()
    assert "Renew Growth" not in page
    assert "Ask one of your organisation's admins to choose a tier." in page
    assert OrganisationMember.objects.get(user=colleague).role == "member"


# Type and size set the price: locked for members once subscribed ------------------------------------------------------


def _profile(organisation, **overrides) -> dict:
    return {
        "name": organisation.name,
        "organisation_type": organisation.organisation_type,
        "size_band": organisation.size_band,
        "town": "Sunderland",
        "public_fields": ["town"],
        "billing_email": organisation.billing_email,
        **overrides,
    }


def test_a_members_type_and_size_cannot_be_changed_in_the_portal(client, demo, demo_member, robotics):
    page = client.get(f"/my/org/{robotics.slug}/profile/").content.decode()
    assert "This sets your membership&#x27;s price. To change it, please contact us." in page
    assert page.count(" disabled") >= 2

    response = client.post(
        f"/my/org/{robotics.slug}/profile/", _profile(robotics, organisation_type="charity", size_band="250+")
    )

    assert response.status_code == 302
    robotics.refresh_from_db()
    assert (robotics.organisation_type, robotics.size_band, robotics.town) == ("sme", "10-49", "Sunderland")
    entry = AuditEntry.objects.get(action="membership.organisation.updated")
    assert set(entry.changes) == {"town", "public_fields"}


def test_the_service_refuses_a_price_change_from_an_admin_but_not_from_staff(demo, demo_member, robotics, staff_user):
    from membership import services
    from membership.forms import OrganisationForm

    admin = robotics.memberships.get().user

    class Unlocked(OrganisationForm):  # as a hand-made request would try: the fields not disabled
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            for name in ("organisation_type", "size_band"):
                self.fields[name].disabled = False

    form = Unlocked(_profile(robotics, size_band="250+"), instance=robotics)
    assert form.is_valid(), form.errors
    with pytest.raises(MembershipError, match="set its membership price"):
        services.update_organisation(robotics, admin, form)
    robotics.refresh_from_db()
    assert robotics.size_band == "10-49"

    staff_form = Unlocked(_profile(robotics, size_band="250+"), instance=robotics)
    assert staff_form.is_valid()
    services.update_organisation(robotics, staff_user, staff_form, where="the back office")
    robotics.refresh_from_db()
    assert robotics.size_band == "250+"
    assert AuditEntry.objects.get(action="membership.organisation.updated").changes["size_band"] == ["10-49", "250+"]


def test_type_and_size_are_free_to_change_without_a_live_membership(client, robotics, billing_admin):
    client.force_login(billing_admin)
    client.post(f"/my/org/{robotics.slug}/profile/", _profile(robotics, organisation_type="charity"))
    robotics.refresh_from_db()
    assert robotics.organisation_type == "charity"


# The page's cost does not grow with tiers, invoices or history ----------------------------------------------------


def _grow(organisation, subscription, times: int) -> None:
    from membership.models import Tier, TierPrice

    for _ in range(times):
        number = Tier.objects.count()
        tier = Tier.objects.create(name=f"Tier {number}", slug=f"tier-{number}")
        TierPrice.objects.create(tier=tier, organisation_type="sme", size_band="10-49", annual_pence=50_000 + number)
        Invoice.objects.create(organisation=organisation, subscription=subscription, number=f"X-{number}")
        Subscription.objects.create(
            organisation=organisation, tier=tier, status=Status.LAPSED, amount_pence=50_000, ended_at=timezone.now()
        )


def test_the_billing_page_runs_a_fixed_number_of_queries(client, demo, demo_member, robotics):
    _grow(robotics, demo_member, 1)
    client.get("/join/")  # the header's page addresses are looked up once, then kept until a page is published
    with CaptureQueriesContext(connection) as once:
        assert client.get(PAGE).status_code == 200
    _grow(robotics, demo_member, 10)

    with CaptureQueriesContext(connection) as eleven_times:
        page = client.get(PAGE).content.decode()

    assert page.count('type="radio" name="tier"') == 11  # every tier grown, each priced for Tyne Robotics
    assert page.count("X-") >= 11
    assert len(eleven_times) == len(once)
