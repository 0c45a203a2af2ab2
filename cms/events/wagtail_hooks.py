"""Events in the back office: editors edit EventPages in the page tree; the *Event registrations* menu, and the
Registrations and Check-in buttons on each event, lead to its registrations, the door and the export."""

from django.contrib.auth.models import Permission
from django.urls import include, path, reverse
from wagtail import hooks
from wagtail.admin.menu import MenuItem
from wagtail.admin.widgets.button import Button

from cms.events import admin_views
from cms.events.models import EventPage
from config.celery import queue_on_commit


@hooks.register("register_admin_urls")
def register_event_admin_urls() -> list:
    patterns = [
        path("", admin_views.EventsOverviewView.as_view(), name="overview"),
        path("<int:event_id>/", admin_views.RegistrationsView.as_view(), name="registrations"),
        path("<int:event_id>/check-in/", admin_views.CheckInView.as_view(), name="check_in"),
        path("<int:event_id>/attendees.csv", admin_views.ExportView.as_view(), name="export"),
    ]
    return [path("event-registrations/", include((patterns, "cms_events"), namespace="cms_events"))]


class RegistrationsMenuItem(MenuItem):
    def is_shown(self, request) -> bool:
        return request.user.has_perm(admin_views.VIEW)


@hooks.register("register_admin_menu_item")
def register_registrations_menu_item() -> MenuItem:
    return RegistrationsMenuItem("Event registrations", reverse("cms_events:overview"), icon_name="date", order=250)


def _event_buttons(page, user, priority: int) -> list[Button]:
    if page.specific_class is not EventPage:
        return []
    buttons = []
    if user.has_perm(admin_views.VIEW):
        url = reverse("cms_events:registrations", args=[page.pk])
        buttons.append(Button("Registrations", url, icon_name="group", priority=priority))
    if user.has_perm(admin_views.CHECK_IN):
        url = reverse("cms_events:check_in", args=[page.pk])
        buttons.append(Button("Check-in", url, icon_name="tick", priority=priority + 1))
    return buttons


@hooks.register("register_page_listing_more_buttons")
def event_listing_buttons(page, user, next_url=None) -> list[Button]:
    return _event_buttons(page, user, priority=15)


@hooks.register("register_page_header_buttons")
def event_header_buttons(page, user, view_name, next_url=None) -> list[Button]:
    return _event_buttons(page, user, priority=25)


@hooks.register("register_permissions")
def register_registration_permissions():
    """Offer "view" (lists and export) and "change" (check-in) of registrations in the group editor."""
    return Permission.objects.filter(
        content_type__app_label="cms", codename__in=["view_eventregistration", "change_eventregistration"]
    )


@hooks.register("after_publish_page")
def offer_places_after_publishing(request, page) -> None:
    # A raised capacity frees places: the waitlist gets them.
    if isinstance(page, EventPage):
        from cms.events import tasks

        queue_on_commit(tasks.fill_free_places, page.pk)


@hooks.register("register_member_export")
def attendance_export():
    from cms.events.resources import AttendanceExportResource
    from membership.exports import MemberExport

    return MemberExport(
        "attendance",
        "Event attendance",
        AttendanceExportResource,
        "cms.view_eventregistration",
        "Everyone who held a place at an event: the event, the person, their organisation and check-in.",
    )
