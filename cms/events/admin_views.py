"""The events side of the back office: every event's registrations, the check-in screen and the attendee export.

All behind Wagtail's admin-access check (and so staff MFA). Listings and the export need
``cms.view_eventregistration``; checking people in needs ``cms.change_eventregistration``. Check-in goes
through ``cms.events.services.check_in``.
"""

import csv
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView
from wagtail.admin import messages
from wagtail.admin.views.generic import WagtailAdminTemplateMixin

from cms.events import services
from cms.events.models import EventPage, EventRegistration
from cms.events.tickets import reference_from_code
from config.text import printable, spreadsheet_cell

VIEW = "cms.view_eventregistration"
CHECK_IN = "cms.change_eventregistration"
PER_PAGE = 50
Status = EventRegistration.Status


def _counts() -> dict:
    by_status = {
        f"{status}_count": Count("registrations", filter=Q(registrations__status=status))
        for status in (Status.CONFIRMED, Status.PENDING_PAYMENT, Status.WAITLISTED)
    }
    attended = Q(registrations__status=Status.CONFIRMED, registrations__attended_at__isnull=False)
    return {**by_status, "attended_count": Count("registrations", filter=attended)}


class _EventAdminView(WagtailAdminTemplateMixin, TemplateView):
    permission = VIEW
    header_icon = "date"

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.has_perm(self.permission):
            raise PermissionDenied
        if "event_id" in kwargs:
            self.event = get_object_or_404(EventPage, pk=kwargs["event_id"])
        return super().dispatch(request, *args, **kwargs)

    def get_breadcrumbs_items(self) -> list[dict]:
        items = [*self.breadcrumbs_items, {"url": reverse("cms_events:overview"), "label": "Event registrations"}]
        if hasattr(self, "event"):
            items.append({"url": reverse("cms_events:registrations", args=[self.event.pk]), "label": self.event.title})
        return [*items, {"url": "", "label": self.get_page_title()}]


class EventsOverviewView(_EventAdminView):
    """Every event with its places taken, waitlist and attendance: upcoming first, then past."""

    template_name = "cms/events/admin/overview.html"
    page_title = "Event registrations"

    def get_breadcrumbs_items(self) -> list[dict]:
        return [*self.breadcrumbs_items, {"url": "", "label": self.page_title}]

    def get_context_data(self, **kwargs) -> dict:
        events = EventPage.objects.annotate(**_counts())
        now = timezone.now()
        upcoming = events.filter(ends_at__gte=now).order_by("starts_at", "pk")
        past = Paginator(events.filter(ends_at__lt=now).order_by("-starts_at", "-pk"), PER_PAGE)
        return super().get_context_data(
            **kwargs, upcoming=list(upcoming), past=past.get_page(self.request.GET.get("past"))
        )


def _matching(registrations: QuerySet[EventRegistration], query: str) -> QuerySet[EventRegistration]:
    """Registrations whose name, e-mail, organisation or ticket reference contains ``query``."""
    if not query:
        return registrations
    reference = reference_from_code(query)
    found = (
        Q(name__icontains=query)
        | Q(email__icontains=query)
        | Q(organisation__name__icontains=query)
        | Q(reference__iexact=query)
    )
    if reference:
        found |= Q(reference=reference)
    return registrations.filter(found)


class RegistrationsView(_EventAdminView):
    """One event's registrations, filtered by status and searched; links to check-in and the export."""

    template_name = "cms/events/admin/registrations.html"

    def get_page_title(self) -> str:
        return "Registrations"

    def get_page_subtitle(self) -> str:
        return self.event.title

    def get_context_data(self, **kwargs) -> dict:
        status = self.request.GET.get("status", "")
        query = printable(self.request.GET.get("q", ""))
        registrations = self.event.registrations.select_related("organisation").order_by("status", "created_at")
        if status in Status.values:
            registrations = registrations.filter(status=status)
        registrations = _matching(registrations, query)
        counts = EventPage.objects.filter(pk=self.event.pk).aggregate(**_counts())
        return super().get_context_data(
            **kwargs,
            event=self.event,
            registrations=Paginator(registrations, PER_PAGE).get_page(self.request.GET.get("page")),
            counts=counts,
            status=status,
            statuses=Status.choices,
            query=query,
            when=services.event_when(self.event),
            can_check_in=self.request.user.has_perm(CHECK_IN),
        )


