"""Paid places: held while their owner pays at Stripe Checkout (or the demo checkout), confirmed only by the signed
webhook, released when unpaid, and every payment audited."""

import copy
from datetime import timedelta

import pytest
from django.utils import timezone

from cms.events import payments, services, tasks
from cms.events.models import EventRegistration
from membership.models import (
    ActivityEvent,
    ActivityKind,
    AuditEntry,
    OrganisationMember,
    StripeEvent,
    Subscription,
    Tier,
)
from tests.factories import add_member, make_event, make_organisation, make_user
from tests.fake_stripe import FakeStripe, signed_event

pytestmark = pytest.mark.django_db
Status = EventRegistration.Status
WEBHOOK = "/billing/stripe/webhook/"
WEBHOOK_SECRET = "whsec_test"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def fake_stripe(settings):
    """Stripe, faked on 127.0.0.1: payments talk to it with the real client, outside demo mode."""
    fake = FakeStripe().start()
    settings.STRIPE_API_BASE = fake.url
    settings.STRIPE_SECRET_KEY = "sk_test_fake"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.DEMO_PAYMENTS = False
    yield fake
    fake.stop()


@pytest.fixture
def demo(settings):
    settings.DEMO_PAYMENTS = True
    settings.STRIPE_SECRET_KEY = None
    settings.STRIPE_WEBHOOK_SECRET = "whsec_demo_for_tests"


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def event(db):
    return make_event("Scale-up Summit", capacity=2, member_price_pence=1000, non_member_price_pence=2500)


@pytest.fixture
def visitor(db):
    return make_user("visitor@example.org", first_name="Vic", last_name="Visitor")


def register_online(client, event, user, register_as: str = "individual"):
    client.force_login(user)
    return client.post(f"/my/events/register/{event.pk}/", {"register_as": register_as, "name": user.get_full_name()})


def deliver(client, event_type: str, session: dict, secret: str = WEBHOOK_SECRET, **kwargs):
    payload, signature = signed_event(event_type, session, secret, **kwargs)
    return client.post(WEBHOOK, payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)


def pay_at_stripe(fake: FakeStripe, registration: EventRegistration, payment: str = "pi_fake_1") -> dict:
    session_id = EventRegistration.objects.get(pk=registration.pk).stripe_checkout_session_id
    return fake.set(session_id, status="complete", payment_status="paid", amount_total=2500, payment_intent=payment)


def actions() -> list[str]:
    return list(AuditEntry.objects.order_by("pk").values_list("action", flat=True))


def fresh(registration: EventRegistration) -> EventRegistration:
    return EventRegistration.objects.get(pk=registration.pk)


# Stripe Checkout -------------------------------------------------------------------------------------------------


def test_a_non_member_pays_at_stripe_and_the_signed_webhook_confirms_the_place(
    client, fake_stripe, event, visitor, committed, mailoutbox
):
    response = register_online(client, event, visitor)

    registration = EventRegistration.objects.get()
    assert registration.status == Status.PENDING_PAYMENT
    assert response["Location"].startswith("https://checkout.stripe.test/c/pay/")
    (created,) = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert created.params["mode"] == "payment"
    assert created.params["line_items"][0]["price_data"]["unit_amount"] == "2500"
    assert created.params["metadata"] == {
        "purpose": "event_registration",
        "registration_id": str(registration.pk),
        "event_id": str(event.pk),
    }
    assert created.params["customer_email"] == "visitor@example.org"
    assert int(created.params["expires_at"]) < registration.hold_expires_at.timestamp()
    assert created.idempotency_key.startswith(f"event-checkout-registration-{registration.pk}-")
    assert "events.payment.started" in actions()
    assert mailoutbox == []  # no ticket before the payment

    stale = copy.deepcopy(fake_stripe.get(registration.stripe_checkout_session_id))  # still "open"
    pay_at_stripe(fake_stripe, registration)
    with committed():
        assert deliver(client, "checkout.session.completed", stale).status_code == 200

    paid = fresh(registration)
    assert (paid.status, paid.amount_paid_pence, paid.stripe_payment_intent_id) == (Status.CONFIRMED, 2500, "pi_fake_1")
    assert actions()[-2:] == ["events.payment.received", "events.registration.confirmed"]
    assert [m.subject for m in mailoutbox] == ["Your ticket for Scale-up Summit"]


