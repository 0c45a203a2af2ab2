"""A membership recorded before online payment (imported from the spreadsheets the platform replaces) moves onto
Stripe from the billing page, against the local fake Stripe: by card through Checkout, or by invoice, with its
first charge at the renewal, never for the period already paid for. Until then, nothing on the billing page asks
Stripe to change a subscription it does not have."""

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from config.emails import send_email
from membership import billing, billing_changes, renewals
from membership.importing import import_members
from membership.models import (
    AuditEntry,
    FollowUp,
    Invoice,
    Organisation,
    OrganisationMember,
    OrganisationType,
    Subscription,
    TierPrice,
)
from membership.services import MembershipError
from tests import factories
from tests.membership.conftest import deliver, fresh
from tests.membership.import_files import ACME, contact, write_csv

Status = Subscription.Status


def _imported(organisation: Organisation, tier, *, days_left: int = 120, **fields) -> Subscription:
    """An active membership as the import records it: paid as the team arranged, no Stripe ids."""
    now = timezone.now()
    fields.setdefault("payment_method", Subscription.PaymentMethod.CARD)
    return Subscription.objects.create(
        organisation=organisation,
        tier=tier,
        status=Status.ACTIVE,
        amount_pence=100_000,  # last year's price, from the spreadsheet
        current_period_start=now - timedelta(days=365 - days_left),
        current_period_end=now + timedelta(days=days_left),
        started_at=now - timedelta(days=800),
        **fields,
    )


@pytest.fixture
def imported(fake_stripe, robotics, growth, billing_admin) -> SimpleNamespace:
    return SimpleNamespace(
        subscription=_imported(robotics, growth), organisation=robotics, admin=billing_admin, fake=fake_stripe
    )


@pytest.fixture
def council(fake_stripe, growth) -> SimpleNamespace:
    admin = factories.make_user("procurement@gateshead.example")
    organisation = factories.make_organisation(
        "Gateshead Council", organisation_type=OrganisationType.PUBLIC_SECTOR, needs_purchase_order=True
    )
    factories.add_member(organisation, admin, OrganisationMember.Role.ADMIN)
    subscription = _imported(organisation, growth, payment_method=Subscription.PaymentMethod.INVOICE)
    return SimpleNamespace(subscription=subscription, organisation=organisation, admin=admin, fake=fake_stripe)


def actions(organisation: Organisation) -> list[str]:
    return list(AuditEntry.objects.filter(organisation=organisation).order_by("pk").values_list("action", flat=True))


def stripe_writes(fake) -> list:
    return [request for request in fake.requests if request.method in ("POST", "DELETE")]


def test_the_billing_page_offers_online_payment_and_hides_what_only_stripe_could_change(client, imported):
    client.force_login(imported.admin)

    page = client.get(reverse("membership:billing", args=[imported.organisation.slug])).content.decode()

    assert "Pay online from your renewal" in page
    assert "at £1,200 a year + VAT" in page  # the tier's price now, not last year's
    assert "Arrangement with the membership team" in page
    assert "Change card" not in page and "Change tier" not in page and "Pay by invoice instead" not in page
    assert "Cancel at the end of the period" in page


def test_a_member_who_is_not_an_admin_sees_no_offer(client, imported):
    colleague = factories.make_user("engineer@tyne-robotics.example")
    factories.add_member(imported.organisation, colleague)
    client.force_login(colleague)

    page = client.get(reverse("membership:billing", args=[imported.organisation.slug])).content.decode()

    assert "Pay online from your renewal" not in page
    assert "Only your organisation's admins can change the membership." in page


