"""Import and export resources (django-import-export): what each spreadsheet column means and how its cells are read
or written.

``MemberImportResource`` defines the import file's columns, one row per contact, and cleans each cell with its
widget; ``membership.importing`` matches the rows to what exists and writes them in bulk. The export resources
define what staff can download (``membership.exports`` lists them); every exported cell passes through
``neutralise`` so that a spreadsheet never runs it as a formula.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db.models import QuerySet
from django.utils import timezone
from import_export import fields, resources, widgets

from config.text import spreadsheet_cell
from membership.models import (
    Organisation,
    OrganisationMember,
    OrganisationType,
    SizeBand,
    Subscription,
)

# Spreadsheet formula injection: every exported cell goes through this (``config.text.spreadsheet_cell``).
neutralise = spreadsheet_cell


# Reading cells ------------------------------------------------------------------------------------------------

# Invisible, and refused by a workbook (openpyxl's IllegalCharacterError): never kept from an imported cell.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class CellError:
    """A workbook cell holding a formula's error (#N/A from a VLOOKUP, #REF!): it has no value to read."""

    __slots__ = ("code",)

    def __init__(self, code) -> None:
        self.code = str(code)

    def __str__(self) -> str:
        return self.code


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # spreadsheets store 1234 as 1234.0
    elif isinstance(value, CellError):
        raise ValueError(f"The cell holds a formula's error ({value}), not a value: correct the formula or clear it.")
    return str(value).strip()


class TextWidget(widgets.CharWidget):
    def __init__(self, max_length: int, *, required: bool = False, lower: bool = False, upper: bool = False) -> None:
        super().__init__()
        self.max_length, self.required, self.lower, self.upper = max_length, required, lower, upper

    def clean(self, value, row=None, **kwargs) -> str:
        text = " ".join(_text(value).split())
        if not text.isprintable():  # rare: a control character pasted from another program (a backspace, say)
            text = CONTROL_CHARACTERS.sub("", text)
        if self.lower:
            text = text.lower()
        if self.upper:
            text = text.upper()
        if self.required and not text:
            raise ValueError("This is required.")
        if len(text) > self.max_length:
            raise ValueError(f"At most {self.max_length} characters (this has {len(text)}).")
        return text


class EmailWidget(TextWidget):
    def __init__(self) -> None:
        super().__init__(254, required=True, lower=True)

    def clean(self, value, row=None, **kwargs) -> str:
        email = super().clean(value, row, **kwargs)
        try:
            validate_email(email)
        except ValidationError as error:
            raise ValueError(f"“{email}” is not an e-mail address.") from error
        return email


COMPANY_NUMBER = re.compile(r"^(?:[A-Z]{2}\d{6}|\d{8})$")


def company_number_key(value) -> str:
    """A company number as Companies House writes it: no spaces, upper case, leading zeros restored (1234567 is
    01234567). How a file's numbers are read, and how stored ones are compared with them."""
    number = re.sub(r"\s+", "", _text(value)).upper()
    if number.isdigit() and len(number) < 8:
        number = number.zfill(8)
    return number


class CompanyNumberWidget(widgets.CharWidget):
    """Companies House numbers: 8 characters, e.g. 01234567 or SC123456; shorter numbers gain their leading zeros."""

    def clean(self, value, row=None, **kwargs) -> str:
        number = company_number_key(value)
        if number and not COMPANY_NUMBER.match(number):
            raise ValueError(f"“{number}” is not a company number: 8 characters, like 01234567 or SC123456.")
        return number


_url = URLValidator(schemes=["http", "https"])


def domain_of(website: str) -> str:
    """The website's domain without ``www.``, lower case: how organisations are matched by website."""
    host = (urlsplit(website).hostname or "").lower()
    return host.removeprefix("www.")


class WebsiteWidget(widgets.CharWidget):
    def clean(self, value, row=None, **kwargs) -> str:
        website = _text(value)
        if not website:
            return ""
        if "://" not in website:
            website = "https://" + website
        try:
            _url(website)
        except ValidationError as error:
            raise ValueError(f"“{_text(value)}” is not a website address.") from error
        if len(website) > 200:
            raise ValueError("At most 200 characters.")
        return website


class ChoiceWidget(widgets.CharWidget):
    """One of a model field's choices, given by its value or its label, in any case."""

    def __init__(self, choices, what: str) -> None:
        super().__init__()
        self.what = what
        self.lookup = {}
        for value, label in choices:
            for name in (value, label, str(label).replace(" staff", "")):
                self.lookup[str(name).lower()] = value
        self.allowed = ", ".join(str(label) for _, label in choices)

    def clean(self, value, row=None, **kwargs) -> str:
        text = _text(value)
        if not text:
            return ""
        try:
            return self.lookup[text.lower()]
        except KeyError:
            raise ValueError(f"“{text}” is not a {self.what}: use one of {self.allowed}.") from None