class CheckInView(_EventAdminView):
    """The door: scan or type a ticket code to check its holder in at once, or search by name, e-mail or
    organisation and check in from the list. Each check-in records attendance once."""

    template_name = "cms/events/admin/check_in.html"
    permission = CHECK_IN

    def get_page_title(self) -> str:
        return "Check-in"

    def get_page_subtitle(self) -> str:
        return self.event.title

    def get_context_data(self, code: str = "", **kwargs) -> dict:
        query = printable(self.request.GET.get("q", ""))
        confirmed = self.event.registrations.filter(status=Status.CONFIRMED).select_related("organisation")
        results = _matching(confirmed, query).order_by("name", "pk")
        checked_in = confirmed.filter(attended_at__isnull=False).count()
        return super().get_context_data(
            **kwargs,
            event=self.event,
            query=query,
            code=code,
            results=Paginator(results, PER_PAGE).get_page(self.request.GET.get("page")),
            confirmed_count=confirmed.count(),
            checked_in_count=checked_in,
        )

    def post(self, request: HttpRequest, event_id: int) -> HttpResponse:
        if "code" in request.POST:
            return self._check_in_code(request, request.POST["code"])
        registration_id = request.POST.get("registration", "")
        # Only this event's registrations: an id from another event is a 404.
        registration = get_object_or_404(
            self.event.registrations, pk=int(registration_id) if registration_id.isdigit() else 0
        )
        self._check_in(request, registration)
        back = reverse("cms_events:check_in", args=[self.event.pk])
        query = printable(request.POST.get("q", ""))
        return redirect(f"{back}?{urlencode({'q': query})}" if query else back)

    def _check_in_code(self, request: HttpRequest, code: str) -> HttpResponse:
        reference = reference_from_code(code)
        registration = self.event.registrations.filter(reference=reference).first() if reference else None
        if registration is None:
            messages.error(request, "No ticket for this event matches that code. Try searching by name.")
            return self.render_to_response(self.get_context_data(code=code), status=400)
        self._check_in(request, registration)
        return redirect("cms_events:check_in", self.event.pk)

    def _check_in(self, request: HttpRequest, registration: EventRegistration) -> None:
        who = f"{registration.name}{f' ({registration.organisation})' if registration.organisation_id else ''}"
        try:
            if services.check_in(registration, request.user):
                messages.success(request, f"Checked in: {who}.")
            else:
                registration.refresh_from_db(fields=["attended_at"])
                at = timezone.localtime(registration.attended_at, self.event.zone)
                messages.warning(request, f"{who} was already checked in, at {at:%H:%M}.")
        except services.EventError as error:
            messages.error(request, str(error))


class ExportView(View):
    """The event's registrations as CSV, every status, for badges and follow-up. Cells that a spreadsheet would
    run as formulas are neutralised."""

    def get(self, request: HttpRequest, event_id: int) -> HttpResponse:
        if not request.user.has_perm(VIEW):
            raise PermissionDenied
        event = get_object_or_404(EventPage, pk=event_id)
        registrations = event.registrations.select_related("organisation").order_by("status", "name", "pk")
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{event.slug}-attendees.csv"'
        writer = csv.writer(response)
        writer.writerow(
            ["Reference", "Name", "E-mail", "Organisation", "Status", "Pricing", "Price (£)", "Paid (£)",
             "Registered", "Checked in"]
        )  # fmt: skip
        for registration in registrations.iterator():
            writer.writerow([safe_cell(value) for value in _row(registration, event)])
        return response


def _row(registration: EventRegistration, event: EventPage) -> list:
    def moment(value):
        return timezone.localtime(value, event.zone).strftime("%Y-%m-%d %H:%M") if value else ""

    return [
        registration.reference,
        registration.name,
        registration.email,
        registration.organisation.name if registration.organisation_id else "",
        registration.get_status_display(),
        registration.get_pricing_display(),
        _pounds(registration.price_pence),
        _pounds(registration.amount_paid_pence),
        moment(registration.created_at),
        moment(registration.attended_at),
    ]


def _pounds(pence: int) -> str:
    pounds, rest = divmod(pence, 100)
    return f"{pounds}.{rest:02d}"


def safe_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text (``config.text.spreadsheet_cell``)."""
    return spreadsheet_cell(str(value))