def test_by_card_checkout_starts_a_trial_to_the_renewal_and_the_webhook_links_the_membership(client, imported):
    subscription, organisation, fake = imported.subscription, imported.organisation, imported.fake
    period_start, period_end = subscription.current_period_start, subscription.current_period_end
    client.force_login(imported.admin)

    response = client.post(reverse("membership:pay_online", args=[organisation.slug]), {"payment_method": "card"})

    assert response.status_code == 302 and response["Location"].startswith("https://checkout.stripe.test/")
    [created] = fake.calls("POST", "/v1/checkout/sessions")
    assert created.idempotency_key == f"sub-{subscription.pk}-change-1-online-card"
    assert created.params["mode"] == "subscription"
    assert created.params["subscription_data"]["trial_end"] == str(int(period_end.timestamp()))
    assert created.params["subscription_data"]["metadata"]["subscription_id"] == str(subscription.pk)
    assert created.params["line_items"][0]["price_data"]["unit_amount"] == "120000"
    pending = fresh(subscription)
    assert pending.stripe_subscription_id is None
    assert fake.get(pending.stripe_checkout_session_id)["status"] == "open"
    assert actions(organisation) == ["billing.subscription.online_payment_started"]

    # Back on the billing page while Stripe confirms the card: thanked, and not offered the move again.
    back = client.get(reverse("membership:billing", args=[organisation.slug]), {"online": "card"}).content.decode()
    assert "It is charged when your membership renews, and not before." in back
    assert "Pay online from your renewal" not in back

    # The admin saves a card: Stripe starts the subscription in a trial, with a paid invoice for nothing.
    session, stripe_subscription, zero = fake.complete_checkout(pending.stripe_checkout_session_id)
    assert (stripe_subscription["status"], zero["amount_due"]) == ("trialing", 0)
    assert deliver(client, "invoice.paid", zero).status_code == 200  # it may come first
    assert deliver(client, "checkout.session.completed", session).status_code == 200

    linked = fresh(subscription)
    assert linked.stripe_subscription_id == stripe_subscription["id"]
    assert (linked.status, linked.payment_method, linked.amount_pence) == (Status.ACTIVE, "card", 120_000)
    assert linked.current_period_start == period_start  # the period paid for still began when it began
    assert abs(linked.current_period_end - period_end) < timedelta(seconds=1)
    assert not Invoice.objects.filter(organisation=organisation).exists()  # nothing was owed
    assert actions(organisation)[1:] == ["billing.subscription.moved_online", "billing.subscription.updated"]
    moved = AuditEntry.objects.get(action="billing.subscription.moved_online")
    assert "its card is charged at each renewal" in moved.summary
    organisation.refresh_from_db()
    assert organisation.stripe_customer_id == session["customer"]
    assert billing.billed_online(linked) and not billing.may_pay_online(linked)

    # At the renewal Stripe charges the card: the first real invoice, and a year more.
    renewal = fake.renew(stripe_subscription["id"], paid=True)
    assert deliver(client, "invoice.paid", renewal).status_code == 200
    renewed = fresh(subscription)
    assert renewed.current_period_end - linked.current_period_end > timedelta(days=364)
    invoice = Invoice.objects.get(organisation=organisation)
    assert (invoice.status, invoice.amount_due_pence) == (Invoice.Status.PAID, 144_000)
    assert "billing.subscription.renewed" in actions(organisation)


