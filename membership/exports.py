"""Staff downloads: organisations, contacts and subscriptions, and whatever other apps register, as CSV or XLSX.

Another app adds an export by registering a Wagtail hook in its ``wagtail_hooks.py``::

    @hooks.register("register_member_export")
    def redemptions_export():
        return MemberExport(
            slug="redemptions",
            label="Perk redemptions",
            resource=RedemptionExportResource,  # a django-import-export resource with get_queryset()
            permission="benefits.view_redemption",
        )

Every cell is neutralised on the way out (``membership.resources.neutralise``), whichever resource made it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO

from wagtail import hooks

from membership.resources import (
    ContactExportResource,
    OrganisationExportResource,
    SubscriptionExportResource,
    neutralise,
)

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class MemberExport:
    slug: str
    label: str
    resource: type
    permission: str
    description: str = ""

    def allowed(self, user) -> bool:
        return user.has_perm(self.permission)

    def rows(self) -> Iterator[list]:
        """The header, then one neutralised row per object."""
        resource = self.resource()
        yield [neutralise(heading) for heading in resource.get_export_headers()]
        for instance in resource.iter_queryset(resource.get_queryset()):
            yield [neutralise(value) for value in resource.export_resource(instance)]


BUILT_IN = [
    MemberExport(
        "organisations",
        "Organisations",
        OrganisationExportResource,
        "membership.view_organisation",
        "Every organisation, with its company number, website, type, size, town and account manager.",
    ),
    MemberExport(
        "contacts",
        "Contacts",
        ContactExportResource,
        "membership.view_organisationmember",
        "Everyone who is a contact at an organisation now, with their job title and role.",
    ),
    MemberExport(
        "subscriptions",
        "Subscriptions",
        SubscriptionExportResource,
        "membership.view_subscription",
        "Every subscription, current and past: tier, status, price and renewal date.",
    ),
]


def registered_exports() -> list[MemberExport]:
    return BUILT_IN + [hook() for hook in hooks.get_hooks("register_member_export")]


def exports_for(user) -> list[MemberExport]:
    return [export for export in registered_exports() if export.allowed(user)]


class _Echo:
    def write(self, value: str) -> str:
        return value


def stream_csv(export: MemberExport) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff"  # so that Excel reads the file as UTF-8
    for row in export.rows():
        yield writer.writerow(row)


def xlsx_bytes(export: MemberExport) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=export.label[:31])
    for row in export.rows():  # neutralised: without the control characters a workbook refuses
        sheet.append(row)
    output = BytesIO()
    workbook.save(output)
    return output.getvalue()
