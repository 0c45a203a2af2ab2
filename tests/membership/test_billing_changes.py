"""Changing a live membership from the portal, against the local fake Stripe: tier, payment method, cancelling
at the period's end and taking it back. Each change is asked of Stripe with keys built from our ids, audited, and
recorded on our row only when Stripe's webhook says so."""

from types import SimpleNamespace

import pytest

from membership import billing_changes
from membership.models import AuditEntry, Invoice, Organisation, OrganisationMember, OrganisationType, Subscription
from membership.services import MembershipError
from tests import factories
from tests.fake_stripe import FakeStripe, StripeFailure
from tests.membership.conftest import _tier, deliver, fresh

Status = Subscription.Status


def writes(fake: FakeStripe, since: int = 0) -> list[tuple[str, str, str | None]]:
    """Every call that changed something at Stripe (after the first ``since`` requests), with its key."""
    return [(r.method, r.path, r.idempotency_key) for r in fake.requests[since:] if r.method in ("POST", "DELETE")]


def audit(organisation: Organisation, action: str) -> AuditEntry:
    return AuditEntry.objects.get(organisation=organisation, action=action)


def stripe_updated(client, fake: FakeStripe, subscription: Subscription):
    """Stripe's customer.subscription.updated for the subscription as it now is at Stripe."""
    response = deliver(client, "customer.subscription.updated", fake.get(subscription.stripe_subscription_id))
    assert response.status_code == 200
    return fresh(subscription)


# Changing tier: card payers -------------------------------------------------------------------------------------


def test_a_card_upgrade_changes_the_price_at_stripe_prorated_and_charged_now(client, fake_stripe, card_member, scale):
    subscription, organisation = card_member.subscription, card_member.organisation
    stripe_before = fake_stripe.get(subscription.stripe_subscription_id)
    item_id = stripe_before["items"]["data"][0]["id"]
    requests_before = len(fake_stripe.requests)

    message = billing_changes.change_tier(organisation, scale, card_member.admin)

    scale.refresh_from_db()
    [update] = fake_stripe.calls("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    assert update.params == {
        "items": [
            {
                "id": item_id,
                "price_data": {
                    "currency": "gbp",
                    "unit_amount": "300000",
                    "recurring": {"interval": "year"},
                    "product": scale.stripe_product_id,
                    "tax_behavior": "exclusive",
                },
                "tax_rates": [stripe_before["items"]["data"][0]["tax_rates"][0]["id"]],
            }
        ],
        "proration_behavior": "always_invoice",
    }
    assert writes(fake_stripe, requests_before) == [
        ("POST", "/v1/products", f"product-tier-{scale.pk}"),
        (
            "POST",
            f"/v1/subscriptions/{subscription.stripe_subscription_id}",
            f"sub-{subscription.pk}-change-1-tier-{scale.pk}",
        ),
    ]
    assert "charged to your card now" in message
    # Our row waits for Stripe's word: the request is audited, the tier is not yet changed.
    assert fresh(subscription).tier.name == "Growth"
    requested = audit(organisation, "billing.subscription.upgrade_requested")
    assert (requested.actor, requested.changes) == (
        card_member.admin,
        {"tier": ["Growth", "Scale"], "amount_pence": [120_000, 300_000]},
    )

    updated = stripe_updated(client, fake_stripe, subscription)
    assert (updated.tier, updated.amount_pence, updated.status) == (scale, 300_000, Status.ACTIVE)
    assert audit(organisation, "billing.subscription.updated").changes == {
        "tier": ["Growth", "Scale"],
        "amount_pence": [120_000, 300_000],
    }
    # Stripe charged the prorated difference at once; its invoice.paid records it.
    proration = fake_stripe.get(fake_stripe.get(subscription.stripe_subscription_id)["latest_invoice"])
    assert 0 < proration["amount_due"] <= 216_000  # the difference for the rest of the year, plus VAT
    assert deliver(client, "invoice.paid", proration).status_code == 200
    assert Invoice.objects.get(stripe_invoice_id=proration["id"]).status == Invoice.Status.PAID
    assert fresh(subscription).status == Status.ACTIVE