def test_by_invoice_stripe_invoices_from_the_renewal_and_the_row_is_linked_at_once(client, council):
    subscription, organisation, fake = council.subscription, council.organisation, council.fake
    client.force_login(council.admin)
    url = reverse("membership:pay_online", args=[organisation.slug])

    # A council's invoices need a PO number: refused, with the choice kept and nothing at Stripe.
    refused = client.post(url, {"payment_method": "invoice", "po_number": "  "})
    assert refused.status_code == 400
    page = refused.content.decode()
    assert "Your organisation needs a purchase order number on its invoices." in page
    assert re.search(r'<input type="radio" name="payment_method" value="invoice"[^>]* checked', page)
    assert stripe_writes(fake) == []

    response = client.post(url, {"payment_method": "invoice", "po_number": "PO-9001"}, follow=True)

    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert "Stripe will send Gateshead Council an invoice payable within 30 days" in message
    [created] = fake.calls("POST", "/v1/subscriptions")
    assert created.params["collection_method"] == "send_invoice"
    assert created.params["days_until_due"] == "30"
    assert created.params["trial_end"] == str(int(subscription.current_period_end.timestamp()))
    assert created.params["metadata"]["po_number"] == "PO-9001"
    assert created.idempotency_key.startswith(f"sub-{subscription.pk}-change-1-online-invoice-")
    customer = fake.get(created.params["customer"])
    assert customer["invoice_settings"]["custom_fields"] == [{"name": "PO number", "value": "PO-9001"}]
    linked = fresh(subscription)
    assert fake.get(linked.stripe_subscription_id)["status"] == "trialing"
    assert (linked.status, linked.payment_method, linked.po_number) == (Status.ACTIVE, "invoice", "PO-9001")
    assert linked.current_period_start == subscription.current_period_start
    assert not Invoice.objects.filter(organisation=organisation).exists()
    assert actions(organisation) == [
        "billing.subscription.online_payment_started",
        "billing.subscription.moved_online",
        "billing.subscription.updated",
    ]
    assert AuditEntry.objects.get(action="billing.subscription.online_payment_started").actor == council.admin

    # Stripe's own events about the trial's start change nothing more.
    stripe_subscription = fake.get(linked.stripe_subscription_id)
    zero = fake.get(stripe_subscription["latest_invoice"])
    assert deliver(client, "invoice.paid", zero).status_code == 200
    assert deliver(client, "customer.subscription.updated", stripe_subscription).status_code == 200
    assert len(actions(organisation)) == 3
    assert not Invoice.objects.filter(organisation=organisation).exists()


def test_starting_again_closes_the_first_checkout_so_only_one_can_be_completed(imported):
    first = billing_changes.start_paying_online(imported.organisation, imported.admin, "card")
    first_session = fresh(imported.subscription).stripe_checkout_session_id

    second = billing_changes.start_paying_online(imported.organisation, imported.admin, "card")

    assert first != second
    assert imported.fake.get(first_session)["status"] == "expired"
    assert fresh(imported.subscription).stripe_checkout_session_id not in (None, first_session)


def test_each_checkout_closed_is_its_own_call_so_no_earlier_one_stays_open(imported):
    """Three starts: the first and the second checkouts are both closed, each under a key of the change closing
    it (Stripe answers a repeated key with its first answer, about another checkout)."""
    organisation, admin, fake, pk = imported.organisation, imported.admin, imported.fake, imported.subscription.pk
    sessions = []
    for _ in range(3):
        billing_changes.start_paying_online(organisation, admin, "card")
        sessions.append(fresh(imported.subscription).stripe_checkout_session_id)

    assert [fake.get(session)["status"] for session in sessions] == ["expired", "expired", "open"]
    expiries = [r.idempotency_key for r in fake.requests if r.method == "POST" and r.path.endswith("/expire")]
    assert expiries == [f"sub-{pk}-change-2-expire-checkout", f"sub-{pk}-change-3-expire-checkout"]


def test_a_cancellation_closes_the_checkout_left_open_so_it_cannot_renew_the_membership(client, imported):
    organisation, admin, fake = imported.organisation, imported.admin, imported.fake
    billing_changes.start_paying_online(organisation, admin, "card")
    billing_changes.start_paying_online(organisation, admin, "card")
    left_open = fresh(imported.subscription).stripe_checkout_session_id

    billing_changes.cancel_at_period_end(organisation, admin)

    assert fake.get(left_open)["status"] == "expired"
    assert fresh(imported.subscription).cancel_at_period_end is True


def test_an_unfinished_checkout_closing_at_stripe_leaves_nothing_open(client, imported):
    billing_changes.start_paying_online(imported.organisation, imported.admin, "card")
    session = imported.fake.set(fresh(imported.subscription).stripe_checkout_session_id, status="expired")

    assert deliver(client, "checkout.session.expired", session).status_code == 200

    closed = fresh(imported.subscription)
    assert (closed.status, closed.stripe_checkout_session_id) == (Status.ACTIVE, None)