def test_a_repeated_or_late_repeated_webhook_changes_nothing(client, fake_stripe, event, visitor):
    register_online(client, event, visitor)
    registration = EventRegistration.objects.get()
    session = pay_at_stripe(fake_stripe, registration)
    assert deliver(client, "checkout.session.completed", session, event_id="evt_once").status_code == 200
    before = actions()

    assert deliver(client, "checkout.session.completed", session, event_id="evt_once").json() == {"status": "duplicate"}
    assert deliver(client, "checkout.session.completed", session).status_code == 200  # same payment, new event id

    assert actions() == before
    assert fresh(registration).status == Status.CONFIRMED


@pytest.mark.parametrize("how", ["forged", "unsigned", "stale"])
def test_a_webhook_that_is_not_from_stripe_writes_nothing(client, fake_stripe, event, visitor, how):
    register_online(client, event, visitor)
    registration = EventRegistration.objects.get()
    session = pay_at_stripe(fake_stripe, registration)
    before = actions()

    if how == "forged":
        response = deliver(client, "checkout.session.completed", session, secret="whsec_someone_else")
    elif how == "stale":
        response = deliver(
            client, "checkout.session.completed", session, timestamp=int(timezone.now().timestamp()) - 600
        )
    else:
        payload, _ = signed_event("checkout.session.completed", session, WEBHOOK_SECRET)
        response = client.post(WEBHOOK, payload, content_type="application/json")

    assert response.status_code == 400
    assert fresh(registration).status == Status.PENDING_PAYMENT
    assert fresh(registration).paid_at is None
    assert not StripeEvent.objects.exists()
    assert actions() == before


def test_a_checkout_that_expires_at_stripe_releases_the_place_to_the_waitlist(
    client, fake_stripe, event, visitor, committed, mailoutbox
):
    event.capacity = 1
    event.save()
    register_online(client, event, visitor)
    held = EventRegistration.objects.get()
    waiting = services.register_for_event(event, make_user("waiting@example.org"), organisation=None, name="Wai Ting")
    session = fake_stripe.set(held.stripe_checkout_session_id, status="expired")

    with committed():
        assert deliver(client, "checkout.session.expired", session).status_code == 200

    assert fresh(held).status == Status.EXPIRED
    assert fresh(waiting).status == Status.PENDING_PAYMENT  # offered, held a day for them to pay
    assert "events.registration.expired" in actions() and "events.registration.offered" in actions()
    assert mailoutbox[-1].to == ["waiting@example.org"]


def test_cancelling_a_held_place_closes_its_checkout_at_stripe_first(client, fake_stripe, event, visitor):
    register_online(client, event, visitor)
    registration = EventRegistration.objects.get()

    assert client.post(f"/my/events/{registration.pk}/cancel/").status_code == 302

    assert fake_stripe.get(registration.stripe_checkout_session_id)["status"] == "expired"
    assert fresh(registration).status == Status.CANCELLED


def test_a_place_just_paid_cannot_be_cancelled_until_the_payment_is_confirmed(client, fake_stripe, event, visitor):
    register_online(client, event, visitor)
    registration = EventRegistration.objects.get()
    pay_at_stripe(fake_stripe, registration)

    response = client.post(f"/my/events/{registration.pk}/cancel/", follow=True)

    assert "Your payment has just gone through and is being confirmed" in response.content.decode()
    assert fresh(registration).status == Status.PENDING_PAYMENT


