"""The public Join page, the portal's membership page, the tier editor and the membership dashboard."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from membership.dashboard import membership_figures
from membership.models import AuditEntry, Invoice, OrganisationMember, Subscription, Tier, TierPrice
from membership.permissions import grant_membership_team_permissions
from membership.templatetags.membership_tags import pounds
from tests.factories import add_member, make_organisation, make_user

Role = OrganisationMember.Role


@pytest.fixture
def tiers(db):
    growth = Tier.objects.create(name="Growth", slug="growth", seat_limit=10, monthly_billing=True, sort_order=1)
    patron = Tier.objects.create(name="Patron", slug="patron", is_public=False, sort_order=2)
    TierPrice.objects.create(
        tier=growth, organisation_type="sme", size_band="1-9", annual_pence=90_000, monthly_pence=8_300
    )
    TierPrice.objects.create(tier=growth, organisation_type="charity", size_band="1-9", annual_pence=45_000)
    TierPrice.objects.create(tier=patron, organisation_type="sme", size_band="1-9", annual_pence=600_000)
    return {"growth": growth, "patron": patron}


def test_pounds_are_shown_from_integer_pence():
    assert pounds(90_000) == "£900"
    assert pounds(123_456) == "£1,234.56"
    assert pounds(5) == "£0.05"


def test_the_join_page_prices_tiers_for_the_visitors_organisation(client, tiers):
    html = client.get("/join/").content.decode()
    assert "Growth" in html and "£900" in html and "£83 a month" in html
    assert "Patron" not in html  # not publicly listed
    assert 'href="/accounts/signup/?next=/join/"' in html
    html = client.get("/join/", {"organisation_type": "charity", "size_band": "1-9"}).content.decode()
    assert "£450" in html and "£900" not in html
    html = client.get("/join/", {"organisation_type": "corporate", "size_band": "250+"}).content.decode()
    assert "Ask us for a price" in html


def test_an_org_admin_is_offered_to_join_for_their_organisation(client, tiers):
    admin = make_user("boss@tyne.example")
    organisation = make_organisation("Tyne Analytics", organisation_type="charity", size_band="1-9")
    add_member(organisation, admin, Role.ADMIN)
    client.force_login(admin)
    html = client.get("/join/").content.decode()
    assert "£450" in html  # priced for their own organisation
    assert f'action="/my/org/{organisation.slug}/billing/start/"' in html
    Subscription.objects.create(organisation=organisation, tier=tiers["growth"], status="active", amount_pence=1)
    html = client.get("/join/").content.decode()
    assert "/billing/start/" not in html  # already a member: nothing to join


def test_the_membership_page_shows_the_subscription_to_every_member(client, tiers):
    organisation = make_organisation("Tyne Analytics")
    member = make_user("mia@tyne.example")
    add_member(organisation, member)
    Subscription.objects.create(
        organisation=organisation,
        tier=tiers["growth"],
        status="active",
        amount_pence=90_000,
        current_period_end=timezone.now() + timedelta(days=40),
    )
    client.force_login(member)
    html = client.get(f"/my/org/{organisation.slug}/billing/").content.decode()
    assert "Growth membership" in html and "£900 a year + VAT" in html and "Renews" in html
    assert "Only your organisation's admins can change the membership." in html
    assert "Change card or cancel" not in html
    response = client.post(f"/my/org/{organisation.slug}/billing/card/")
    assert response.status_code == 403


def test_a_membership_set_not_to_renew_by_the_team_offers_no_change_that_would_be_refused(client, tiers):
    """The membership team set it not to renew (an import can): cancelling or changing tier would be refused, so the
    admin is told whom to ask instead."""
    organisation = make_organisation("Tyne Analytics")
    admin = make_user("noah@tyne.example")
    add_member(organisation, admin, OrganisationMember.Role.ADMIN)
    ends = timezone.now() + timedelta(days=40)
    Subscription.objects.create(
        organisation=organisation, tier=tiers["growth"], status="active", amount_pence=90_000, auto_renew=False,
        current_period_start=ends - timedelta(days=365), current_period_end=ends,
    )  # fmt: skip
    Tier.objects.filter(pk=tiers["patron"].pk).update(is_public=True)  # a tier to move to, were it renewing
    for tier in tiers.values():
        TierPrice.objects.get_or_create(
            tier=tier, organisation_type="sme", size_band=organisation.size_band, defaults={"annual_pence": 90_000}
        )
    client.force_login(admin)

    html = client.get(f"/my/org/{organisation.slug}/billing/").content.decode()

    assert "The membership team has set this membership not to renew" in html and "Ends" in html
    assert "Cancel at the end of the period" not in html and "Change tier" not in html
    Subscription.objects.update(auto_renew=True)
    html = client.get(f"/my/org/{organisation.slug}/billing/").content.decode()
    assert "Cancel at the end of the period" in html and "Change tier" in html


def test_the_tier_editor_keeps_the_price_matrix(client, staff_user, tiers):
    grant_membership_team_permissions(Group.objects.get(name="Membership team"))
    client.force_login(staff_user)
    response = client.get(f"/admin/membership/tiers/edit/{tiers['growth'].pk}/")
    assert response.status_code == 200
    assert "Price matrix" in response.content.decode()


def test_the_dashboard_figures(tiers):
    now = timezone.now()
    orgs = [make_organisation(f"Org {i}") for i in range(5)]
    growth = tiers["growth"]
    Subscription.objects.create(
        organisation=orgs[0], tier=growth, status="active", amount_pence=90_000,
        current_period_start=now - timedelta(days=30), current_period_end=now + timedelta(days=20),
        created_at=now - timedelta(days=400), started_at=now - timedelta(days=400),
    )  # fmt: skip
    Subscription.objects.create(
        organisation=orgs[1], tier=growth, status="grace", interval="month", amount_pence=8_300,
        current_period_end=now - timedelta(days=2), created_at=now - timedelta(days=60),
        started_at=now - timedelta(days=60),
    )  # fmt: skip
    Subscription.objects.create(
        organisation=orgs[2],
        tier=growth,
        status="lapsed",
        amount_pence=90_000,
        ended_at=now - timedelta(days=10),
        started_at=now - timedelta(days=375),
    )
    Subscription.objects.create(organisation=orgs[3], tier=growth, status="pending", amount_pence=90_000)

    figures = membership_figures(now)
    assert figures["members"] == 2  # active and in grace; pending and lapsed are not members
    assert figures["arr"] == "£1,896"  # 900 + 12 x 83
    assert figures["renewals_due_count"] == 1
    assert figures["lapsed_count"] == 1
    assert figures["renewal_rate"] == 50  # one renewed, one lapsed in the last year
    assert [bar.label for bar in figures["by_tier"]] == ["Growth"]


def test_the_dashboard_counts_no_subscription_waiting_for_payment(tiers):
    """An unpaid invoice with its period set, and an abandoned card checkout: neither is a member or a renewal."""
    now = timezone.now()
    growth = tiers["growth"]
    member, unpaid, abandoned = (make_organisation(name) for name in ("Member", "Unpaid", "Abandoned"))
    Subscription.objects.create(
        organisation=member, tier=growth, status="active", amount_pence=90_000,
        current_period_start=now - timedelta(days=335), current_period_end=now + timedelta(days=30),
    )  # fmt: skip
    Subscription.objects.create(
        organisation=unpaid, tier=growth, status="pending", payment_method="invoice", amount_pence=600_000,
        current_period_start=now - timedelta(days=335), current_period_end=now + timedelta(days=30),
    )  # fmt: skip
    Subscription.objects.create(organisation=abandoned, tier=growth, status="pending", amount_pence=90_000)

    figures = membership_figures(now)

    assert (figures["members"], figures["arr"]) == (1, "£900")
    assert (figures["renewals_due_count"], figures["renewals_due_value"]) == (1, "£900")
    assert [(bar.label, bar.value) for bar in figures["by_tier"]] == [("Growth", 1)]


def test_the_dashboard_counts_a_first_payment_as_no_renewal_and_an_unstarted_membership_as_no_loss(tiers):
    """A new member's first period begins before its payment arrives; an abandoned checkout and a first invoice
    never paid end without the organisation ever having been a member."""
    from membership import billing

    now = timezone.now()
    growth = tiers["growth"]
    joiner, abandoned, unpaid, renewed = (make_organisation(name) for name in ("Joiner", "Gone", "Unpaid", "Again"))
    subscription = Subscription.objects.create(
        organisation=joiner, tier=growth, status="pending", amount_pence=90_000,
        current_period_start=now - timedelta(minutes=2), current_period_end=now + timedelta(days=365),
    )  # fmt: skip
    invoice = Invoice.objects.create(
        organisation=joiner, subscription=subscription, number="NETN-1", amount_due_pence=108_000, status="open"
    )
    billing.mark_invoice_paid_out_of_band(invoice, make_user("finance@example.com", is_staff=True), "BACS 1")
    subscription.refresh_from_db()
    assert subscription.status == "active" and subscription.started_at >= subscription.current_period_start
    Subscription.objects.create(
        organisation=abandoned, tier=growth, status="cancelled", amount_pence=90_000, ended_at=now - timedelta(days=3)
    )
    Subscription.objects.create(
        organisation=unpaid, tier=growth, status="lapsed", payment_method="invoice", amount_pence=90_000,
        current_period_start=now - timedelta(days=70), current_period_end=now + timedelta(days=295),
        ended_at=now - timedelta(days=1),
    )  # fmt: skip
    figures = membership_figures(now)
    assert (figures["renewal_rate"], figures["lapsed_count"], figures["members"]) == (None, 0, 1)

    Subscription.objects.create(
        organisation=renewed, tier=growth, status="active", amount_pence=90_000, started_at=now - timedelta(days=400),
        current_period_start=now - timedelta(days=35), current_period_end=now + timedelta(days=330),
    )  # fmt: skip
    assert membership_figures(now)["renewal_rate"] == 100


def test_the_dashboard_counts_memberships_set_to_end_apart_from_renewals(tiers):
    now = timezone.now()
    for name, fields in [("Renews", {}), ("Cancels", {"cancel_at_period_end": True}), ("Off", {"auto_renew": False})]:
        Subscription.objects.create(
            organisation=make_organisation(name), tier=tiers["growth"], status="active", amount_pence=90_050,
            current_period_start=now - timedelta(days=300), current_period_end=now + timedelta(days=65),
            started_at=now - timedelta(days=300), **fields,
        )  # fmt: skip
    figures = membership_figures(now)
    assert (figures["renewals_due_count"], figures["set_to_end_count"]) == (1, 2)
    assert figures["renewals_due_value"] == "£901"  # £900.50 rounds half up, in whole pence throughout
    assert figures["arr"] == "£2,702"  # £2,701.50


def test_the_dashboard_is_on_the_admin_home_for_the_membership_team(
    client, staff_user, tiers, django_assert_max_num_queries
):
    grant_membership_team_permissions(Group.objects.get(name="Membership team"))
    client.force_login(staff_user)
    html = client.get("/admin/").content.decode()
    assert "annual recurring revenue" in html
    assert "Active members by tier" in html


@pytest.fixture
def open_invoice(tiers):
    organisation = make_organisation("Northumbria Coast Council", organisation_type="public_sector", size_band="250+")
    subscription = Subscription.objects.create(
        organisation=organisation, tier=tiers["growth"], status="pending", payment_method="invoice", amount_pence=90_000
    )
    return Invoice.objects.create(
        organisation=organisation, subscription=subscription, number="NETN-0001", amount_due_pence=108_000,
        po_number="PO-7788", status="open",
    )  # fmt: skip


def test_finance_records_a_bank_transfer_and_the_membership_starts(client, staff_user, open_invoice):
    grant_membership_team_permissions(Group.objects.get(name="Membership team"))
    client.force_login(staff_user)
    listing = client.get("/admin/membership/invoices/").content.decode()
    assert "NETN-0001" in listing and f"/admin/membership/invoices/{open_invoice.pk}/mark-paid/" in listing

    url = f"/admin/membership/invoices/{open_invoice.pk}/mark-paid/"
    response = client.post(url, {"reference": "  "})
    assert response.status_code == 400
    assert "Give the bank transfer" in response.content.decode()
    open_invoice.refresh_from_db()
    assert open_invoice.status == "open"

    response = client.post(url, {"reference": "BACS 2026-11-20 NCC"})
    assert response.status_code == 302
    open_invoice.refresh_from_db()
    assert (open_invoice.status, open_invoice.paid_out_of_band) == ("paid", True)
    assert open_invoice.subscription.__class__.objects.get(pk=open_invoice.subscription_id).status == "active"
    entry = AuditEntry.objects.get(action="billing.invoice.paid_out_of_band")
    assert entry.actor == staff_user and "BACS 2026-11-20 NCC" in entry.summary


def test_only_finance_may_record_a_bank_transfer(client, member, staff_user, open_invoice):
    url = f"/admin/membership/invoices/{open_invoice.pk}/mark-paid/"
    client.force_login(member)
    assert client.post(url, {"reference": "x"}, follow=True).status_code == 403
    client.force_login(staff_user)  # in the team, but without the invoice permissions
    client.post(url, {"reference": "x"})
    open_invoice.refresh_from_db()
    assert open_invoice.status == "open"


def test_a_join_form_error_comes_back_on_the_join_page_with_what_was_typed(client, tiers):
    admin = make_user("boss@tyne.example")
    organisation = make_organisation("Tyne Analytics", organisation_type="charity", size_band="1-9")
    add_member(organisation, admin, Role.ADMIN)
    client.force_login(admin)
    growth = tiers["growth"]

    response = client.post(
        f"/my/org/{organisation.slug}/billing/start/",
        {"tier": growth.pk, "interval": "month", "payment_method": "invoice", "po_number": "PO-4471-TYPED"},
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert "Invoices are annual; choose annual billing to pay by invoice." in html
    assert 'value="PO-4471-TYPED"' in html
    assert '<option value="invoice" selected>' in html and '<option value="month" selected>' in html
    assert "£450" in html  # still priced for the organisation
    assert not Subscription.objects.filter(organisation=organisation).exists()


def test_a_join_stripe_refuses_comes_back_on_the_join_page_with_what_was_typed(client, tiers, fake_stripe):
    admin = make_user("boss@tyne.example")
    organisation = make_organisation("Tyne Analytics", organisation_type="sme", size_band="1-9")
    add_member(organisation, admin, Role.ADMIN)
    client.force_login(admin)
    fake_stripe.fail(500)

    response = client.post(
        f"/my/org/{organisation.slug}/billing/start/",
        {"tier": tiers["growth"].pk, "interval": "year", "payment_method": "invoice", "po_number": "PO-9"},
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert "Join Growth as Tyne Analytics" in html  # the Join page, not the billing page
    assert 'value="PO-9"' in html
    assert "Payments are not available just now. Nothing has been charged" in html  # and says why
    assert not Subscription.objects.live().filter(organisation=organisation).exists()


def test_existing_memberships_are_given_the_start_their_rows_tell(tiers):
    """The migration that added ``started_at`` fills it in for the rows already there."""
    from importlib import import_module

    from django.apps import apps

    set_started_at = import_module("membership.migrations.0014_subscription_started_at").set_started_at
    now, growth = timezone.now(), tiers["growth"]

    def subscription(name, status, made_days_ago, period_days_ago=None, **fields):
        period = now - timedelta(days=period_days_ago) if period_days_ago is not None else None
        return Subscription.objects.create(
            organisation=make_organisation(name), tier=growth, status=status, amount_pence=90_000,
            created_at=now - timedelta(days=made_days_ago), current_period_start=period, **fields,
        )  # fmt: skip

    renewed = subscription("Renewed", "active", 400, 30)
    first = subscription("First", "active", 31, 30)
    paid_late = subscription("Paid late", "active", 40, 40)
    Invoice.objects.create(
        organisation=paid_late.organisation, subscription=paid_late, status="paid", paid_at=now - timedelta(days=20)
    )
    abandoned = subscription(
        "Abandoned", "cancelled", 50, ended_at=now - timedelta(days=49), stripe_checkout_session_id="cs_gone"
    )
    imported = subscription("Imported", "lapsed", 30, 400, ended_at=now - timedelta(days=35))  # from a spreadsheet
    waiting = subscription("Waiting", "pending", 3, stripe_subscription_id="sub_waiting")
    lapsed = subscription("Lapsed", "lapsed", 200, 195, grace_ends_at=now, ended_at=now - timedelta(days=5))

    set_started_at(apps, None)

    started = dict(Subscription.objects.values_list("pk", "started_at"))
    assert started[renewed.pk] == renewed.created_at
    assert started[first.pk] == first.current_period_start
    assert started[paid_late.pk] == now - timedelta(days=20)
    assert started[abandoned.pk] is None
    assert started[lapsed.pk] == lapsed.current_period_start
    assert started[imported.pk] == imported.current_period_start
    assert started[waiting.pk] is None
    assert membership_figures(now)["renewal_rate"] == 33  # Renewed, against Lapsed and Imported