def test_the_import_leaves_the_terms_alone_while_a_checkout_to_pay_online_is_open(
    client, tmp_path, fake_stripe, growth
):
    """The checkout fixes the first charge at the renewal date it was opened with: a new date (or tier) imported
    meanwhile would be moved back when it completes, and the card charged for a period already paid."""
    row = contact(
        {**ACME, "renewal_date": (timezone.localdate() + timedelta(days=120)).isoformat()},
        "ann.lee@acme-robotics.example",
        "Ann",
        "Lee",
        role="admin",
    )
    assert import_members(str(write_csv(tmp_path / "members.csv", [row]))).ok
    organisation = Organisation.objects.get(company_number="01234567")
    subscription = Subscription.objects.get(organisation=organisation)
    billing_changes.start_paying_online(organisation, User.objects.get(email=row["contact_email"]), "card")
    session_id = fresh(subscription).stripe_checkout_session_id
    renewed = {**row, "renewal_date": (timezone.localdate() + timedelta(days=485)).isoformat()}

    refused = import_members(str(write_csv(tmp_path / "renewed.csv", [renewed])))

    assert not refused.ok
    [error] = refused.errors
    assert "is setting up online payment" in error.messages["renewal_date"][0]
    assert fresh(subscription).current_period_end == subscription.current_period_end

    # Left unfinished, the checkout closes at Stripe: then the import goes through.
    session = fake_stripe.set(session_id, status="expired")
    assert deliver(client, "checkout.session.expired", session).status_code == 200
    assert import_members(str(write_csv(tmp_path / "renewed.csv", [renewed]))).ok
    assert timezone.localdate(fresh(subscription).current_period_end) == timezone.localdate() + timedelta(days=485)


def test_a_tier_change_waits_for_the_renewal_while_stripe_bills_nothing(client, imported, scale):
    """Until the renewal the Stripe subscription is in its trial, over which Stripe prorates nothing: an upgrade
    would go unpaid, a downgrade credit nothing."""
    organisation, admin, fake = imported.organisation, imported.admin, imported.fake
    billing_changes.start_paying_online(organisation, admin, "card")
    session, stripe_subscription, _ = fake.complete_checkout(fresh(imported.subscription).stripe_checkout_session_id)
    assert deliver(client, "checkout.session.completed", session).status_code == 200
    audits = actions(organisation)

    with pytest.raises(MembershipError, match=r"is paid online from its renewal on .* Change its tier after that"):
        billing_changes.change_tier(organisation, scale, admin)

    assert not fake.calls("POST", f"/v1/subscriptions/{stripe_subscription['id']}")
    assert actions(organisation) == audits

    # After the renewal the change goes through as for any card payer.
    assert deliver(client, "invoice.paid", fake.renew(stripe_subscription["id"], paid=True)).status_code == 200
    assert "charged to your card now" in billing_changes.change_tier(organisation, scale, admin)


def test_a_checkout_already_completed_is_not_started_again(imported):
    billing_changes.start_paying_online(imported.organisation, imported.admin, "card")
    imported.fake.complete_checkout(fresh(imported.subscription).stripe_checkout_session_id)

    with pytest.raises(MembershipError, match="being confirmed"):
        billing_changes.start_paying_online(imported.organisation, imported.admin, "card")
    assert len(imported.fake.calls("POST", "/v1/checkout/sessions")) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"current_period_end_days": 2}, "too soon to set up online payment"),
        ({"cancel_at_period_end": True}, "is set to end"),
        ({"auto_renew": False}, "is set to end"),
        ({"status": Status.GRACE}, "last payment has not arrived"),
        ({"stripe_subscription_id": "sub_already"}, "already paid online"),
    ],
)
def test_refused_with_nothing_written_here_or_at_stripe(imported, change, message):
    subscription = imported.subscription
    days = change.pop("current_period_end_days", None)
    if days is not None:
        change["current_period_end"] = timezone.now() + timedelta(days=days)
    Subscription.objects.filter(pk=subscription.pk).update(**change)
    before = Subscription.objects.filter(pk=subscription.pk).values().get()

    with pytest.raises(MembershipError, match=message):
        billing_changes.start_paying_online(imported.organisation, imported.admin, "card")

    assert Subscription.objects.filter(pk=subscription.pk).values().get() == before
    assert stripe_writes(imported.fake) == []
    assert actions(imported.organisation) == []