class DayWidget(widgets.DateWidget):
    """A date as 2026-03-31, 31/03/2026 or 31 Mar 2026, or a spreadsheet's own date cell.

    In a workbook, a whole number from 1990 to 2100 is a date too: a date cell formatted as General or as a number
    holds the date's serial number, counted from the workbook's ``epoch`` (its 1900 or 1904 date system). A CSV has
    no epoch (``epoch`` is None), and a number there could be any date, so it is refused.
    """

    FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d %b %Y", "%d %B %Y")
    YEARS = (1990, 2100)  # a serial number outside these years is more likely another number in the wrong column

    def __init__(self) -> None:
        super().__init__(format=self.FORMATS)
        self.epoch: datetime | None = None

    def clean(self, value, row=None, **kwargs) -> date | None:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        text = _text(value)
        if not text:
            return None
        for pattern in self.FORMATS:
            try:
                return datetime.strptime(text, pattern).date()
            except ValueError:
                continue
        if self.epoch is not None and isinstance(value, int | float) and not isinstance(value, bool):
            return self._from_serial(value, text)  # only a workbook's number cell gets this far
        raise ValueError(f"“{text}” is not a date: write it like 2026-03-31 or 31/03/2026.")

    def _from_serial(self, serial: float, text: str) -> date:
        from openpyxl.utils.datetime import from_excel

        if isinstance(serial, float) and not serial.is_integer():
            raise ValueError(
                f"“{text}” is a number, not a date: format the cell as a date, or write it like 2026-03-31."
            )
        try:
            moment = from_excel(serial, self.epoch)
        except OverflowError:  # further from the epoch than a datetime reaches
            moment = None
        first, last = self.YEARS
        if not isinstance(moment, datetime) or not first <= moment.year <= last:  # below 1, a time of day
            raise ValueError(
                f"“{text}” is not a date from {first} to {last}: format the cell as a date, or write it like "
                "2026-03-31."
            )
        return moment.date()


class ConsentWidget(widgets.BooleanWidget):
    """Yes or no (also true/false, 1/0, granted/withdrawn); empty means the file says nothing."""

    YES = {"yes", "y", "true", "1", "granted", "opted in"}
    NO = {"no", "n", "false", "0", "withdrawn", "opted out"}

    def clean(self, value, row=None, **kwargs) -> bool | None:
        text = _text(value).lower()
        if not text:
            return None
        if text in self.YES:
            return True
        if text in self.NO:
            return False
        raise ValueError(f"“{_text(value)}” is not yes or no.")


# The import file's columns, as the membership team's spreadsheets name them (any order in a file).
IMPORT_COLUMNS = [
    "organisation_name",
    "company_number",
    "website",
    "organisation_type",
    "size_band",
    "town",
    "postcode",
    "tier",
    "subscription_status",
    "renewal_date",
    "contact_email",
    "contact_first_name",
    "contact_last_name",
    "job_title",
    "role",
    "marketing_consent",
]


class MemberImportResource(resources.Resource):
    """The import file: one row per contact, with their organisation's details repeated on each of its rows."""

    organisation_name = fields.Field(
        attribute="organisation_name", column_name="organisation_name", widget=TextWidget(200, required=True)
    )
    company_number = fields.Field(
        attribute="company_number", column_name="company_number", widget=CompanyNumberWidget()
    )
    website = fields.Field(attribute="website", column_name="website", widget=WebsiteWidget())
    organisation_type = fields.Field(
        attribute="organisation_type",
        column_name="organisation_type",
        widget=ChoiceWidget(OrganisationType.choices, "type of organisation"),
    )
    size_band = fields.Field(
        attribute="size_band", column_name="size_band", widget=ChoiceWidget(SizeBand.choices, "size")
    )
    town = fields.Field(attribute="town", column_name="town", widget=TextWidget(100))
    postcode = fields.Field(attribute="postcode", column_name="postcode", widget=TextWidget(10, upper=True))
    tier = fields.Field(attribute="tier", column_name="tier", widget=TextWidget(80))
    subscription_status = fields.Field(
        attribute="subscription_status",
        column_name="subscription_status",
        widget=ChoiceWidget(Subscription.Status.choices, "subscription status"),
    )
    renewal_date = fields.Field(attribute="renewal_date", column_name="renewal_date", widget=DayWidget())
    contact_email = fields.Field(attribute="contact_email", column_name="contact_email", widget=EmailWidget())
    contact_first_name = fields.Field(
        attribute="contact_first_name", column_name="contact_first_name", widget=TextWidget(150)
    )
    contact_last_name = fields.Field(
        attribute="contact_last_name", column_name="contact_last_name", widget=TextWidget(150)
    )
    job_title = fields.Field(attribute="job_title", column_name="job_title", widget=TextWidget(150))
    role = fields.Field(
        attribute="role", column_name="role", widget=ChoiceWidget(OrganisationMember.Role.choices, "role")
    )
    marketing_consent = fields.Field(
        attribute="marketing_consent", column_name="marketing_consent", widget=ConsentWidget()
    )

    class Meta:
        import_order = IMPORT_COLUMNS

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.import_fields = self.get_import_fields()

    @property
    def columns(self) -> list[str]:
        return [field.column_name for field in self.import_fields]

    def read_numbers_as_dates(self, epoch: datetime | None) -> None:
        """Date columns read a number as the serial number of a date counted from a workbook's ``epoch``; None (a
        CSV) refuses numbers."""
        for field in self.import_fields:
            if isinstance(field.widget, DayWidget):
                field.widget.epoch = epoch

    def clean_row(self, row: dict) -> tuple[dict, dict[str, list[str]]]:
        """The row's cleaned values by column, and the messages of the cells that could not be read."""
        values: dict = {}
        errors: dict[str, list[str]] = {}
        for field in self.import_fields:
            try:
                values[field.attribute] = field.clean(row)
            except ValueError as error:
                errors.setdefault(field.column_name, []).append(str(error))
                values[field.attribute] = None
        if not errors:
            self._check_subscription(values, errors)
        return values, errors

    @staticmethod
    def _check_subscription(values: dict, errors: dict[str, list[str]]) -> None:
        status = values["subscription_status"]
        if status and not values["tier"]:
            errors["tier"] = ["Give the tier the subscription status is for."]
        live = {Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE, Subscription.Status.GRACE}
        if values["tier"] and (status or Subscription.Status.ACTIVE) in live and not values["renewal_date"]:
            errors["renewal_date"] = ["Give the renewal date of a live membership."]


