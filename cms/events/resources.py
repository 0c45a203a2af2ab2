"""The event attendance download in the engagement workspace's Export page (see membership.exports)."""

from django.db.models import QuerySet
from import_export import fields

from cms.events.models import EventRegistration
from membership.resources import ExportResource


class AttendanceExportResource(ExportResource):
    """Every registration that held a place: the event, the person, their organisation and whether they came."""

    day_attribute = "attended_at"

    event = fields.Field(attribute="event__title", column_name="event")
    starts = fields.Field(column_name="event_date", dehydrate_method="event_day")
    organisation = fields.Field(attribute="organisation__name", column_name="organisation_name")
    status = fields.Field(attribute="get_status_display", column_name="status")
    attended_at = fields.Field(column_name="checked_in_on", dehydrate_method="local_day")

    class Meta:
        model = EventRegistration
        fields = ["event", "starts", "name", "email", "organisation", "status", "attended_at"]
        export_order = fields

    def event_day(self, registration) -> str:
        return registration.event.local_starts_at.date().isoformat()

    def get_queryset(self) -> QuerySet[EventRegistration]:
        return (
            EventRegistration.objects.filter(confirmed_at__isnull=False)
            .select_related("event", "organisation")
            .order_by("event__starts_at", "pk")
        )