def test_a_monthly_membership_is_not_moved_to_invoices(imported):
    Subscription.objects.filter(pk=imported.subscription.pk).update(interval=Subscription.Interval.MONTH)
    with pytest.raises(MembershipError, match="Invoices are annual"):
        billing_changes.start_paying_online(imported.organisation, imported.admin, "invoice")
    assert stripe_writes(imported.fake) == []


def test_only_an_admin_may_and_a_stripe_failure_writes_nothing_and_the_retry_takes_a_new_key(client, imported):
    colleague = factories.make_user("engineer@tyne-robotics.example")
    factories.add_member(imported.organisation, colleague)
    client.force_login(colleague)
    url = reverse("membership:pay_online", args=[imported.organisation.slug])
    assert client.post(url, {"payment_method": "card"}).status_code == 403
    with pytest.raises(MembershipError, match="Only an admin"):
        billing_changes.start_paying_online(imported.organisation, colleague, "card")

    imported.fake.fail(500, path="/v1/checkout/sessions")
    client.force_login(imported.admin)
    refused = client.post(url, {"payment_method": "card"})
    assert refused.status_code == 400
    assert "Payments are not available" in refused.content.decode()
    assert fresh(imported.subscription).stripe_checkout_session_id is None
    assert actions(imported.organisation) == []

    imported.fake.recover()
    assert client.post(url, {"payment_method": "card"}).status_code == 302
    keys = [call.idempotency_key for call in imported.fake.calls("POST", "/v1/checkout/sessions")]
    sub = imported.subscription.pk
    assert keys == [f"sub-{sub}-change-1-online-card", f"sub-{sub}-change-2-online-card"]


def test_changes_stripe_would_make_are_refused_with_a_way_forward_and_ask_stripe_nothing(imported, scale):
    organisation, admin = imported.organisation, imported.admin

    with pytest.raises(MembershipError, match="paid as arranged with the membership team"):
        billing_changes.change_tier(organisation, scale, admin)
    with pytest.raises(MembershipError, match="paid as arranged with the membership team"):
        billing_changes.switch_to_invoice(organisation, admin, "PO-1")

    assert stripe_writes(imported.fake) == []
    assert actions(organisation) == []


def test_cancelling_and_keeping_it_change_our_row_alone_and_close_an_open_checkout(imported):
    organisation, admin = imported.organisation, imported.admin
    billing_changes.start_paying_online(organisation, admin, "card")
    session_id = fresh(imported.subscription).stripe_checkout_session_id

    message = billing_changes.cancel_at_period_end(organisation, admin)

    assert "will end on" in message and "Stripe" not in message
    cancelled = fresh(imported.subscription)
    assert (cancelled.cancel_at_period_end, cancelled.stripe_checkout_session_id) == (True, None)
    assert imported.fake.get(session_id)["status"] == "expired"  # it cannot be completed and renew it after all
    assert not imported.fake.calls("POST", "/v1/subscriptions")
    assert actions(organisation)[-1] == "billing.subscription.cancellation_requested"

    billing_changes.resume_membership(organisation, admin)
    assert fresh(imported.subscription).cancel_at_period_end is False
    assert actions(organisation)[-1] == "billing.subscription.cancellation_undone"


