"""The staff CRM in the Wagtail admin: a "CRM" menu with organisations, people, specialisms and follow-ups.

Listings search with the ORM (``icontains``) rather than a search index, so a fragment of a name or an
e-mail address finds its row as soon as it is saved.
"""

from django.contrib.auth.models import Permission
from django.forms import CheckboxSelectMultiple
from django.templatetags.static import static
from django.urls import include, path, reverse, reverse_lazy
from django.utils.html import format_html
from wagtail import hooks
from wagtail.admin.menu import Menu, MenuItem, SubmenuMenuItem
from wagtail.admin.panels import FieldPanel, InlinePanel, MultiFieldPanel, ObjectList, TitleFieldPanel
from wagtail.admin.ui.tables import Column, DateColumn, StatusTagColumn, TitleColumn
from wagtail.admin.viewsets.base import ViewSetGroup
from wagtail.admin.viewsets.model import ModelViewSet
from wagtail.admin.widgets.slug import SlugInput

from membership import admin_views
from membership.admin_filters import FollowUpFilterSet, OrganisationFilterSet, PeopleFilterSet
from membership.admin_forms import OrganisationAdminForm, SlugFromNameForm
from membership.models import FollowUp, Invoice, Organisation, OrganisationMember, Specialism, Subscription, Tier


def _permissions(model_name: str, actions: list[str]):
    return Permission.objects.filter(
        content_type__app_label="membership", codename__in=[f"{action}_{model_name}" for action in actions]
    )


def _status_label(organisation: Organisation) -> str:
    status = getattr(organisation, "membership_status", None)
    return Subscription.Status(status).label if status else "—"