# Exports --------------------------------------------------------------------------------------------------------


class ExportResource(resources.ModelResource):
    """A model resource for staff downloads: its queryset fetches everything a row shows in a fixed number of
    queries. (``membership.exports`` neutralises every cell it writes, whatever resource made it.)"""

    day_attribute = "created_at"

    def local_day(self, instance) -> str:
        moment = getattr(instance, self.day_attribute)
        return timezone.localdate(moment).isoformat() if moment else ""


class OrganisationExportResource(ExportResource):
    organisation_type = fields.Field(attribute="get_organisation_type_display", column_name="organisation_type")
    size_band = fields.Field(attribute="size_band", column_name="size_band")
    account_manager = fields.Field(attribute="account_manager__email", column_name="account_manager")
    created_at = fields.Field(column_name="created_at", dehydrate_method="local_day")

    class Meta:
        model = Organisation
        fields = [
            "id",
            "name",
            "company_number",
            "website",
            "organisation_type",
            "size_band",
            "town",
            "postcode",
            "local_authority",
            "account_manager",
            "directory_opt_in",
            "created_at",
        ]
        export_order = fields

    def get_queryset(self) -> QuerySet[Organisation]:
        return Organisation.objects.select_related("account_manager").order_by("pk")


class ContactExportResource(ExportResource):
    """Everyone who is a contact at an organisation now: one row per person and organisation."""

    day_attribute = "joined_at"

    organisation = fields.Field(attribute="organisation__name", column_name="organisation_name")
    company_number = fields.Field(attribute="organisation__company_number", column_name="company_number")
    email = fields.Field(attribute="user__email", column_name="contact_email")
    first_name = fields.Field(attribute="user__first_name", column_name="contact_first_name")
    last_name = fields.Field(attribute="user__last_name", column_name="contact_last_name")
    joined_at = fields.Field(column_name="since", dehydrate_method="local_day")

    class Meta:
        model = OrganisationMember
        fields = [
            "organisation",
            "company_number",
            "email",
            "first_name",
            "last_name",
            "job_title",
            "role",
            "joined_at",
        ]
        export_order = fields

    def get_queryset(self) -> QuerySet[OrganisationMember]:
        return OrganisationMember.objects.active().select_related("organisation", "user").order_by("organisation", "pk")


class SubscriptionExportResource(ExportResource):
    day_attribute = "current_period_end"
    organisation = fields.Field(attribute="organisation__name", column_name="organisation_name")
    tier = fields.Field(attribute="tier__name", column_name="tier")
    status = fields.Field(attribute="status", column_name="subscription_status")
    renewal_date = fields.Field(column_name="renewal_date", dehydrate_method="local_day")
    amount = fields.Field(attribute="amount_pence", column_name="amount_pence")

    class Meta:
        model = Subscription
        fields = [
            "organisation",
            "tier",
            "status",
            "interval",
            "payment_method",
            "amount",
            "currency",
            "renewal_date",
            "auto_renew",
            "cancel_at_period_end",
            "po_number",
        ]
        export_order = fields

    def get_queryset(self) -> QuerySet[Subscription]:
        return Subscription.objects.select_related("organisation", "tier").order_by("organisation__name", "-created_at")