def test_the_renewal_reminder_points_to_the_billing_page_while_there_is_time(imported, mailoutbox):
    subscription = imported.subscription
    kind = renewals.BillingNotice.Kind.RENEWAL_30
    send_email("membership/emails/renewal-reminder", ["a@x.example"], renewals._email_context(subscription, kind))
    Subscription.objects.filter(pk=subscription.pk).update(current_period_end=timezone.now() + timedelta(days=1))
    too_late = renewals._email_context(fresh(subscription), kind)
    send_email("membership/emails/renewal-reminder", ["a@x.example"], too_late)

    with_time, late = mailoutbox
    for body in (with_time.body, with_time.alternatives[0][0]):
        assert "You can set it up on your billing page, by card or by invoice" in body
        # Recorded at last year's £1,000; paid online it is the tier's price now.
        assert "Price: £1,000.00 plus VAT a year." in body.replace("<p>", "").replace("</p>", "")
        assert "(paid online, it is the tier" in body and "price now: £1,200.00 plus VAT a year)" in body
    for body in (late.body, late.alternatives[0][0]):
        assert "billing page, by card" not in body and "Please reply to this e-mail" in body


def test_a_card_join_waiting_for_stripe_is_not_called_an_arrangement_with_the_team(
    client, fake_stripe, robotics, growth, billing_admin
):
    billing.start_card_checkout(robotics, growth, Subscription.Interval.YEAR, billing_admin)
    client.force_login(billing_admin)

    page = client.get(reverse("membership:billing", args=[robotics.slug])).content.decode()

    assert "Arrangement with the membership team" not in page and "Pay online from your renewal" not in page
    assert not billing.paid_offline(Subscription.objects.get(organisation=robotics))


def test_an_overdue_membership_the_team_bills_is_asked_to_contact_it_not_to_update_a_card(client, imported):
    Subscription.objects.filter(pk=imported.subscription.pk).update(status=Status.GRACE)
    client.force_login(imported.admin)

    page = client.get(reverse("membership:billing", args=[imported.organisation.slug])).content.decode()

    assert "We have not received this membership's renewal payment yet. Please contact us" in page
    assert "Update your card" not in page


def test_the_account_manager_is_told_when_a_membership_moves_online(client, imported, staff_user):
    Organisation.objects.filter(pk=imported.organisation.pk).update(account_manager=staff_user)
    billing_changes.start_paying_online(imported.organisation, imported.admin, "card")
    session, _, _ = imported.fake.complete_checkout(fresh(imported.subscription).stripe_checkout_session_id)

    assert deliver(client, "checkout.session.completed", session).status_code == 200
    assert deliver(client, "checkout.session.completed", session).status_code == 200  # Stripe's redelivery

    [task] = FollowUp.objects.filter(organisation=imported.organisation)
    assert task.assignee == staff_user and task.due_date == timezone.localdate()
    assert task.title.startswith("Tyne Robotics now pays online: Stripe takes the renewal on ")
    assert task.title.endswith("Arrange no payment for it yourselves.")


def test_an_abandoned_checkout_is_audited_and_a_corrected_po_number_is_audited_from_what_it_was(client, council):
    Subscription.objects.filter(pk=council.subscription.pk).update(po_number="PO-OLD")
    billing_changes.start_paying_online(council.organisation, council.admin, "card")
    session = council.fake.set(fresh(council.subscription).stripe_checkout_session_id, status="expired")
    assert deliver(client, "checkout.session.expired", session).status_code == 200
    assert actions(council.organisation)[-1] == "billing.subscription.online_payment_abandoned"

    billing_changes.start_paying_online(council.organisation, council.admin, "invoice", "PO-NEW")

    started = AuditEntry.objects.filter(action="billing.subscription.online_payment_started").order_by("pk").last()
    assert started.changes == {"po_number": ["PO-OLD", "PO-NEW"]}


def test_refused_once_already_online_the_admin_is_told_why(client, imported):
    Subscription.objects.filter(pk=imported.subscription.pk).update(stripe_subscription_id="sub_already")
    client.force_login(imported.admin)

    response = client.post(
        reverse("membership:pay_online", args=[imported.organisation.slug]), {"payment_method": "card"}, follow=True
    )

    assert "is already paid online" in next(str(m) for m in get_messages(response.wsgi_request))


