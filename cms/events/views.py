"""Registering for events, and *My events* under /my/events/.

Registering needs an account with a verified e-mail address: the ticket goes there, and a person's
registrations are theirs alone. Every view taking a registration id looks it up among the user's own
registrations, so anyone else's is a 404.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from cms.events import payments, services
from cms.events.forms import RegistrationForm
from cms.events.ics import event_calendar
from cms.events.models import EventIndexPage, EventPage, EventRegistration
from cms.events.services import EventError
from cms.events.tickets import qr_data_uri
from membership.billing import format_pence

Status = EventRegistration.Status


def event_page_context(request: HttpRequest, event: EventPage, form: RegistrationForm | None = None) -> dict:
    """What the event page shows besides the page itself: places, prices and the visitor's own registration."""
    saved = event.pk is not None  # a new event previewed in the back office has no registrations yet
    taken = event.registrations.holding_places().count() if saved else 0
    state = event.registration_state() if saved else "closed"
    context = {
        "places_left": event.places_left(taken),
        "registration_state": state,
        "when": services.event_when(event),
        "free_tiers": list(event.free_for_tiers.all()),
        "member_price": _price(event.member_price_pence),
        "non_member_price": _price(event.non_member_price_pence),
        "registration": None,
        "form": None,
    }
    if state == "not_yet":
        context["opens"] = services.long_moment(event.registration_opens_at, event)
    if saved and request.user.is_authenticated:
        registration = event.registrations.live().filter(user=request.user).first()
        context["registration"] = registration
        if registration is None and state == "open":
            context["form"] = form or RegistrationForm(
                offers=services.offers_for(event, request.user), initial={"name": request.user.get_full_name()}
            )
    return context


def _price(pence: int) -> str:
    return format_pence(pence) if pence else "Free"


@login_required
@require_http_methods(["GET", "POST"])
def register(request: HttpRequest, event_id: int) -> HttpResponse:
    event = get_object_or_404(EventPage.objects.live(), pk=event_id)
    if not _may_view(event, request):
        raise Http404("No such event.")
    if request.method == "GET":
        return redirect(event.get_url(request))  # after logging in: the event page has the form
    form = RegistrationForm(request.POST, offers=services.offers_for(event, request.user))
    if not form.is_valid():
        context = event.get_context(request, form=form)
        return TemplateResponse(request, event.get_template(request), context, status=400)
    try:
        registration = services.register_for_event(
            event, request.user, organisation=form.offer.organisation, name=form.cleaned_data["name"]
        )
    except EventError as error:
        form.add_error(None, str(error))
        context = event.get_context(request, form=form)
        if context["form"] is form:  # the form is still offered: it says why, with the badge name as typed
            return TemplateResponse(request, event.get_template(request), context, status=400)
        messages.error(request, str(error))  # registered meanwhile, or registration has closed: the page says so
        return redirect(event.get_url(request))
    if registration.status == Status.PENDING_PAYMENT:
        return _to_checkout(request, registration)
    if registration.status == Status.WAITLISTED:
        messages.info(request, "The event is full, so you are on the waitlist. We will e-mail you if a place comes up.")
    else:
        messages.success(request, "You are registered. Your ticket is on its way to your inbox.")
    return redirect("events:registration", registration.pk)


def _may_view(event: EventPage, request: HttpRequest) -> bool:
    """Whether Wagtail's privacy settings on the event's page and its ancestors (a log-in, groups, a password) let
    this visitor read it: registering must not reach, by the page's id, an event its page would refuse."""
    return all(restriction.accept_request(request) for restriction in event.get_view_restrictions())


def _to_checkout(request: HttpRequest, registration: EventRegistration) -> HttpResponse:
    try:
        return redirect(payments.start_checkout(registration, request.user))
    except EventError as error:
        messages.error(request, str(error))
        return redirect("events:registration", registration.pk)


def _mine(request: HttpRequest, pk: int) -> EventRegistration:
    """One of the user's own registrations; anyone else's is a 404."""
    return get_object_or_404(
        EventRegistration.objects.select_related("event", "organisation"), pk=pk, user=request.user
    )


@login_required
def my_events(request: HttpRequest) -> HttpResponse:
    registrations = list(
        EventRegistration.objects.filter(user=request.user)
        .select_related("event", "organisation")
        .order_by("event__starts_at", "pk")
    )
    now = timezone.now()
    upcoming = [r for r in registrations if r.event.ends_at >= now and r.is_live]
    others = [r for r in reversed(registrations) if r not in upcoming]
    index = EventIndexPage.objects.live().first()
    context = {"upcoming": upcoming, "others": others, "events_url": index.get_url(request) if index else None}
    return render(request, "cms/events/my_events.html", context)


@login_required
def registration(request: HttpRequest, pk: int) -> HttpResponse:
    registration = _mine(request, pk)
    event = registration.event
    checkout = request.GET.get("checkout")
    if checkout == "success" and registration.status == Status.PENDING_PAYMENT:
        messages.success(request, "Thank you: your payment is being confirmed.")
    elif checkout == "cancelled" and registration.status == Status.PENDING_PAYMENT:
        messages.info(request, "Checkout was cancelled; nothing was charged. Your place is held until the time below.")
    confirmed = registration.status == Status.CONFIRMED
    now = timezone.now()
    context = {
        "registration": registration,
        "event": event,
        "when": services.event_when(event),
        "qr": qr_data_uri(registration) if confirmed else None,
        "online_url": event.online_url if confirmed else "",
        "position": services.waitlist_position(registration),
        "hold_until": (
            services.long_moment(registration.hold_expires_at, event) if registration.hold_expires_at else ""
        ),
        "price": _price(registration.price_pence),
        "can_cancel": registration.is_live and event.starts_at > now,
        "can_pay": registration.status == Status.PENDING_PAYMENT
        and registration.hold_expires_at is not None
        and registration.hold_expires_at > now,
    }
    return render(request, "cms/events/registration.html", context)


@login_required
def registration_calendar(request: HttpRequest, pk: int) -> HttpResponse:
    registration = _mine(request, pk)
    response = HttpResponse(event_calendar(registration.event, registration), content_type="text/calendar")
    response["Content-Disposition"] = f'attachment; filename="{registration.event.slug}.ics"'
    return response


@login_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    registration = _mine(request, pk)
    try:
        services.cancel_registration(registration, request.user)
    except EventError as error:
        messages.error(request, str(error))
        return redirect("events:registration", registration.pk)
    messages.success(request, f"Your registration for {registration.event.title} is cancelled.")
    return redirect("events:mine")


@login_required
@require_POST
def pay(request: HttpRequest, pk: int) -> HttpResponse:
    return _to_checkout(request, _mine(request, pk))


@login_required
@require_http_methods(["GET", "POST"])
def demo_checkout(request: HttpRequest, token: str) -> HttpResponse:
    """The demo checkout for a place: only the registration's owner sees it (everyone else: 404)."""
    registration = payments.find_demo_checkout(token, request.user)
    if registration is None:
        raise Http404("No such checkout.")
    if registration.status != Status.PENDING_PAYMENT:
        return redirect("events:registration", registration.pk)  # paid or released already: that page says which
    if request.method == "POST":
        if "pay" in request.POST:
            payments.pay_demo_checkout(registration)
            return redirect(reverse("events:registration", args=[registration.pk]) + "?checkout=success")
        return redirect(reverse("events:registration", args=[registration.pk]) + "?checkout=cancelled")
    return render(
        request,
        "cms/events/demo_checkout.html",
        {"registration": registration, "event": registration.event, "amount": _price(registration.price_pence)},
    )