def test_stripe_unreachable_leaves_the_place_held_to_pay_later(client, fake_stripe, event, visitor):
    fake_stripe.fail()
    response = register_online(client, event, visitor)

    registration = EventRegistration.objects.get()
    assert response["Location"] == f"/my/events/{registration.pk}/"
    assert (registration.status, registration.stripe_checkout_session_id) == (Status.PENDING_PAYMENT, None)
    page = client.get(response["Location"]).content.decode()
    assert "Payments are not available just now" in page and "Pay £25.00" in page

    fake_stripe.recover()
    assert client.post(f"/my/events/{registration.pk}/pay/")["Location"].startswith("https://checkout.stripe.test/")


def test_going_back_to_pay_reuses_the_open_checkout(client, fake_stripe, event, visitor):
    first = register_online(client, event, visitor)["Location"]
    registration = EventRegistration.objects.get()
    assert client.post(f"/my/events/{registration.pk}/pay/")["Location"] == first
    assert len(fake_stripe.calls("POST", "/v1/checkout/sessions")) == 1


def test_a_payment_after_the_hold_ran_out_takes_a_free_place_or_is_flagged_for_a_refund(
    client, fake_stripe, event, visitor, committed
):
    register_online(client, event, visitor)
    late = EventRegistration.objects.get()
    session = pay_at_stripe(fake_stripe, late)
    EventRegistration.objects.filter(pk=late.pk).update(hold_expires_at=timezone.now() - timedelta(minutes=1))
    tasks.release_expired_holds.delay()
    assert fresh(late).status == Status.EXPIRED

    deliver(client, "checkout.session.completed", session)
    assert fresh(late).status == Status.CONFIRMED  # a place was still free

    # Someone else's late payment when the event has filled meanwhile: flagged, not confirmed.
    other = make_user("other@example.org", first_name="Ot", last_name="Her")
    register_online(client, event, other)
    flagged = EventRegistration.objects.get(user=other)
    other_session = pay_at_stripe(fake_stripe, flagged, payment="pi_fake_2")
    EventRegistration.objects.filter(pk=flagged.pk).update(status=Status.EXPIRED)
    services.register_for_event(event, make_user("filler@example.org"), organisation=None, name="Fil Ler")
    deliver(client, "checkout.session.completed", other_session)

    assert fresh(flagged).status == Status.EXPIRED
    assert fresh(flagged).amount_paid_pence == 2500
    refund = AuditEntry.objects.get(action="events.payment.refund_due")
    assert "pi_fake_2" in refund.summary


# Holds that run out --------------------------------------------------------------------------------------------


def test_an_unpaid_hold_is_released_by_the_job_and_offered_to_the_waitlist(demo, event, visitor, committed, mailoutbox):
    event.capacity = 1
    event.save()
    held = services.register_for_event(event, visitor, organisation=None, name="Vic Visitor")
    waiting = services.register_for_event(event, make_user("next@example.org"), organisation=None, name="Nex T")
    assert (held.status, waiting.status) == (Status.PENDING_PAYMENT, Status.WAITLISTED)

    assert services.release_expired_holds() == 0  # not yet
    EventRegistration.objects.filter(pk=held.pk).update(hold_expires_at=timezone.now() - timedelta(seconds=1))
    with committed():
        assert tasks.release_expired_holds.delay().get() == 1

    assert fresh(held).status == Status.EXPIRED
    offered = fresh(waiting)
    assert offered.status == Status.PENDING_PAYMENT and offered.hold_expires_at > timezone.now() + timedelta(hours=23)
    assert mailoutbox[-1].subject.startswith("A place came up at Scale-up Summit: pay by ")
    assert services.release_expired_holds() == 0  # running again changes nothing


def test_a_newcomer_does_not_take_a_place_whose_hold_ran_out_before_the_waitlist(demo, event, visitor):
    event.capacity = 1
    event.save()
    held = services.register_for_event(event, visitor, organisation=None, name="Vic Visitor")
    waiting = services.register_for_event(event, make_user("queue@example.org"), organisation=None, name="Queue")
    EventRegistration.objects.filter(pk=held.pk).update(hold_expires_at=timezone.now() - timedelta(seconds=1))

    newcomer = services.register_for_event(event, make_user("new@example.org"), organisation=None, name="New")

    assert fresh(held).status == Status.EXPIRED
    assert fresh(waiting).status == Status.PENDING_PAYMENT
    assert newcomer.status == Status.WAITLISTED


