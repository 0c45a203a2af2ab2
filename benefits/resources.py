"""The perk redemptions download in the engagement workspace's Export page (see membership.exports)."""

from django.db.models import QuerySet
from import_export import fields

from benefits.models import Redemption
from membership.resources import ExportResource


class RedemptionExportResource(ExportResource):
    """Every redemption: which perk, from which provider, for which organisation, by whom and when."""

    perk = fields.Field(attribute="perk__title", column_name="perk")
    provider = fields.Field(attribute="perk__provider__name", column_name="provider")
    organisation = fields.Field(attribute="organisation__name", column_name="organisation_name")
    person = fields.Field(attribute="person__email", column_name="contact_email")
    created_at = fields.Field(column_name="redeemed_on", dehydrate_method="local_day")

    class Meta:
        model = Redemption
        fields = ["perk", "provider", "organisation", "person", "created_at"]
        export_order = fields

    def get_queryset(self) -> QuerySet[Redemption]:
        return Redemption.objects.select_related("perk__provider", "organisation", "person").order_by(
            "created_at", "pk"
        )