class NameFieldPanel(TitleFieldPanel):
    """The name field, filling in the slug as it is typed while the record is new.

    An existing slug may be in links elsewhere, so renaming leaves it alone unless someone edits it.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("placeholder", False)
        super().__init__(*args, **kwargs)

    class BoundPanel(TitleFieldPanel.BoundPanel):
        def get_should_apply(self) -> bool:
            return not (self.instance and self.instance.pk)


class ReadOnlyListingViewSet(ModelViewSet):
    """A listing (with search, filters and export) and nothing else: changes go through the services."""

    add_to_reference_index = False
    copy_view_enabled = False
    registered_permissions = ["view"]

    def get_urlpatterns(self) -> list:
        return [
            path("", self.index_view, name="index"),
            path("results/", self.index_results_view, name="index_results"),
        ]

    def get_common_view_kwargs(self, **kwargs) -> dict:
        missing = ["add", "edit", "delete", "history", "usage"]
        return super().get_common_view_kwargs(**{f"{view}_url_name": None for view in missing}, **kwargs)

    def register_admin_url_finder(self) -> None:
        pass  # there is no edit view to find

    def get_permissions_to_register(self):
        return _permissions(self.model_name, self.registered_permissions)


class OrganisationViewSet(ModelViewSet):
    model = Organisation
    name = "crm_organisations"
    url_prefix = "membership/organisation"
    icon = "group"
    menu_label = "Organisations"
    add_to_reference_index = False
    copy_view_enabled = False  # a copy would clash on slug and company number
    index_view_class = admin_views.OrganisationIndexView
    add_view_class = admin_views.OrganisationCreateView
    edit_view_class = admin_views.OrganisationEditView
    delete_view_class = admin_views.OrganisationDeleteView

    ordering = "name"
    list_per_page = 50
    list_display = [
        # The record is where staff work on an organisation (it links to the edit form), so the name
        # leads there; without a per-row actions menu the page also renders in a fifth less time.
        TitleColumn("name", label="Name", sort_key="name", get_url=lambda o: admin_views.record_url(o.pk)),
        "organisation_type",
        "size_band",
        "town",
        Column("tier_name", label="Tier"),
        Column("membership_status", label="Status", accessor=_status_label),
        DateColumn("renews_on", label="Renews"),
        Column("account_manager", label="Account manager"),
        Column("active_contacts", label="Active contacts", sort_key="active_contacts"),
        DateColumn("created_at", label="Created", sort_key="created_at"),
    ]
    filterset_class = OrganisationFilterSet
    search_fields = ["name", "town", "postcode", "company_number", "website", "email_domains"]
    search_backend_name = None
    list_export = [
        "name",
        "slug",
        "get_organisation_type_display",
        "get_size_band_display",
        "town",
        "postcode",
        "local_authority",
        "website",
        "company_number",
        "account_manager_email",
        "tier_name",
        "membership_status",
        "renews_on",
        "active_contacts",
        "created_at",
    ]
    export_headings = {
        "name": "Name",
        "slug": "Slug",
        "get_organisation_type_display": "Type",
        "get_size_band_display": "Size",
        "town": "Town",
        "postcode": "Postcode",
        "local_authority": "Local authority",
        "website": "Website",
        "company_number": "Company number",
        "account_manager_email": "Account manager e-mail",
        "tier_name": "Tier",
        "membership_status": "Status",
        "renews_on": "Renews",
        "active_contacts": "Active contacts",
        "created_at": "Created",
    }
    export_filename = "organisations"

    edit_handler = ObjectList(
        [
            MultiFieldPanel(
                [
                    NameFieldPanel("name"),
                    FieldPanel("slug", widget=SlugInput),
                    FieldPanel("organisation_type"),
                    FieldPanel("size_band"),
                    FieldPanel("specialisms", widget=CheckboxSelectMultiple),
                    FieldPanel("description"),
                    FieldPanel("logo"),
                    FieldPanel("company_number"),
                    FieldPanel("town"),
                    FieldPanel("postcode"),
                    FieldPanel("local_authority"),
                ],
                heading="Profile",
            ),
            MultiFieldPanel(
                [
                    FieldPanel("directory_opt_in"),
                    FieldPanel("public_fields"),
                    FieldPanel("website"),
                    FieldPanel("linkedin_url"),
                    FieldPanel("x_url"),
                    FieldPanel("github_url"),
                ],
                heading="Directory",
            ),
            MultiFieldPanel(
                [
                    FieldPanel("billing_contact"),
                    FieldPanel("billing_email"),
                    FieldPanel("vat_number"),
                    FieldPanel("needs_purchase_order"),
                ],
                heading="Billing",
            ),
            MultiFieldPanel(
                [
                    FieldPanel("account_manager"),
                    FieldPanel("tags"),
                    FieldPanel("seat_limit"),
                    FieldPanel("email_domains"),
                ],
                heading="CRM",
            ),
        ],
        base_form_class=OrganisationAdminForm,
    )

    def get_urlpatterns(self) -> list:
        return [
            *super().get_urlpatterns(),
            path("<int:pk>/record/", admin_views.OrganisationRecordView.as_view(), name="record"),
        ]

    def get_permissions_to_register(self):
        # The record view needs "view", so the group editor must offer it though there is no inspect view.
        return _permissions("organisation", ["view", "add", "change", "delete"])


class PeopleViewSet(ReadOnlyListingViewSet):
    model = OrganisationMember
    name = "crm_people"
    url_prefix = "membership/people"
    icon = "user"
    menu_label = "People"
    index_view_class = admin_views.PeopleIndexView
    list_per_page = 50
    list_display = [
        Column("name", label="Name", accessor=lambda m: m.user.get_full_name() or "—", sort_key="user__last_name"),
        Column("email", label="E-mail", accessor="user.email", sort_key="user__email"),
        TitleColumn(
            "organisation",
            label="Organisation",
            accessor="organisation.name",
            get_url=lambda m: admin_views.record_url(m.organisation_id),
            sort_key="organisation__name",
        ),
        "role",
        "job_title",
        DateColumn("joined_at", label="Since", sort_key="joined_at"),
        StatusTagColumn(
            "status",
            label="Status",
            accessor=lambda m: "Former" if m.left_at else "Active",
            primary=lambda m: m.left_at is None,
        ),
    ]
    filterset_class = PeopleFilterSet
    search_fields = ["user__first_name", "user__last_name", "user__email", "job_title", "organisation__name"]
    search_backend_name = None
    list_export = [
        "user.first_name",
        "user.last_name",
        "user.email",
        "organisation.name",
        "get_role_display",
        "job_title",
        "joined_at",
        "left_at",
    ]
    export_headings = {
        "user.first_name": "First name",
        "user.last_name": "Last name",
        "user.email": "E-mail",
        "organisation.name": "Organisation",
        "get_role_display": "Role",
        "job_title": "Job title",
        "joined_at": "Since",
        "left_at": "Left",
    }
    export_filename = "people"


class SpecialismViewSet(ModelViewSet):
    model = Specialism
    name = "crm_specialisms"
    url_prefix = "membership/specialisms"
    icon = "tag"
    menu_label = "Specialisms"
    add_to_reference_index = False
    copy_view_enabled = False
    index_view_class = admin_views.SpecialismIndexView
    ordering = "name"
    list_display = ["name", "slug", Column("organisation_count", label="Organisations", sort_key="organisation_count")]
    search_fields = ["name"]
    search_backend_name = None
    edit_handler = ObjectList(
        [NameFieldPanel("name"), FieldPanel("slug", widget=SlugInput)], base_form_class=SlugFromNameForm
    )


class FollowUpViewSet(ReadOnlyListingViewSet):
    model = FollowUp
    name = "crm_follow_ups"
    url_prefix = "membership/follow-ups"
    icon = "calendar-check"
    menu_label = "Follow-ups"
    registered_permissions = ["view", "add", "change"]
    index_view_class = admin_views.FollowUpIndexView
    ordering = "due_date"
    list_per_page = 50
    list_display = [
        TitleColumn(
            "title",
            label="Follow-up",
            get_url=lambda f: admin_views.record_url(f.organisation_id) + "#follow-ups-section",
            sort_key="title",
        ),
        Column("organisation", label="Organisation", accessor="organisation.name", sort_key="organisation__name"),
        Column("assignee", label="Assignee"),
        Column("due_date", label="Due", sort_key="due_date"),
        StatusTagColumn(
            "overdue", label="", accessor=lambda f: "Overdue" if f.overdue else "", primary=lambda f: f.overdue
        ),
    ]
    filterset_class = FollowUpFilterSet
    search_fields = ["title", "organisation__name"]
    search_backend_name = None

    def get_urlpatterns(self) -> list:
        return [
            *super().get_urlpatterns(),
            path("<int:pk>/done/", admin_views.FollowUpDoneView.as_view(), name="done"),
        ]


class TierViewSet(ModelViewSet):
    """Membership tiers and their price matrix: what the Join page offers and what each organisation pays."""

    model = Tier
    name = "tiers"
    url_prefix = "membership/tiers"
    icon = "tag"
    menu_label = "Tiers and prices"
    add_to_reference_index = False
    copy_view_enabled = False
    list_display = [
        TitleColumn("name", label="Tier", url_name="tiers:edit"),
        Column("seat_limit", label="Seats", accessor=lambda t: t.seat_limit or "Unlimited"),
        Column("is_public", label="On the Join page", accessor=lambda t: "Yes" if t.is_public else "No"),
        Column("monthly_billing", label="Monthly", accessor=lambda t: "Yes" if t.monthly_billing else "No"),
        "sort_order",
    ]
    edit_handler = ObjectList(
        [
            MultiFieldPanel(
                [
                    NameFieldPanel("name"),
                    FieldPanel("slug", widget=SlugInput),
                    FieldPanel("description"),
                    FieldPanel("benefits"),
                    FieldPanel("seat_limit"),
                    FieldPanel("is_public"),
                    FieldPanel("monthly_billing"),
                    FieldPanel("sort_order"),
                ],
                heading="Tier",
            ),
            InlinePanel(
                "prices",
                heading="Price matrix (pence, before VAT; 20% VAT is added at payment)",
                label="Price",
                panels=[
                    FieldPanel("organisation_type"),
                    FieldPanel("size_band"),
                    FieldPanel("annual_pence"),
                    FieldPanel("monthly_pence"),
                ],
            ),
        ]
    )


class InvoiceViewSet(ReadOnlyListingViewSet):
    """Every invoice, for finance: open ones first; an open invoice can be recorded as paid by transfer."""

    model = Invoice
    name = "crm_invoices"
    url_prefix = "membership/invoices"
    icon = "doc-full"
    menu_label = "Invoices"
    ordering = ["-created_at"]
    list_display = [
        # An open invoice's number leads to recording its bank transfer.
        TitleColumn(
            "number",
            label="Invoice",
            accessor=str,
            get_url=lambda i: (
                reverse("crm_invoices:mark_paid", args=[i.pk]) if i.status == Invoice.Status.OPEN else None
            ),
        ),
        Column("organisation", label="Organisation", accessor="organisation.name"),
        Column("po_number", label="PO"),
        Column("amount", label="Amount (pence)", accessor="amount_due_pence"),
        Column("status", label="Status", accessor="get_status_display"),
        DateColumn("due_date", label="Due"),
    ]
    list_filter = ["status", "paid_out_of_band"]
    search_fields = ["number", "po_number", "organisation__name"]
    search_backend_name = None
    list_export = ["number", "organisation", "po_number", "amount_due_pence", "status", "due_date", "paid_at"]

    def get_queryset(self, request):
        return Invoice.objects.select_related("organisation")

    def get_urlpatterns(self) -> list:
        return [
            *super().get_urlpatterns(),
            path("<int:pk>/mark-paid/", admin_views.MarkInvoicePaidView.as_view(), name="mark_paid"),
        ]


class CRMGroup(ViewSetGroup):
    menu_label = "CRM"
    menu_icon = "clipboard-list"
    menu_order = 150
    items = (OrganisationViewSet, PeopleViewSet, SpecialismViewSet, FollowUpViewSet, TierViewSet, InvoiceViewSet)


@hooks.register("register_admin_viewset")
def register_crm() -> ViewSetGroup:
    return CRMGroup()


@hooks.register("register_permissions")
def register_crm_permissions():
    """Offer the note and audit-trail permissions in the group editor; they have no listing of their own."""
    return _permissions("note", ["view", "add", "change"]) | _permissions("auditentry", ["view"])


@hooks.register("insert_global_admin_css")
def membership_admin_css() -> str:
    return format_html('<link rel="stylesheet" href="{}">', static("membership/admin.css"))


@hooks.register("construct_homepage_panels")
def add_membership_dashboard(request, panels: list) -> None:
    # Revenue and renewals are for the team that sees subscriptions.
    if request.user.has_perm("membership.view_subscription"):
        panels.append(admin_views.MembershipPanel())


@hooks.register("construct_homepage_panels")
def add_my_follow_ups(request, panels: list) -> None:
    # The panel lists follow-ups and links to organisation records, so it is for those who may read both.
    if request.user.has_perm("membership.view_organisation") and request.user.has_perm("membership.view_followup"):
        panels.append(admin_views.MyFollowUpsPanel(request.user))


# The engagement workspace -----------------------------------------------------------------------------------


@hooks.register("register_admin_urls")
def register_engagement_urls() -> list:
    from membership import engagement_urls

    return [path("engagement/", include(engagement_urls, namespace="engagement"))]


class PermissionMenuItem(MenuItem):
    def __init__(self, label: str, url_name: str, permission, **kwargs) -> None:
        super().__init__(label, reverse_lazy(url_name), **kwargs)
        self.permission = permission

    def is_shown(self, request) -> bool:
        return self.permission(request.user)


def _has(permission: str):
    return lambda user: user.has_perm(permission)


@hooks.register("register_admin_menu_item")
def register_engagement_menu() -> SubmenuMenuItem:
    from membership import exports

    items = [
        PermissionMenuItem(
            "Workspace", "engagement:workspace", _has("membership.view_engagementscore"), icon_name="pick", order=100
        ),
        PermissionMenuItem(
            "At-risk queue",
            "engagement:at_risk",
            _has("membership.view_engagementscore"),
            icon_name="warning",
            order=200,
        ),
        PermissionMenuItem(
            "Import", "engagement:import", _has("membership.import_members"), icon_name="upload", order=300
        ),
        PermissionMenuItem(
            "Export", "engagement:export", lambda user: bool(exports.exports_for(user)), icon_name="download", order=400
        ),
        PermissionMenuItem(
            "Scoring settings",
            "engagement:settings",
            _has("membership.change_engagementsettings"),
            icon_name="cogs",
            order=500,
        ),
    ]
    return SubmenuMenuItem("Engagement", Menu(items=items), icon_name="pick", name="engagement", order=160)


@hooks.register("register_permissions")
def register_engagement_permissions():
    """Offer the workspace, settings and import permissions in the group editor."""
    return (
        _permissions("engagementscore", ["view"])
        | _permissions("engagementsettings", ["change"])
        | Permission.objects.filter(content_type__app_label="membership", codename="import_members")
    )


@hooks.register("construct_homepage_panels")
def add_engagement_dashboard(request, panels: list) -> None:
    if request.user.has_perm("membership.view_engagementscore"):
        from membership.engagement_views import EngagementPanel

        panels.append(EngagementPanel())