def test_a_card_downgrade_takes_effect_now_and_is_credited_at_renewal(client, fake_stripe, card_member, starter):
    subscription = card_member.subscription
    invoices_before = len([o for o in fake_stripe.objects.values() if o["object"] == "invoice"])

    message = billing_changes.change_tier(card_member.organisation, starter, card_member.admin)

    [update] = fake_stripe.calls("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    assert update.params["proration_behavior"] == "create_prorations"
    assert "credited against your next renewal" in message
    assert len([o for o in fake_stripe.objects.values() if o["object"] == "invoice"]) == invoices_before
    assert stripe_updated(client, fake_stripe, subscription).tier == starter
    assert audit(card_member.organisation, "billing.subscription.downgrade_requested").actor == card_member.admin


def test_asking_twice_before_stripe_confirms_changes_the_tier_once(fake_stripe, card_member, scale):
    billing_changes.change_tier(card_member.organisation, scale, card_member.admin)

    with pytest.raises(MembershipError, match="already with Stripe"):
        billing_changes.change_tier(card_member.organisation, scale, card_member.admin)

    subscription = card_member.subscription
    assert len(fake_stripe.calls("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")) == 1
    assert fresh(subscription).changes_requested == 1


def test_a_change_stripe_fails_changes_nothing_and_its_retry_sends_new_keys(fake_stripe, card_member, scale):
    subscription = card_member.subscription
    fake_stripe.fail(500, f"/v1/subscriptions/{subscription.stripe_subscription_id}")

    with pytest.raises(MembershipError, match="Payments are not available"):
        billing_changes.change_tier(card_member.organisation, scale, card_member.admin)

    assert not AuditEntry.objects.filter(action="billing.subscription.upgrade_requested").exists()
    failed = fresh(subscription)
    assert (failed.tier, failed.amount_pence) == (subscription.tier, subscription.amount_pence)
    assert failed.changes_requested == 1  # the attempt's number stays taken: its keys are not sent again
    fake_stripe.recover()
    billing_changes.change_tier(card_member.organisation, scale, card_member.admin)
    update = fake_stripe.calls("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")[-1]
    assert update.idempotency_key == f"sub-{subscription.pk}-change-2-tier-{scale.pk}"
    # A later, different change gets a key of its own.
    Subscription.objects.filter(pk=subscription.pk).update(tier=scale, amount_pence=300_000)
    billing_changes.cancel_at_period_end(card_member.organisation, card_member.admin)
    update = fake_stripe.calls("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")[-1]
    assert update.idempotency_key == f"sub-{subscription.pk}-change-3-cancel"


def test_a_change_stripe_says_is_still_under_way_is_tried_again_with_its_key(fake_stripe, card_member, scale):
    """409: a request with the same key is still under way at Stripe, which keeps no answer for the conflict."""
    subscription = card_member.subscription
    path = f"/v1/subscriptions/{subscription.stripe_subscription_id}"
    real_route = fake_stripe._route

    def in_progress_once(method, route_path, params):
        if method == "POST" and route_path == path:
            fake_stripe._route = real_route
            raise StripeFailure(409, "idempotency_error", "A request with this key is in progress.")
        return real_route(method, route_path, params)

    fake_stripe._route = in_progress_once
    with pytest.raises(MembershipError, match="Payments are not available"):
        billing_changes.change_tier(card_member.organisation, scale, card_member.admin)
    fake_stripe._answers.clear()  # Stripe keeps no answer for a request that conflicted with one under way
    assert fresh(subscription).changes_requested == 0

    billing_changes.change_tier(card_member.organisation, scale, card_member.admin)
    first, retried = fake_stripe.calls("POST", path)
    assert first.idempotency_key == retried.idempotency_key == f"sub-{subscription.pk}-change-1-tier-{scale.pk}"


def test_a_change_whose_stripe_500_stripe_keeps_goes_through_when_tried_again(fake_stripe, card_member, scale):
    """Stripe answers a repeat of a key with the answer it kept, a 500 included, for 24 hours."""
    subscription = card_member.subscription
    path = f"/v1/subscriptions/{subscription.stripe_subscription_id}"
    real_route = fake_stripe._route

    def update_fails(method, route_path, params):
        if method == "POST" and route_path == path:  # an error inside the endpoint: the fake keeps it under the key
            raise StripeFailure(500, "api_error", "Something went wrong on Stripe's end.")
        return real_route(method, route_path, params)

    fake_stripe._route = update_fails
    with pytest.raises(MembershipError, match="Payments are not available"):
        billing_changes.change_tier(card_member.organisation, scale, card_member.admin)
    fake_stripe._route = real_route

    assert "now" in billing_changes.change_tier(card_member.organisation, scale, card_member.admin)
    first, retried = fake_stripe.calls("POST", path)
    assert first.idempotency_key != retried.idempotency_key
    assert fake_stripe.get(subscription.stripe_subscription_id)["items"]["data"][0]["price"]["unit_amount"] == 300_000


def _same_tier(member, tiers):
    return member.subscription.tier, "already a Growth member"


def _no_price(member, tiers):
    member.organisation.organisation_type = OrganisationType.CHARITY
    member.organisation.save()
    return tiers.scale, "no annual price for charity"


def _too_many_people(member, tiers):
    tiers.starter.seat_limit = 1
    tiers.starter.save()
    factories.add_member(member.organisation, factories.make_user("second@tyne-robotics.example"))
    return tiers.starter, "Starter seats 1 people, and Tyne Robotics has 2"


def _dearer_but_too_few_seats(member, tiers):
    """An upgrade by price can still seat fewer people."""
    tiers.scale.seat_limit = 1
    tiers.scale.save()
    factories.add_member(member.organisation, factories.make_user("second@tyne-robotics.example"))
    return tiers.scale, "Scale seats 1 people, and Tyne Robotics has 2"


def _set_to_end(member, tiers):
    Subscription.objects.filter(pk=member.subscription.pk).update(cancel_at_period_end=True)
    return tiers.scale, "set to end"


def _past_due(member, tiers):
    Subscription.objects.filter(pk=member.subscription.pk).update(status=Status.PAST_DUE)
    return tiers.scale, "last payment has not arrived"


def _not_an_admin(member, tiers):
    colleague = factories.make_user("intern@tyne-robotics.example")
    factories.add_member(member.organisation, colleague)
    member.admin = colleague
    return tiers.scale, "Only an admin"


@pytest.mark.parametrize(
    "make",
    [_same_tier, _no_price, _too_many_people, _dearer_but_too_few_seats, _set_to_end, _past_due, _not_an_admin],
)
def test_a_tier_change_that_cannot_be_made_is_refused_and_changes_nothing(
    fake_stripe, card_member, scale, starter, make
):
    tier, message = make(card_member, SimpleNamespace(scale=scale, starter=starter))
    requests_before, entries_before = len(fake_stripe.requests), AuditEntry.objects.count()
    row_before = Subscription.objects.filter(pk=card_member.subscription.pk).values().get()

    with pytest.raises(MembershipError, match=message):
        billing_changes.change_tier(card_member.organisation, tier, card_member.admin)

    assert writes(fake_stripe, requests_before) == []
    assert AuditEntry.objects.count() == entries_before
    assert Subscription.objects.filter(pk=card_member.subscription.pk).values().get() == row_before


# Changing tier: invoice payers ----------------------------------------------------------------------------------


def test_an_invoice_payers_upgrade_is_invoiced_now_prorated_and_the_invoice_shows_in_the_portal(
    client, fake_stripe, invoice_member, scale
):
    subscription = invoice_member.subscription

    message = billing_changes.change_tier(invoice_member.organisation, scale, invoice_member.admin)

    assert "invoiced now" in message
    [update] = fake_stripe.calls("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    assert update.params["proration_behavior"] == "always_invoice"
    assert stripe_updated(client, fake_stripe, subscription).tier == scale
    proration = fake_stripe.get(fake_stripe.get(subscription.stripe_subscription_id)["latest_invoice"])
    assert proration["status"] == "open"
    assert deliver(client, "invoice.finalized", proration).status_code == 200
    row = Invoice.objects.get(stripe_invoice_id=proration["id"])
    assert (row.status, row.po_number, row.amount_due_pence) == ("open", "PO-7781", proration["amount_due"])
    assert fresh(subscription).status == Status.ACTIVE  # an open invoice within its 30 days is not a failure
    client.force_login(invoice_member.admin)
    page = client.get("/my/org/gateshead-council/billing/").content.decode()
    assert proration["hosted_invoice_url"] in page


def test_an_invoice_payers_downgrade_waits_for_the_renewal(client, fake_stripe, invoice_member, starter):
    subscription, organisation = invoice_member.subscription, invoice_member.organisation
    stripe_id = subscription.stripe_subscription_id
    requests_before = len(fake_stripe.requests)

    message = billing_changes.change_tier(organisation, starter, invoice_member.admin)

    subscription = fresh(subscription)
    starter.refresh_from_db()
    assert "moves to Starter when it renews" in message
    assert (subscription.tier.name, subscription.scheduled_tier) == ("Growth", starter)
    schedule = fake_stripe.get(subscription.stripe_schedule_id)
    assert schedule["subscription"] == stripe_id
    assert schedule["end_behavior"] == "release"
    current, following = schedule["phases"]
    assert current["end_date"] == fake_stripe.get(stripe_id)["items"]["data"][0]["current_period_end"]
    assert fake_stripe.get(following["items"][0]["price"])["unit_amount"] == 60_000
    assert following["duration"] == {"interval": "year", "interval_count": 1}
    assert following["items"][0]["tax_rates"] == current["items"][0]["tax_rates"] != []  # VAT, as now
    assert writes(fake_stripe, requests_before) == [
        ("POST", "/v1/products", f"product-tier-{starter.pk}"),
        ("POST", "/v1/subscription_schedules", f"sub-{subscription.pk}-change-1-schedule"),
        (
            "POST",
            f"/v1/subscription_schedules/{schedule['id']}",
            f"sub-{subscription.pk}-change-1-schedule-tier-{starter.pk}",
        ),
    ]
    entry = audit(organisation, "billing.subscription.downgrade_scheduled")
    assert (entry.actor, entry.changes["scheduled_tier"]) == (invoice_member.admin, [None, "Starter"])
    client.force_login(invoice_member.admin)
    assert "Moves to Starter when it renews" in client.get("/my/org/gateshead-council/billing/").content.decode()

    # Meanwhile, Stripe's events change nothing; at the renewal the new phase's price applies.
    assert stripe_updated(client, fake_stripe, subscription).tier.name == "Growth"
    renewal = fake_stripe.renew(stripe_id, paid=False)
    assert renewal["amount_due"] == 72_000  # Starter, plus VAT
    renewed = stripe_updated(client, fake_stripe, subscription)
    assert (renewed.tier, renewed.amount_pence, renewed.scheduled_tier) == (starter, 60_000, None)


def _downgrade_failing_half_way(fake_stripe, member, starter) -> None:
    """The schedule is made at Stripe, then setting its phases fails: our row never learns the schedule's id."""
    fake_stripe.fail(path="/v1/subscription_schedules/")
    with pytest.raises(MembershipError):
        billing_changes.change_tier(member.organisation, starter, member.admin)
    fake_stripe.recover()
    assert fresh(member.subscription).stripe_schedule_id is None
    assert fake_stripe.get(member.subscription.stripe_subscription_id)["schedule"]


def test_a_downgrade_that_failed_half_way_does_not_block_cancelling(fake_stripe, invoice_member, starter):
    _downgrade_failing_half_way(fake_stripe, invoice_member, starter)

    billing_changes.cancel_at_period_end(invoice_member.organisation, invoice_member.admin)

    stripe_subscription = fake_stripe.get(invoice_member.subscription.stripe_subscription_id)
    assert (stripe_subscription["cancel_at_period_end"], stripe_subscription["schedule"]) == (True, None)


def test_a_downgrade_that_failed_half_way_can_be_asked_for_again(fake_stripe, invoice_member, starter):
    _downgrade_failing_half_way(fake_stripe, invoice_member, starter)

    billing_changes.change_tier(invoice_member.organisation, starter, invoice_member.admin)

    subscription = fresh(invoice_member.subscription)
    assert subscription.scheduled_tier == starter
    assert fake_stripe.get(subscription.stripe_subscription_id)["schedule"] == subscription.stripe_schedule_id
    schedule = fake_stripe.get(subscription.stripe_schedule_id)
    assert (schedule["status"], len(schedule["phases"])) == ("active", 2)


def test_an_invoice_payer_can_take_back_a_downgrade_before_the_renewal(client, fake_stripe, invoice_member, starter):
    billing_changes.change_tier(invoice_member.organisation, starter, invoice_member.admin)
    schedule_id = fresh(invoice_member.subscription).stripe_schedule_id

    message = billing_changes.keep_tier(invoice_member.organisation, invoice_member.admin)

    subscription = fresh(invoice_member.subscription)
    assert message == "Gateshead Council stays on Growth when it renews."
    assert (subscription.scheduled_tier, subscription.stripe_schedule_id) == (None, None)
    assert fake_stripe.get(schedule_id)["status"] == "released"
    [release] = fake_stripe.calls("POST", f"/v1/subscription_schedules/{schedule_id}/release")
    assert release.idempotency_key == f"sub-{subscription.pk}-change-2-release"
    assert audit(invoice_member.organisation, "billing.subscription.downgrade_undone").changes == {
        "scheduled_tier": ["Starter", None]
    }
    fake_stripe.renew(subscription.stripe_subscription_id, paid=False)
    assert stripe_updated(client, fake_stripe, subscription).tier.name == "Growth"


def test_nothing_else_changes_tier_while_a_downgrade_waits(fake_stripe, invoice_member, starter, scale):
    billing_changes.change_tier(invoice_member.organisation, starter, invoice_member.admin)

    with pytest.raises(MembershipError, match="moves to Starter at renewal"):
        billing_changes.change_tier(invoice_member.organisation, scale, invoice_member.admin)
    with pytest.raises(MembershipError, match="moves to Starter at renewal"):
        billing_changes.start_switch_to_card(invoice_member.organisation, invoice_member.admin)


# Cancelling at the period's end, and taking it back ---------------------------------------------------------------


@pytest.mark.parametrize("payer", ["card_member", "invoice_member"])
def test_a_membership_can_be_set_to_end_and_kept_again(client, fake_stripe, request, payer):
    member = request.getfixturevalue(payer)
    subscription = member.subscription
    path = f"/v1/subscriptions/{subscription.stripe_subscription_id}"

    message = billing_changes.cancel_at_period_end(member.organisation, member.admin)

    assert "will end on" in message
    assert [(c.params, c.idempotency_key) for c in fake_stripe.calls("POST", path)] == [
        ({"cancel_at_period_end": "true"}, f"sub-{subscription.pk}-change-1-cancel")
    ]
    ending = stripe_updated(client, fake_stripe, subscription)
    assert (ending.cancel_at_period_end, ending.status) == (True, Status.ACTIVE)
    entry = audit(member.organisation, "billing.subscription.cancellation_requested")
    assert (entry.actor, entry.changes) == (member.admin, {"cancel_at_period_end": [False, True]})
    with pytest.raises(MembershipError, match="already set to end"):
        billing_changes.cancel_at_period_end(member.organisation, member.admin)

    billing_changes.resume_membership(member.organisation, member.admin)

    assert fake_stripe.calls("POST", path)[-1].params == {"cancel_at_period_end": "false"}
    assert fake_stripe.calls("POST", path)[-1].idempotency_key == f"sub-{subscription.pk}-change-2-resume"
    assert stripe_updated(client, fake_stripe, subscription).cancel_at_period_end is False
    assert audit(member.organisation, "billing.subscription.cancellation_undone").actor == member.admin


def test_cancelling_twice_before_stripe_confirms_asks_stripe_once(fake_stripe, card_member):
    subscription, organisation = card_member.subscription, card_member.organisation
    billing_changes.cancel_at_period_end(organisation, card_member.admin)

    with pytest.raises(MembershipError, match="The cancellation is already with Stripe"):
        billing_changes.cancel_at_period_end(organisation, card_member.admin)

    assert len(fake_stripe.calls("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")) == 1
    requested = AuditEntry.objects.filter(action="billing.subscription.cancellation_requested")
    assert requested.filter(organisation=organisation).count() == 1
    assert fresh(subscription).changes_requested == 1


def test_an_upgrade_after_a_cancellation_stripe_has_not_yet_confirmed_is_refused(fake_stripe, card_member, scale):
    subscription, organisation = card_member.subscription, card_member.organisation
    path = f"/v1/subscriptions/{subscription.stripe_subscription_id}"
    billing_changes.cancel_at_period_end(organisation, card_member.admin)  # one tab; the webhook is not in yet

    with pytest.raises(MembershipError, match=r"set to end\. Keep it first"):
        billing_changes.change_tier(organisation, scale, card_member.admin)  # the other tab

    assert len(fake_stripe.calls("POST", path)) == 1  # the cancellation only: no upgrade charged
    assert fake_stripe.get(subscription.stripe_subscription_id)["items"]["data"][0]["price"]["unit_amount"] == (
        subscription.amount_pence
    )
    assert fresh(subscription).changes_requested == 1


def test_a_second_tier_change_before_stripe_confirms_the_first_is_refused(fake_stripe, card_member, scale):
    subscription, organisation = card_member.subscription, card_member.organisation
    path = f"/v1/subscriptions/{subscription.stripe_subscription_id}"
    middle = _tier("Scale-up", 200_000, None)  # dearer than Growth, cheaper than Scale
    billing_changes.change_tier(organisation, scale, card_member.admin)  # one tab; the webhook is not in yet
    assert len(fake_stripe.calls("POST", path)) == 1

    with pytest.raises(MembershipError, match=f"The move to {scale} is already with Stripe"):
        billing_changes.change_tier(organisation, middle, card_member.admin)  # the other tab, judged an upgrade

    assert len(fake_stripe.calls("POST", path)) == 1
    assert fresh(subscription).changes_requested == 1


def test_keeping_the_membership_twice_before_stripe_confirms_asks_stripe_once(client, fake_stripe, card_member):
    subscription, organisation = card_member.subscription, card_member.organisation
    path = f"/v1/subscriptions/{subscription.stripe_subscription_id}"
    billing_changes.cancel_at_period_end(organisation, card_member.admin)
    assert stripe_updated(client, fake_stripe, subscription).cancel_at_period_end is True
    billing_changes.resume_membership(organisation, card_member.admin)

    with pytest.raises(MembershipError, match="Keeping the membership is already with Stripe"):
        billing_changes.resume_membership(organisation, card_member.admin)

    assert [c.params for c in fake_stripe.calls("POST", path)] == [
        {"cancel_at_period_end": "true"},
        {"cancel_at_period_end": "false"},
    ]
    undone = AuditEntry.objects.filter(action="billing.subscription.cancellation_undone")
    assert undone.filter(organisation=organisation).count() == 1
    assert fresh(subscription).changes_requested == 2


def test_the_portal_says_a_second_cancellation_is_already_with_stripe(client, fake_stripe, card_member):
    client.force_login(card_member.admin)
    page = f"/my/org/{card_member.organisation.slug}/billing/"
    client.post(f"{page}cancel/")

    response = client.post(f"{page}cancel/", follow=True)

    messages = [str(message) for message in response.context["messages"]]
    assert any("The cancellation is already with Stripe. Stripe is confirming it" in m for m in messages)
    path = f"/v1/subscriptions/{card_member.subscription.stripe_subscription_id}"
    assert len(fake_stripe.calls("POST", path)) == 1


def test_cancelling_drops_a_downgrade_waiting_for_the_renewal(client, fake_stripe, invoice_member, starter):
    billing_changes.change_tier(invoice_member.organisation, starter, invoice_member.admin)
    schedule_id = fresh(invoice_member.subscription).stripe_schedule_id

    billing_changes.cancel_at_period_end(invoice_member.organisation, invoice_member.admin)

    # Stripe refuses to cancel a subscription a schedule manages: the schedule is released first.
    assert fake_stripe.get(schedule_id)["status"] == "released"
    subscription = stripe_updated(client, fake_stripe, invoice_member.subscription)
    assert (subscription.cancel_at_period_end, subscription.scheduled_tier) == (True, None)
    assert audit(invoice_member.organisation, "billing.subscription.cancellation_requested").changes == {
        "cancel_at_period_end": [False, True],
        "scheduled_tier": ["Starter", None],
    }


def test_a_membership_that_has_not_started_cannot_be_cancelled_or_changed(fake_stripe, paid_checkout, robotics):
    admin = robotics.memberships.get().user
    for change in (
        lambda: billing_changes.cancel_at_period_end(robotics, admin),
        lambda: billing_changes.switch_to_invoice(robotics, admin, "PO-1"),
    ):
        with pytest.raises(MembershipError, match="starts once its first payment arrives"):
            change()
    not_yet = factories.make_organisation("Not Yet Members")
    factories.add_member(not_yet, admin, OrganisationMember.Role.ADMIN)
    with pytest.raises(MembershipError, match="has no membership to change"):
        billing_changes.resume_membership(not_yet, admin)


# Switching between card and invoice -------------------------------------------------------------------------------


def test_a_card_payer_switches_to_invoices_from_the_next_renewal(client, fake_stripe, card_member):
    subscription, organisation = card_member.subscription, card_member.organisation
    requests_before = len(fake_stripe.requests)

    message = billing_changes.switch_to_invoice(organisation, card_member.admin, " PO-55 ")

    assert "will be sent an invoice payable within 30 days" in message
    stripe_id = subscription.stripe_subscription_id
    # Keys from our ids, with a digest of what was typed (the PO number) after them.
    assert [(path, key.rsplit("-", 1)[0]) for _, path, key in writes(fake_stripe, requests_before)] == [
        (f"/v1/customers/{organisation.stripe_customer_id}", f"sub-{subscription.pk}-change-1-po"),
        (f"/v1/subscriptions/{stripe_id}", f"sub-{subscription.pk}-change-1-to-invoice"),
    ]
    assert fake_stripe.calls("POST", f"/v1/subscriptions/{stripe_id}")[0].params == {
        "collection_method": "send_invoice",
        "days_until_due": "30",
        "description": "Growth membership for Tyne Robotics, PO PO-55",
        "metadata": {"po_number": "PO-55"},
    }
    assert fake_stripe.get(organisation.stripe_customer_id)["invoice_settings"]["custom_fields"] == [
        {"name": "PO number", "value": "PO-55"}
    ]
    switched = stripe_updated(client, fake_stripe, subscription)
    assert (switched.payment_method, switched.po_number) == ("invoice", "PO-55")
    assert audit(organisation, "billing.subscription.updated").changes == {"payment_method": ["card", "invoice"]}
    assert audit(organisation, "billing.subscription.switch_to_invoice_requested").actor == card_member.admin
    # The renewal is invoiced, payable in 30 days, not charged.
    renewal = fake_stripe.renew(stripe_id, paid=False)
    assert (renewal["collection_method"], renewal["status"]) == ("send_invoice", "open")
    period_start = fake_stripe.get(stripe_id)["items"]["data"][0]["current_period_start"]
    assert renewal["due_date"] == period_start + 30 * 86400


def test_a_switch_to_invoices_retried_with_a_corrected_po_number_quotes_the_corrected_one(
    fake_stripe, card_member, monkeypatch
):
    organisation, admin = card_member.organisation, card_member.admin
    with monkeypatch.context() as patch:  # the PO number reaches the customer, then the switch itself fails
        patch.setattr(fake_stripe, "_update_subscription", _failing_update)
        with pytest.raises(MembershipError):
            billing_changes.switch_to_invoice(organisation, admin, "PO-1O7")  # a typo: O for 0

    billing_changes.switch_to_invoice(organisation, admin, "PO-107")  # the same change number, corrected

    customer = fake_stripe.get(organisation.stripe_customer_id)
    assert customer["invoice_settings"]["custom_fields"] == [{"name": "PO number", "value": "PO-107"}]
    assert fake_stripe.get(card_member.subscription.stripe_subscription_id)["metadata"]["po_number"] == "PO-107"
    first, retried = fake_stripe.calls("POST", f"/v1/customers/{organisation.stripe_customer_id}")[-2:]
    assert first.params["invoice_settings"]["custom_fields"] == [{"name": "PO number", "value": "PO-1O7"}]
    assert first.idempotency_key != retried.idempotency_key


def _failing_update(params: dict, id: str) -> dict:
    raise StripeFailure(500, "api_error", "The fake is failing on purpose.")


def test_switching_to_invoices_twice_before_stripe_confirms_asks_stripe_once(client, fake_stripe, card_member):
    subscription, organisation = card_member.subscription, card_member.organisation
    billing_changes.switch_to_invoice(organisation, card_member.admin, "PO-55")

    with pytest.raises(MembershipError, match="The switch to invoices is already with Stripe"):
        billing_changes.switch_to_invoice(organisation, card_member.admin, "PO-55")

    assert len(fake_stripe.calls("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")) == 1
    assert len(fake_stripe.calls("POST", f"/v1/customers/{organisation.stripe_customer_id}")) == 1
    requested = AuditEntry.objects.filter(action="billing.subscription.switch_to_invoice_requested")
    assert requested.filter(organisation=organisation).count() == 1
    assert fresh(subscription).changes_requested == 1
    assert stripe_updated(client, fake_stripe, subscription).payment_method == "invoice"


def test_switching_to_invoices_needs_an_annual_membership_and_the_po_number_required(
    fake_stripe, card_member, robotics
):
    robotics.needs_purchase_order = True
    robotics.save()
    with pytest.raises(MembershipError, match="must quote a purchase order number"):
        billing_changes.switch_to_invoice(robotics, card_member.admin, "  ")
    Subscription.objects.filter(pk=card_member.subscription.pk).update(interval="month")
    with pytest.raises(MembershipError, match="Invoices are annual"):
        billing_changes.switch_to_invoice(robotics, card_member.admin, "PO-1")
    assert writes(fake_stripe, len(fake_stripe.requests)) == []
    assert not fake_stripe.calls("POST", f"/v1/subscriptions/{card_member.subscription.stripe_subscription_id}")


def test_an_invoice_payer_switches_to_card_through_a_setup_checkout(client, fake_stripe, invoice_member):
    subscription, organisation = invoice_member.subscription, invoice_member.organisation

    url = billing_changes.start_switch_to_card(organisation, invoice_member.admin)

    [created] = fake_stripe.calls("POST", "/v1/checkout/sessions")[-1:]
    metadata = {"subscription_id": str(subscription.pk), "organisation_id": str(organisation.pk), "change": "1"}
    assert created.idempotency_key == f"sub-{subscription.pk}-change-1-card-setup"
    assert {k: created.params[k] for k in ("mode", "customer", "currency", "metadata", "setup_intent_data")} == {
        "mode": "setup",
        "customer": organisation.stripe_customer_id,
        "currency": "gbp",
        "metadata": metadata,
        "setup_intent_data": {"metadata": metadata},
    }
    assert created.params["success_url"].endswith("/my/org/gateshead-council/billing/?card=saved")
    session_id = url.rsplit("/", 1)[-1]
    assert fresh(subscription).payment_method == "invoice"  # nothing changes until Stripe confirms the card

    session = fake_stripe.complete_setup(session_id)
    assert deliver(client, "checkout.session.completed", session).status_code == 200

    card = fake_stripe.get(session["setup_intent"])["payment_method"]
    stripe_id = subscription.stripe_subscription_id
    assert [(c.params, c.idempotency_key) for c in fake_stripe.calls("POST", f"/v1/subscriptions/{stripe_id}")] == [
        (
            {"collection_method": "charge_automatically", "default_payment_method": card},
            f"sub-{subscription.pk}-change-1-to-card",
        )
    ]
    customer = fake_stripe.get(organisation.stripe_customer_id)
    assert customer["invoice_settings"]["default_payment_method"] == card
    assert fake_stripe.calls("GET", f"/v1/checkout/sessions/{session_id}")[-1].params == {"expand": ["setup_intent"]}
    assert stripe_updated(client, fake_stripe, subscription).payment_method == "card"
    assert audit(organisation, "billing.subscription.switched_to_card")
    # Stripe delivering the checkout again changes nothing.
    assert deliver(client, "checkout.session.completed", session).status_code == 200
    assert len(fake_stripe.calls("POST", f"/v1/subscriptions/{stripe_id}")) == 1


def test_switching_to_card_again_once_stripe_has_the_card_is_refused(client, fake_stripe, invoice_member):
    subscription, organisation = invoice_member.subscription, invoice_member.organisation
    url = billing_changes.start_switch_to_card(organisation, invoice_member.admin)
    session = fake_stripe.complete_setup(url.rsplit("/", 1)[-1])
    assert deliver(client, "checkout.session.completed", session).status_code == 200  # Stripe now charges the card

    with pytest.raises(MembershipError, match="The switch to card is already with Stripe"):
        billing_changes.start_switch_to_card(organisation, invoice_member.admin)

    assert len(fake_stripe.calls("POST", "/v1/checkout/sessions")) == 1
    started = AuditEntry.objects.filter(action="billing.subscription.switch_to_card_started")
    assert started.filter(organisation=organisation).count() == 1
    assert stripe_updated(client, fake_stripe, subscription).payment_method == "card"


def test_an_unfinished_setup_checkout_changes_nothing(client, fake_stripe, invoice_member):
    url = billing_changes.start_switch_to_card(invoice_member.organisation, invoice_member.admin)
    session = fake_stripe.get(url.rsplit("/", 1)[-1])  # still open: the admin left

    assert deliver(client, "checkout.session.completed", session).status_code == 200

    assert not fake_stripe.calls("POST", f"/v1/subscriptions/{invoice_member.subscription.stripe_subscription_id}")
    assert fresh(invoice_member.subscription).payment_method == "invoice"