def test_no_offer_for_a_tier_with_no_price_for_the_organisation(imported):
    TierPrice.objects.filter(tier=imported.subscription.tier).delete()

    assert not billing.may_pay_online(fresh(imported.subscription))
    with pytest.raises(MembershipError, match="has no annual price"):
        billing_changes.start_paying_online(imported.organisation, imported.admin, "card")


def test_a_retry_links_the_subscription_an_earlier_attempt_made_rather_than_making_a_second(client, council):
    """Stripe made the subscription but its answer was lost (our side rolled back): the retry, with the PO number
    corrected, finds it by our id and brings it to the new terms."""
    billing_changes.start_paying_online(council.organisation, council.admin, "invoice", "PO-TYPO")
    made = fresh(council.subscription).stripe_subscription_id
    Subscription.objects.filter(pk=council.subscription.pk).update(stripe_subscription_id=None, po_number="")

    billing_changes.start_paying_online(council.organisation, council.admin, "invoice", "PO-9002")

    assert (
        len(council.fake.calls("POST", "/v1/subscriptions"))
        - len(council.fake.calls("POST", f"/v1/subscriptions/{made}"))
        == 1
    )  # one made, in all
    linked = fresh(council.subscription)
    assert (linked.stripe_subscription_id, linked.po_number) == (made, "PO-9002")
    assert council.fake.get(made)["metadata"]["po_number"] == "PO-9002"
    assert council.fake.get(made)["description"].endswith("PO PO-9002")


def test_a_monthly_membership_is_offered_card_only_in_its_reminder(imported, mailoutbox):
    Subscription.objects.filter(pk=imported.subscription.pk).update(interval=Subscription.Interval.MONTH)
    TierPrice.objects.filter(tier=imported.subscription.tier).update(monthly_pence=11_000)
    context = renewals._email_context(fresh(imported.subscription), renewals.BillingNotice.Kind.RENEWAL_30)

    send_email("membership/emails/renewal-reminder", ["a@x.example"], context)

    assert "You can set it up on your billing page, by card, and nothing" in mailoutbox[0].body


def test_an_import_finding_the_membership_moved_online_since_its_check_writes_nothing(tmp_path, fake_stripe, growth,
                                                                                       monkeypatch):  # fmt: skip
    """The import checks the rows, and checks them again as it writes, a while for a large file: an admin who starts
    paying online in between stops it, rather than have it move the renewal under a checkout."""
    from membership import importing

    row = contact({**ACME, "renewal_date": (timezone.localdate() + timedelta(days=120)).isoformat()},
                  "ann.lee@acme-robotics.example", "Ann", "Lee", role="admin")  # fmt: skip
    assert import_members(str(write_csv(tmp_path / "members.csv", [row]))).ok
    subscription = Subscription.objects.get(organisation__company_number="01234567")
    guard = importing._BatchWriter._refuse_if_moved_online_meanwhile

    def the_admin_starts_paying_online_just_before(subscription_ids):
        # After the rows were checked and just before they are written (the checks run again as the import
        # writes, so only this last moment is left).
        Subscription.objects.filter(pk=subscription.pk).update(stripe_checkout_session_id="cs_meanwhile")
        guard(subscription_ids)

    monkeypatch.setattr(
        importing._BatchWriter,
        "_refuse_if_moved_online_meanwhile",
        staticmethod(the_admin_starts_paying_online_just_before),
    )
    renewed = {**row, "renewal_date": (timezone.localdate() + timedelta(days=485)).isoformat()}

    report = import_members(str(write_csv(tmp_path / "renewed.csv", [renewed])))

    assert not report.written
    assert "Acme Robotics Ltd started paying online while this file was being imported" in report.problems[0]
    assert fresh(subscription).current_period_end == subscription.current_period_end
