"""Starting a membership: card checkout, invoices for public bodies, finance's bank transfers, the demo checkout."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from membership import billing, billing_changes
from membership.models import (
    AuditEntry,
    Invoice,
    Organisation,
    OrganisationMember,
    OrganisationType,
    StripeEvent,
    Subscription,
)
from membership.services import MembershipError
from tests import factories
from tests.fake_stripe import FakeStripe, StripeFailure, signed_event
from tests.membership.conftest import WEBHOOK_SECRET

Status = Subscription.Status
YEAR, MONTH = Subscription.Interval.YEAR, Subscription.Interval.MONTH


def keys(fake: FakeStripe) -> list[tuple[str, str | None]]:
    """Each call that changed something at Stripe, with its idempotency key."""
    return [(r.path, r.idempotency_key) for r in fake.requests if r.method == "POST"]


def vat_rate(fake: FakeStripe) -> dict:
    """The one tax rate billing made at Stripe."""
    [rate] = [obj for obj in fake.objects.values() if obj["object"] == "tax_rate"]
    return rate


def actions(organisation: Organisation) -> list[str]:
    return list(AuditEntry.objects.filter(organisation=organisation).order_by("id").values_list("action", flat=True))


@pytest.fixture
def council(db):
    """A public body: pays by invoice, and every invoice must quote its purchase order."""
    user = factories.make_user("procurement@gateshead.example")
    organisation = factories.make_organisation(
        "Gateshead Council", organisation_type=OrganisationType.PUBLIC_SECTOR, needs_purchase_order=True
    )
    factories.add_member(organisation, user, OrganisationMember.Role.ADMIN)
    return organisation


def council_admin(council) -> object:
    return council.memberships.get().user


# Card checkout --------------------------------------------------------------------------------------------------


def test_it_sends_the_admin_to_stripe_checkout_for_a_pending_subscription(
    fake_stripe, robotics, growth, billing_admin, settings
):
    url = billing.start_card_checkout(robotics, growth, YEAR, billing_admin)

    subscription = Subscription.objects.get(organisation=robotics)
    session = fake_stripe.get(subscription.stripe_checkout_session_id)
    robotics.refresh_from_db()
    growth.refresh_from_db()
    assert url == session["url"]
    assert (subscription.status, subscription.payment_method, subscription.amount_pence) == ("pending", "card", 120_000)
    assert session["mode"] == "subscription"
    assert session["customer"] == robotics.stripe_customer_id
    assert session["client_reference_id"] == str(subscription.pk)
    assert session["metadata"] == {"subscription_id": str(subscription.pk), "organisation_id": str(robotics.pk)}
    assert session["line_items"] == [
        {
            "quantity": "1",
            "price_data": {
                "currency": "gbp",
                "unit_amount": "120000",
                "recurring": {"interval": "year"},
                "product": growth.stripe_product_id,
                "tax_behavior": "exclusive",
            },
            "tax_rates": [vat_rate(fake_stripe)["id"]],
        }
    ]
    assert fake_stripe.get(growth.stripe_product_id)["name"] == "Growth"
    assert session["success_url"] == f"{settings.SITE_URL}/my/org/tyne-robotics/billing/?checkout=success"
    assert session["cancel_url"] == f"{settings.SITE_URL}/my/org/tyne-robotics/billing/?checkout=cancelled"
    assert fake_stripe.get(robotics.stripe_customer_id)["email"] == "accounts@tyne-robotics.example"
    entry = AuditEntry.objects.get(action="billing.subscription.pending")
    assert (entry.actor, entry.changes["status"]) == (billing_admin, [None, "pending"])


def test_monthly_billing_uses_the_monthly_price(fake_stripe, robotics, growth, billing_admin):
    billing.start_card_checkout(robotics, growth, MONTH, billing_admin)

    subscription = Subscription.objects.get(organisation=robotics)
    price = fake_stripe.get(subscription.stripe_checkout_session_id)["line_items"][0]["price_data"]
    assert (subscription.amount_pence, subscription.interval) == (11_000, "month")
    assert (price["unit_amount"], price["recurring"]) == ("11000", {"interval": "month"})


def test_outgoing_calls_carry_idempotency_keys_made_from_our_ids(fake_stripe, robotics, growth, billing_admin):
    billing.start_card_checkout(robotics, growth, YEAR, billing_admin)

    subscription = Subscription.objects.get(organisation=robotics)
    assert keys(fake_stripe) == [
        ("/v1/customers", f"customer-org-{robotics.pk}"),
        ("/v1/products", f"product-tier-{growth.pk}"),
        ("/v1/tax_rates", "tax-rate-vat-20"),
        ("/v1/checkout/sessions", f"checkout-session-sub-{subscription.pk}"),
    ]


def test_stripe_charges_the_vat_the_emails_quote_on_top_of_the_price(fake_stripe, robotics, growth, billing_admin):
    billing.start_card_checkout(robotics, growth, YEAR, billing_admin)
    billing.start_card_checkout(robotics, growth, YEAR, billing_admin)  # started again: the same tax rate

    subscription = Subscription.objects.get(organisation=robotics, status=Status.PENDING)
    rate = vat_rate(fake_stripe)
    assert (rate["percentage"], rate["inclusive"], rate["tax_type"], rate["country"]) == (20.0, False, "vat", "GB")
    assert len(fake_stripe.calls("POST", "/v1/tax_rates")) == 1
    session = fake_stripe.get(subscription.stripe_checkout_session_id)
    assert session["line_items"][0]["tax_rates"] == [rate["id"]]
    _, stripe_subscription, invoice = fake_stripe.complete_checkout(session["id"])
    assert invoice["amount_due"] == billing.with_vat(120_000) == 144_000  # "£1,440.00 (£1,200.00 plus VAT)"
    assert fake_stripe.renew(stripe_subscription["id"], paid=True)["amount_due"] == 144_000  # and every renewal


def test_it_refuses_an_organisation_that_is_already_a_member(fake_stripe, robotics, growth, scale, billing_admin):
    Subscription.objects.create(organisation=robotics, tier=growth, status=Status.ACTIVE, amount_pence=120_000)

    with pytest.raises(MembershipError, match=r"already has a Growth membership.*upgrade or switch"):
        billing.start_card_checkout(robotics, scale, YEAR, billing_admin)

    assert Subscription.objects.filter(organisation=robotics).count() == 1
    assert fake_stripe.requests == []


@pytest.mark.parametrize(
    ("organisation_type", "tier_name", "interval", "message"),
    [
        (OrganisationType.CHARITY, "growth", YEAR, "no annual price for charity organisations"),
        (OrganisationType.SME, "scale", MONTH, "no monthly price"),  # Scale is billed annually only
    ],
)
def test_it_refuses_a_tier_with_no_price_for_the_organisation(
    fake_stripe, robotics, growth, scale, billing_admin, organisation_type, tier_name, interval, message
):
    robotics.organisation_type = organisation_type
    robotics.save()
    tier = {"growth": growth, "scale": scale}[tier_name]

    with pytest.raises(MembershipError, match=message):
        billing.start_card_checkout(robotics, tier, interval, billing_admin)

    assert not Subscription.objects.exists()
    assert fake_stripe.requests == []


def test_only_an_admin_can_start_paying(fake_stripe, robotics, growth):
    colleague = factories.make_user("intern@tyne-robotics.example")
    factories.add_member(robotics, colleague)

    with pytest.raises(MembershipError, match="Only an admin"):
        billing.start_card_checkout(robotics, growth, YEAR, colleague)

    assert not Subscription.objects.exists()


def test_stripe_unreachable_at_checkout_gives_a_clear_message_and_writes_nothing(
    fake_stripe, robotics, growth, billing_admin
):
    fake_stripe.stop()

    with pytest.raises(MembershipError, match="Payments are not available just now"):
        billing.start_card_checkout(robotics, growth, YEAR, billing_admin)

    robotics.refresh_from_db()
    assert not Subscription.objects.exists()
    assert actions(robotics) == []
    assert robotics.stripe_customer_id is None


def test_stripe_failing_the_checkout_rolls_the_pending_subscription_back(fake_stripe, robotics, growth, billing_admin):
    fake_stripe.fail(500, "/v1/checkout/sessions")

    with pytest.raises(MembershipError, match="Payments are not available just now"):
        billing.start_card_checkout(robotics, growth, YEAR, billing_admin)

    assert not Subscription.objects.exists()
    assert actions(robotics) == []
    # The customer Stripe did make is kept, and the next attempt uses it rather than making another.
    fake_stripe.recover()
    billing.start_card_checkout(robotics, growth, YEAR, billing_admin)
    assert len(fake_stripe.calls("POST", "/v1/customers")) == 1
    assert Subscription.objects.get(organisation=robotics).status == Status.PENDING


@pytest.mark.parametrize("path", ["/v1/customers", "/v1/products", "/v1/tax_rates"])
def test_a_customer_product_or_tax_rate_stripe_refused_with_a_500_it_keeps_is_made_when_tried_again(
    fake_stripe, robotics, growth, billing_admin, path
):
    """Stripe answers a repeat of a key with the answer it kept, a 500 included, for 24 hours: the retry sends a
    new key, and the object is made."""
    real_route = fake_stripe._route

    def creation_fails_once(method, route_path, params):
        if method == "POST" and route_path == path and not fake_stripe.calls("POST", path)[1:]:
            raise StripeFailure(500, "api_error", "Something went wrong on Stripe's end.")
        return real_route(method, route_path, params)

    fake_stripe._route = creation_fails_once
    with pytest.raises(MembershipError, match="Payments are not available just now"):
        billing.start_card_checkout(robotics, growth, YEAR, billing_admin)
    assert not Subscription.objects.exists()

    billing.start_card_checkout(robotics, growth, YEAR, billing_admin)

    first, retried = fake_stripe.calls("POST", path)
    base = {
        "/v1/customers": f"customer-org-{robotics.pk}",
        "/v1/products": f"product-tier-{growth.pk}",
        "/v1/tax_rates": "tax-rate-vat-20",
    }[path]
    assert (first.idempotency_key, retried.idempotency_key) == (base, f"{base}-retry-1")
    assert Subscription.objects.get(organisation=robotics).status == Status.PENDING
    robotics.refresh_from_db()
    growth.refresh_from_db()
    assert robotics.stripe_customer_id and growth.stripe_product_id


@pytest.mark.parametrize(("path", "resource"), [("/v1/customers", "customer"), ("/v1/products", "product")])
def test_a_customer_or_product_stripe_made_but_answered_with_a_500_is_found_not_made_again(
    fake_stripe, robotics, growth, billing_admin, path, resource
):
    """Stripe's answer to a 500 does not say whether the object was made: before making it under a new key, billing
    looks for one an earlier attempt made, by its metadata."""
    real_route = fake_stripe._route

    def made_then_fails(method, route_path, params):
        answer = real_route(method, route_path, params)
        if method == "POST" and route_path == path:
            fake_stripe._route = real_route
            raise StripeFailure(500, "api_error", "Something went wrong on Stripe's end.")
        return answer

    fake_stripe._route = made_then_fails
    with pytest.raises(MembershipError, match="Payments are not available just now"):
        billing.start_card_checkout(robotics, growth, YEAR, billing_admin)

    billing.start_card_checkout(robotics, growth, YEAR, billing_admin)

    [made] = [obj for obj in fake_stripe.objects.values() if obj["object"] == resource]
    assert len(fake_stripe.calls("POST", path)) == 1
    assert len(fake_stripe.calls("GET", f"{path}/search")) == 1
    robotics.refresh_from_db()
    growth.refresh_from_db()
    assert made["id"] in (robotics.stripe_customer_id, growth.stripe_product_id)


def test_a_customer_stripe_says_is_still_being_made_is_asked_for_again_with_its_key(
    fake_stripe, robotics, growth, billing_admin
):
    """409: a request with the same key is under way at Stripe. The retry sends that key again."""
    real_route = fake_stripe._route

    def in_progress_once(method, route_path, params):
        if method == "POST" and route_path == "/v1/customers":
            fake_stripe._route = real_route
            raise StripeFailure(409, "idempotency_error", "A request with this key is in progress.")
        return real_route(method, route_path, params)

    fake_stripe._route = in_progress_once
    with pytest.raises(MembershipError, match="Payments are not available just now"):
        billing.start_card_checkout(robotics, growth, YEAR, billing_admin)
    fake_stripe._answers.clear()  # Stripe keeps no answer for a request that conflicted with one under way

    billing.start_card_checkout(robotics, growth, YEAR, billing_admin)

    keys_sent = [call.idempotency_key for call in fake_stripe.calls("POST", "/v1/customers")]
    assert keys_sent[-1] == f"customer-org-{robotics.pk}"
    assert not fake_stripe.calls("GET", "/v1/customers/search")


def test_a_customer_asked_for_while_stripe_was_unreachable_keeps_its_key(fake_stripe, robotics, growth, billing_admin):
    """With no answer, Stripe may have made the customer: the retry sends the same key, so it is made once."""
    port = int(fake_stripe.url.rsplit(":", 1)[1])
    fake_stripe.stop()
    with pytest.raises(MembershipError, match="Payments are not available just now"):
        billing.start_card_checkout(robotics, growth, YEAR, billing_admin)
    fake_stripe.start(port)

    billing.start_card_checkout(robotics, growth, YEAR, billing_admin)

    [customer] = fake_stripe.calls("POST", "/v1/customers")
    assert customer.idempotency_key == f"customer-org-{robotics.pk}"


def test_starting_again_closes_the_unfinished_checkout_first(fake_stripe, robotics, growth, scale, billing_admin):
    billing.start_card_checkout(robotics, growth, YEAR, billing_admin)
    first = Subscription.objects.get(organisation=robotics)

    billing.start_card_checkout(robotics, scale, YEAR, billing_admin)

    first.refresh_from_db()
    assert fake_stripe.get(first.stripe_checkout_session_id)["status"] == "expired"
    assert (
        f"/v1/checkout/sessions/{first.stripe_checkout_session_id}/expire",
        f"checkout-expire-sub-{first.pk}",
    ) in keys(fake_stripe)
    assert first.status == Status.CANCELLED
    assert Subscription.objects.live().get(organisation=robotics).tier == scale


def test_an_unfinished_card_checkout_gives_way_to_paying_by_invoice(fake_stripe, robotics, growth, billing_admin):
    billing.start_card_checkout(robotics, growth, YEAR, billing_admin)
    card = Subscription.objects.get(organisation=robotics)

    subscription = billing.start_invoice_subscription(robotics, growth, billing_admin, "PO-2")

    card.refresh_from_db()
    assert fake_stripe.get(card.stripe_checkout_session_id)["status"] == "expired"
    assert card.status == Status.CANCELLED
    assert (subscription.status, subscription.payment_method) == (Status.PENDING, "invoice")
    assert Subscription.objects.live().get(organisation=robotics) == subscription


def test_a_checkout_paid_but_not_yet_confirmed_is_not_replaced(
    fake_stripe, paid_checkout, robotics, scale, billing_admin
):
    with pytest.raises(MembershipError, match="being confirmed"):
        billing.start_card_checkout(robotics, scale, YEAR, billing_admin)

    paid_checkout.subscription.refresh_from_db()
    assert paid_checkout.subscription.status == Status.PENDING


def test_the_customer_portal_is_a_stripe_session_for_the_organisation(fake_stripe, paid_checkout, robotics):
    robotics.refresh_from_db()
    url = billing.customer_portal_url(robotics, "https://members.example/my/org/tyne-robotics/billing/")

    call = fake_stripe.calls("POST", "/v1/billing_portal/sessions")[0]
    assert url.startswith("https://billing.stripe.test/p/")
    assert call.params == {
        "customer": robotics.stripe_customer_id,
        "return_url": "https://members.example/my/org/tyne-robotics/billing/",
    }
    assert re.fullmatch(rf"portal-org-{robotics.pk}-\d+", call.idempotency_key)


# Invoices for public bodies -------------------------------------------------------------------------------------


def test_a_public_body_is_invoiced_with_its_po_number_due_in_30_days(fake_stripe, council, growth):
    subscription = billing.start_invoice_subscription(council, growth, council_admin(council), " PO-7781 ")

    council.refresh_from_db()
    created = fake_stripe.calls("POST", "/v1/subscriptions")[0].params
    invoice = Invoice.objects.get(subscription=subscription)
    stripe_invoice = fake_stripe.get(invoice.stripe_invoice_id)
    assert (subscription.status, subscription.payment_method, subscription.po_number) == (
        "pending",
        "invoice",
        "PO-7781",
    )
    assert subscription.stripe_subscription_id == stripe_invoice["parent"]["subscription_details"]["subscription"]
    assert (created["collection_method"], created["days_until_due"]) == ("send_invoice", "30")
    assert created["metadata"]["po_number"] == "PO-7781"
    assert "PO PO-7781" in created["description"]
    assert created["items"][0]["price_data"]["unit_amount"] == "120000"
    assert stripe_invoice["custom_fields"] == [{"name": "PO number", "value": "PO-7781"}]
    assert created["items"][0]["tax_rates"] == [vat_rate(fake_stripe)["id"]]
    assert (invoice.status, invoice.po_number, invoice.amount_due_pence) == ("open", "PO-7781", 144_000)  # VAT added
    assert invoice.hosted_invoice_url == stripe_invoice["hosted_invoice_url"]
    assert invoice.due_date - timezone.now() > timedelta(days=29)
    assert keys(fake_stripe) == [
        ("/v1/customers", f"customer-org-{council.pk}"),
        ("/v1/products", f"product-tier-{growth.pk}"),
        ("/v1/tax_rates", "tax-rate-vat-20"),
        (f"/v1/customers/{council.stripe_customer_id}", f"customer-po-sub-{subscription.pk}"),
        ("/v1/subscriptions", f"invoice-subscription-sub-{subscription.pk}"),
    ]
    assert actions(council) == ["billing.subscription.pending", "billing.invoice.issued"]


def test_joining_again_by_invoice_without_a_po_number_quotes_no_earlier_one(
    fake_stripe, robotics, growth, billing_admin
):
    first = billing.start_invoice_subscription(robotics, growth, billing_admin, "PO-2026-OLD")
    Subscription.objects.filter(pk=first.pk).update(status=Status.LAPSED, ended_at=timezone.now())

    second = billing.start_invoice_subscription(robotics, growth, billing_admin, "")

    invoice = fake_stripe.get(Invoice.objects.get(subscription=second).stripe_invoice_id)
    assert not invoice["custom_fields"]
    robotics.refresh_from_db()
    assert not fake_stripe.get(robotics.stripe_customer_id)["invoice_settings"]["custom_fields"]


def test_an_invoice_needs_the_po_number_the_organisation_requires(fake_stripe, council, growth):
    with pytest.raises(MembershipError, match="purchase order number"):
        billing.start_invoice_subscription(council, growth, council_admin(council), "  ")

    assert not Subscription.objects.exists()
    assert fake_stripe.requests == []


@pytest.fixture
def invoiced(fake_stripe, council, growth) -> Invoice:
    subscription = billing.start_invoice_subscription(council, growth, council_admin(council), "PO-7781")
    return Invoice.objects.get(subscription=subscription)


def test_finance_marking_an_invoice_paid_by_bank_transfer_activates_the_membership(
    client, fake_stripe, invoiced, staff_user
):
    billing.mark_invoice_paid_out_of_band(invoiced, staff_user, "BACS 2231-77")

    invoiced.refresh_from_db()
    subscription = invoiced.subscription
    subscription.refresh_from_db()
    assert (invoiced.status, invoiced.paid_out_of_band, invoiced.amount_paid_pence) == ("paid", True, 144_000)
    assert invoiced.paid_at is not None
    assert subscription.status == Status.ACTIVE
    assert subscription.current_period_end > timezone.now() + timedelta(days=364)
    pay = fake_stripe.calls("POST", f"/v1/invoices/{invoiced.stripe_invoice_id}/pay")
    assert [(c.params, c.idempotency_key) for c in pay] == [
        ({"paid_out_of_band": "true"}, f"invoice-paid-out-of-band-{invoiced.pk}")
    ]
    paid = AuditEntry.objects.get(action="billing.invoice.paid_out_of_band")
    assert (paid.actor, paid.changes) == (staff_user, {"status": ["open", "paid"], "reference": [None, "BACS 2231-77"]})
    activated = AuditEntry.objects.get(action="billing.subscription.activated")
    assert (activated.actor, activated.changes) == (
        staff_user,
        {
            "status": ["pending", "active"],
            "current_period_start": [None, str(subscription.current_period_start)],
            "current_period_end": [None, str(subscription.current_period_end)],
        },
    )

    # Marking it again, and Stripe's own invoice.paid that follows, change nothing more.
    entries = AuditEntry.objects.count()
    billing.mark_invoice_paid_out_of_band(invoiced, staff_user, "BACS 2231-77")
    payload, signature = signed_event("invoice.paid", fake_stripe.get(invoiced.stripe_invoice_id), WEBHOOK_SECRET)
    response = client.post(
        "/billing/stripe/webhook/", payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )
    assert response.status_code == 200
    assert AuditEntry.objects.count() == entries
    assert len(fake_stripe.calls("POST", "/v1/invoices")) == 1


def test_finance_is_told_when_the_invoice_was_paid_by_card_meanwhile_and_nothing_is_recorded(
    client, fake_stripe, invoiced
):
    paid = fake_stripe.set(invoiced.stripe_invoice_id, status="paid", amount_paid=invoiced.amount_due_pence)
    fake_stripe.get(invoiced.subscription.stripe_subscription_id)["latest_invoice"] = paid["id"]
    payload, signature = signed_event("invoice.paid", paid, WEBHOOK_SECRET)
    client.post("/billing/stripe/webhook/", payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)
    client.force_login(factories.make_staff("finance@netech.example", superuser=True))

    response = client.post(reverse("crm_invoices:mark_paid", args=[invoiced.pk]), {"reference": "BACS 9911-02"})

    assert response.status_code == 400
    assert "already paid through Stripe" in response.text and "BACS 9911-02" in response.text
    assert "refund" in response.text
    invoiced.refresh_from_db()
    assert (invoiced.status, invoiced.paid_out_of_band) == ("paid", False)
    assert not AuditEntry.objects.filter(action="billing.invoice.paid_out_of_band").exists()
    assert not fake_stripe.calls("POST", f"/v1/invoices/{invoiced.stripe_invoice_id}/pay")


def test_an_admin_withdraws_an_invoiced_request_before_paying_and_can_join_again(client, fake_stripe, invoiced, growth):
    """A wrong PO number, or a change of mind: Stripe voids the invoice and ends the subscription, and nothing is
    owed."""
    council, subscription = invoiced.organisation, invoiced.subscription
    client.force_login(council_admin(council))
    page = client.get(reverse("membership:billing", args=[council.slug])).content.decode()
    assert "Withdraw this request and void its invoice" in page

    response = client.post(reverse("membership:withdraw_application", args=[council.slug]), follow=True)

    assert "withdrawn and its invoice is void: nothing is owed" in response.content.decode()
    invoiced.refresh_from_db()
    subscription.refresh_from_db()
    assert (invoiced.status, subscription.status) == (Invoice.Status.VOID, Status.CANCELLED)
    assert fake_stripe.get(invoiced.stripe_invoice_id)["status"] == "void"
    assert fake_stripe.get(subscription.stripe_subscription_id)["status"] == "canceled"
    void = fake_stripe.calls("POST", f"/v1/invoices/{invoiced.stripe_invoice_id}/void")
    cancel = fake_stripe.calls("DELETE", f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    assert [c.idempotency_key for c in void + cancel] == [
        f"sub-{subscription.pk}-change-1-void-invoice-{invoiced.pk}",
        None,
    ]
    assert actions(council)[-2:] == ["billing.invoice.voided", "billing.subscription.cancelled"]
    assert AuditEntry.objects.filter(action="billing.subscription.cancelled").get().actor == council_admin(council)

    # Again: nothing to withdraw. Then a new request, with the right PO number.
    again = client.post(reverse("membership:withdraw_application", args=[council.slug]), follow=True)
    assert "has no membership waiting for its first invoice to be paid" in again.content.decode()
    renewed = billing.start_invoice_subscription(council, growth, council_admin(council), "PO-7782")
    assert (renewed.status, renewed.po_number) == (Status.PENDING, "PO-7782")


def test_a_request_whose_invoice_was_just_paid_is_not_withdrawn(fake_stripe, invoiced):
    fake_stripe.set(invoiced.stripe_invoice_id, status="paid", amount_paid=invoiced.amount_due_pence)
    entries = AuditEntry.objects.count()

    with pytest.raises(MembershipError, match="has just been paid, so the membership starts instead"):
        billing_changes.withdraw_invoiced_application(invoiced.organisation, council_admin(invoiced.organisation))

    invoiced.refresh_from_db()
    assert (invoiced.status, invoiced.subscription.status) == (Invoice.Status.OPEN, Status.PENDING)
    assert AuditEntry.objects.count() == entries
    assert not fake_stripe.calls("DELETE", f"/v1/subscriptions/{invoiced.subscription.stripe_subscription_id}")


def test_only_an_admin_withdraws_a_request_and_stripe_failing_writes_nothing(client, fake_stripe, invoiced):
    council = invoiced.organisation
    admin = council_admin(council)
    colleague = factories.make_user("clerk@gateshead.example")
    factories.add_member(council, colleague)
    with pytest.raises(MembershipError):
        billing_changes.withdraw_invoiced_application(council, colleague)
    fake_stripe.fail(500, path=f"/v1/invoices/{invoiced.stripe_invoice_id}/void")

    with pytest.raises(MembershipError):
        billing_changes.withdraw_invoiced_application(council, admin)

    invoiced.refresh_from_db()
    assert (invoiced.status, invoiced.subscription.status) == (Invoice.Status.OPEN, Status.PENDING)
    assert not AuditEntry.objects.filter(action__in=["billing.invoice.voided", "billing.subscription.cancelled"])

    # Stripe keeps the error it answered under that key for a day: the retry asks under a new one, and goes through.
    fake_stripe.recover()
    billing_changes.withdraw_invoiced_application(council, admin)
    void = fake_stripe.calls("POST", f"/v1/invoices/{invoiced.stripe_invoice_id}/void")
    assert [c.idempotency_key for c in void] == [
        f"sub-{invoiced.subscription_id}-change-1-void-invoice-{invoiced.pk}",
        f"sub-{invoiced.subscription_id}-change-2-void-invoice-{invoiced.pk}",
    ]
    invoiced.refresh_from_db()
    assert invoiced.status == Invoice.Status.VOID


def test_paying_an_older_invoice_by_bank_transfer_leaves_an_unpaid_renewal_in_grace(demo, council, growth, staff_user):
    now = timezone.now()
    grace_ends = now + timedelta(days=20)
    subscription = Subscription.objects.create(
        organisation=council,
        tier=growth,
        status=Status.GRACE,
        payment_method=Subscription.PaymentMethod.INVOICE,
        amount_pence=120_000,
        current_period_start=now - timedelta(days=40),
        current_period_end=now + timedelta(days=325),
        grace_ends_at=grace_ends,
    )
    Invoice.objects.create(organisation=council, subscription=subscription, number="RENEWAL", amount_due_pence=144_000)
    proration = Invoice.objects.create(
        organisation=council,
        subscription=subscription,
        number="PRORATION",
        amount_due_pence=4_321,
        created_at=now - timedelta(days=130),
    )

    billing.mark_invoice_paid_out_of_band(proration, staff_user, "BACS 55")

    subscription.refresh_from_db()
    assert (subscription.status, subscription.grace_ends_at) == (Status.GRACE, grace_ends)
    assert actions(council) == ["billing.invoice.paid_out_of_band"]


def test_finance_confirms_the_invoice_at_its_amount_to_the_penny(client, fake_stripe, invoiced):
    Invoice.objects.filter(pk=invoiced.pk).update(amount_due_pence=148_147)
    client.force_login(factories.make_staff("finance@netech.example", superuser=True))

    page = client.get(reverse("crm_invoices:mark_paid", args=[invoiced.pk])).text

    assert "£1,481.47, awaiting payment" in page


def test_a_bank_reference_typed_with_control_characters_is_recorded_without_them(client, fake_stripe, invoiced):
    client.force_login(factories.make_staff("finance@netech.example", superuser=True))
    response = client.post(reverse("crm_invoices:mark_paid", args=[invoiced.pk]), {"reference": "BACS\x00 77"})
    assert response.status_code == 302
    paid = AuditEntry.objects.get(action="billing.invoice.paid_out_of_band")
    assert paid.changes["reference"] == [None, "BACS 77"]


def test_only_staff_can_mark_an_invoice_paid(fake_stripe, invoiced, council):
    with pytest.raises(MembershipError, match="finance"):
        billing.mark_invoice_paid_out_of_band(invoiced, council_admin(council), "BACS 1")

    invoiced.refresh_from_db()
    assert invoiced.status == Invoice.Status.OPEN
    assert not fake_stripe.calls("POST", "/v1/invoices")


def test_when_stripe_cannot_be_told_the_invoice_stays_open(fake_stripe, invoiced, staff_user):
    fake_stripe.fail(500)

    with pytest.raises(MembershipError, match="Payments are not available"):
        billing.mark_invoice_paid_out_of_band(invoiced, staff_user, "BACS 2231-77")

    invoiced.refresh_from_db()
    assert invoiced.status == Invoice.Status.OPEN
    assert invoiced.subscription.status == Status.PENDING
    assert not AuditEntry.objects.filter(action="billing.invoice.paid_out_of_band").exists()


# The demo checkout ----------------------------------------------------------------------------------------------


def test_the_demo_checkout_pays_through_the_webhook_path(client, demo, robotics, growth, billing_admin):
    url = billing.start_card_checkout(robotics, growth, YEAR, billing_admin)
    client.force_login(billing_admin)

    page = client.get(url)
    assert page.status_code == 200
    assert "Demo payment: no card is charged" in page.text
    assert "Pay (demo)" in page.text and "£1,200.00" in page.text

    response = client.post(url, {"pay": "1"})

    subscription = Subscription.objects.get(organisation=robotics)
    assert response.status_code == 302
    assert response["Location"] == "/my/org/tyne-robotics/billing/?checkout=success"
    assert subscription.status == Status.ACTIVE
    assert subscription.stripe_subscription_id == f"demo_sub_{subscription.pk}"
    assert subscription.current_period_end > timezone.now() + timedelta(days=364)
    assert set(StripeEvent.objects.values_list("type", flat=True)) == {"checkout.session.completed", "invoice.paid"}
    assert Invoice.objects.get(subscription=subscription).status == Invoice.Status.PAID
    assert actions(robotics) == [
        "billing.subscription.pending",
        "billing.subscription.activated",
        "billing.invoice.paid",
    ]
    assert demo.requests == []
    # Paying again (a double click, the back button) changes nothing.
    assert client.post(url, {"pay": "1"})["Location"] == "/my/org/tyne-robotics/billing/"
    assert StripeEvent.objects.count() == 2


def test_the_demo_checkout_charges_the_price_plus_vat_as_the_emails_say(client, demo, robotics, growth, billing_admin):
    url = billing.start_card_checkout(robotics, growth, YEAR, billing_admin)
    client.force_login(billing_admin)

    client.post(url, {"pay": "1"})

    invoice = Invoice.objects.get(subscription__organisation=robotics)
    assert (invoice.amount_due_pence, invoice.amount_paid_pence) == (144_000, 144_000)


def test_cancelling_the_demo_checkout_cancels_the_pending_subscription(client, demo, robotics, growth, billing_admin):
    url = billing.start_card_checkout(robotics, growth, YEAR, billing_admin)
    client.force_login(billing_admin)

    response = client.post(url, {"cancel": "1"})

    assert response["Location"] == "/my/org/tyne-robotics/billing/?checkout=cancelled"
    assert Subscription.objects.get(organisation=robotics).status == Status.CANCELLED
    assert StripeEvent.objects.get().type == "checkout.session.expired"


def test_the_demo_checkout_is_not_found_for_anyone_but_the_organisations_admins(
    client, demo, robotics, growth, billing_admin, org_admin, outsider
):
    url = billing.start_card_checkout(robotics, growth, YEAR, billing_admin)
    colleague = factories.make_user("intern@tyne-robotics.example")
    factories.add_member(robotics, colleague)

    for user in (org_admin, colleague, outsider):  # another organisation's admin; a member; nobody's
        client.force_login(user)
        assert client.get(url).status_code == 404
        assert client.post(url, {"pay": "1"}).status_code == 404
    client.force_login(billing_admin)
    assert client.get(url[:-3] + "xx/").status_code == 404  # a token that does not verify

    assert Subscription.objects.get(organisation=robotics).status == Status.PENDING
    assert not StripeEvent.objects.exists()


def test_there_is_no_demo_checkout_once_stripe_is_configured(client, demo, robotics, growth, billing_admin, settings):
    url = billing.start_card_checkout(robotics, growth, YEAR, billing_admin)
    settings.DEMO_PAYMENTS = False
    client.force_login(billing_admin)

    assert client.get(url).status_code == 404
    assert client.post(url, {"pay": "1"}).status_code == 404


def test_a_demo_invoice_links_to_the_billing_page_and_finance_can_mark_it_paid(demo, council, growth, staff_user):
    subscription = billing.start_invoice_subscription(council, growth, council_admin(council), "PO-1")
    invoice = Invoice.objects.get(subscription=subscription)

    assert invoice.stripe_invoice_id.startswith("demo_in_")
    assert invoice.hosted_invoice_url.endswith("/my/org/gateshead-council/billing/")
    assert invoice.status == Invoice.Status.OPEN

    billing.mark_invoice_paid_out_of_band(invoice, staff_user, "BACS 9")

    subscription.refresh_from_db()
    assert subscription.status == Status.ACTIVE
    assert demo.requests == []
    assert billing.customer_portal_url(council, "unused") == "/my/org/gateshead-council/billing/"
