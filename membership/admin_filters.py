"""Filters for the staff CRM listings in the Wagtail admin.

Each listing's FilterSet declares its filters one by one, so later features add theirs alongside.
"""

import calendar

import django_filters
from django import forms
from django.db import connection
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone
from taggit.models import Tag
from wagtail.admin.filters import WagtailFilterSet
from wagtail.admin.widgets import BooleanRadioSelect

from accounts.models import User
from membership.models import (
    FollowUp,
    Organisation,
    OrganisationMember,
    Specialism,
    Subscription,
    TaggedOrganisation,
    Tier,
)

MONTHS = [(n, name) for n, name in enumerate(calendar.month_name) if n]
NO_SUBSCRIPTION = "none"


def _staff():
    return User.objects.filter(is_staff=True, is_active=True).order_by("first_name", "last_name", "email")


class OrganisationFilterSet(WagtailFilterSet):
    specialisms = django_filters.ModelChoiceFilter(
        label="Specialism", queryset=Specialism.objects.all(), empty_label="All"
    )
    town = django_filters.ChoiceFilter(label="Town", empty_label="All")
    account_manager = django_filters.ModelChoiceFilter(label="Account manager", queryset=_staff(), empty_label="All")
    tags = django_filters.ModelMultipleChoiceFilter(
        label="Tags",
        field_name="tags",
        # Tags in use on organisations: one index probe per tag, not a pass over every tagging.
        queryset=Tag.objects.filter(Exists(TaggedOrganisation.objects.filter(tag=OuterRef("pk")))),
        widget=forms.CheckboxSelectMultiple,
    )

    tier = django_filters.ModelChoiceFilter(
        label="Tier", queryset=Tier.objects.all(), empty_label="All", method="filter_tier"
    )
    status = django_filters.ChoiceFilter(
        label="Membership status",
        choices=[*Subscription.Status.choices, (NO_SUBSCRIPTION, "Never subscribed")],
        empty_label="All",
        method="filter_status",
    )
    renewal_month = django_filters.ChoiceFilter(
        label="Renewal month", choices=MONTHS, empty_label="All", method="filter_renewal_month"
    )

    class Meta:
        model = Organisation
        fields = [
            "organisation_type", "size_band", "specialisms", "town", "account_manager", "tags", "tier", "status",
            "renewal_month",
        ]  # fmt: skip

    def filter_tier(self, queryset, name: str, tier: Tier):
        return queryset.filter(Exists(Subscription.objects.live().filter(organisation=OuterRef("pk"), tier=tier)))

    def filter_status(self, queryset, name: str, status: str):
        """An organisation's status is that of its newest subscription: the live one, if it has one."""
        newest = Subscription.objects.filter(organisation=OuterRef("pk")).order_by("-created_at", "-pk")
        if status == NO_SUBSCRIPTION:
            return queryset.filter(~Exists(newest))
        return queryset.alias(newest_status=Subquery(newest.values("status")[:1])).filter(newest_status=status)

    def filter_renewal_month(self, queryset, name: str, month: str):
        live = Subscription.objects.live().filter(organisation=OuterRef("pk"), current_period_end__month=int(month))
        return queryset.filter(Exists(live))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Towns are whatever organisations have typed, so the choices are read afresh for each listing.
        self.filters["town"].extra["choices"] = [(town, town) for town in distinct_towns()]


def distinct_towns() -> list[str]:
    """Every town an organisation names, in order, in one index probe per town.

    SELECT DISTINCT would read the whole town index, which grows with the organisations; stepping from
    each town to the next one up costs the same with 2,000 organisations or 200,000.
    """
    table = connection.ops.quote_name(Organisation._meta.db_table)
    sql = f"""
        WITH RECURSIVE towns(town) AS (
            SELECT MIN(town) FROM {table} WHERE town > ''
            UNION ALL
            SELECT (SELECT MIN(town) FROM {table} WHERE town > towns.town) FROM towns WHERE towns.town IS NOT NULL
        )
        SELECT town FROM towns WHERE town IS NOT NULL
    """  # noqa: S608 -- the only interpolation is the model's own table name
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [town for (town,) in cursor.fetchall()]


class PeopleFilterSet(WagtailFilterSet):
    status = django_filters.ChoiceFilter(
        label="Status",
        choices=[("active", "Active"), ("former", "Former")],
        empty_label="All",
        widget=forms.RadioSelect,
        method="filter_status",
    )

    class Meta:
        model = OrganisationMember
        fields = ["role", "status"]

    def filter_status(self, queryset, name: str, value: str):
        return queryset.filter(left_at__isnull=(value == "active"))


class FollowUpFilterSet(WagtailFilterSet):
    assignee = django_filters.ModelChoiceFilter(label="Assignee", queryset=_staff(), empty_label="All")
    overdue = django_filters.BooleanFilter(label="Overdue", widget=BooleanRadioSelect, method="filter_overdue")

    class Meta:
        model = FollowUp
        fields = ["assignee", "overdue"]

    def filter_overdue(self, queryset, name: str, value: bool | None):
        if value is None:
            return queryset
        today = timezone.localdate()
        return queryset.filter(due_date__lt=today) if value else queryset.filter(due_date__gte=today)