# The demo checkout -----------------------------------------------------------------------------------------------


def test_the_demo_checkout_confirms_a_member_priced_place_through_the_webhook_path(
    client, demo, event, committed, mailoutbox
):
    organisation = make_organisation("Paying Members Ltd")
    community = Tier.objects.create(name="Community", slug="community")
    Subscription.objects.create(
        organisation=organisation, tier=community, status=Subscription.Status.ACTIVE, amount_pence=30_000
    )
    member = make_user("member@paying.example", first_name="Pat", last_name="Payer")
    add_member(organisation, member, OrganisationMember.Role.MEMBER)

    checkout = register_online(client, event, member, register_as=str(organisation.pk))["Location"]
    registration = EventRegistration.objects.get()
    assert checkout.startswith("/my/events/demo-checkout/")
    assert registration.price_pence == 1000 and registration.pricing == "member"
    assert not ActivityEvent.objects.filter(kind=ActivityKind.EVENT_REGISTERED).exists()  # not until it is paid
    page = client.get(checkout).content.decode()
    assert "Demo payment: no card is charged." in page and "£10.00" in page

    with committed():
        response = client.post(checkout, {"pay": "1"})
    assert response["Location"] == f"/my/events/{registration.pk}/?checkout=success"

    paid = fresh(registration)
    assert paid.status == Status.CONFIRMED and paid.amount_paid_pence == 1000
    assert [m.subject for m in mailoutbox] == ["Your ticket for Scale-up Summit"]
    assert StripeEvent.objects.get().type == "checkout.session.completed"
    assert ActivityEvent.objects.filter(kind=ActivityKind.EVENT_REGISTERED, organisation=organisation).count() == 1
    # Paying again, or going back to the checkout, changes nothing.
    assert client.post(checkout, {"pay": "1"})["Location"] == f"/my/events/{registration.pk}/"
    assert StripeEvent.objects.count() == 1
    assert actions().count("events.payment.received") == 1


def test_the_demo_checkout_is_only_for_its_owner_and_only_in_demo_mode(client, demo, event, visitor, settings):
    checkout = register_online(client, event, visitor)["Location"]
    client.force_login(make_user("intruder@example.org"))
    assert client.get(checkout).status_code == 404
    assert client.post(checkout, {"pay": "1"}).status_code == 404
    assert fresh(EventRegistration.objects.get()).status == Status.PENDING_PAYMENT

    client.force_login(visitor)
    settings.DEMO_PAYMENTS = False
    assert client.get(checkout).status_code == 404
    assert client.post(checkout.replace("demo-checkout/", "demo-checkout/x")).status_code == 404


def test_cancelling_at_the_demo_checkout_keeps_the_place_held_to_pay_later(client, demo, event, visitor):
    checkout = register_online(client, event, visitor)["Location"]
    registration = EventRegistration.objects.get()

    response = client.post(checkout, {"cancel": "1"}, follow=True)

    assert "Checkout was cancelled; nothing was charged." in response.content.decode()
    assert fresh(registration).status == Status.PENDING_PAYMENT
    assert not StripeEvent.objects.exists()


def test_the_webhook_handler_is_registered_for_event_places():
    from membership import billing

    assert billing._CHECKOUT_HANDLERS[payments.PURPOSE] is payments.on_checkout_event


def test_the_hold_release_job_is_known_to_the_worker_and_scheduled_on_beat(settings):
    from config.celery import app

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    for name in ("cms.events.tasks.release_expired_holds", "cms.events.tasks.send_registration_email"):
        assert name in app.tasks
    assert "cms.events.tasks.release_expired_holds" in scheduled
