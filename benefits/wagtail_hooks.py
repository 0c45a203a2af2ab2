"""The "Perks" menu in the back office: perks, providers, offers waiting for approval and the report."""

from django.contrib.auth.models import Permission
from django.db.models import Count, Q
from django.urls import path, reverse
from wagtail import hooks
from wagtail.admin.menu import MenuItem
from wagtail.admin.panels import FieldPanel, FieldRowPanel, MultiFieldPanel, ObjectList
from wagtail.admin.ui.tables import BooleanColumn, Column, StatusTagColumn, TitleColumn
from wagtail.admin.views.generic.models import IndexView
from wagtail.admin.viewsets.base import ViewSet, ViewSetGroup
from wagtail.admin.viewsets.model import ModelViewSet
from wagtail.admin.widgets.slug import SlugInput

from benefits import admin_views
from benefits.forms import PerkAdminForm
from benefits.models import Perk, Provider


def _codes_left(perk: Perk) -> str:
    if perk.method != Perk.Method.UNIQUE_CODE:
        return "—"
    left = getattr(perk, "codes_left", None)
    return f"{left} (low)" if left is not None and left <= perk.low_codes_threshold else str(left)


def _perk_url(perk: Perk) -> str:
    if perk.status == Perk.Status.PENDING:
        return reverse("benefits_perks:review", args=[perk.pk])
    return reverse("benefits_perks:edit", args=[perk.pk])


class PerkIndexView(IndexView):
    """Perks with the codes they have left."""

    def get_base_queryset(self):
        codes_left = Count("codes", filter=Q(codes__redemption__isnull=True))
        return super().get_base_queryset().select_related("provider").annotate(codes_left=codes_left)


class PerkViewSet(ModelViewSet):
    model = Perk
    name = "benefits_perks"
    url_prefix = "benefits/perks"
    icon = "pick"
    menu_label = "Perks"
    add_to_reference_index = False
    copy_view_enabled = False
    index_view_class = PerkIndexView
    ordering = ["-featured", "title"]
    list_per_page = 50
    list_display = [
        # A pending offer leads to its review; the others to the edit form.
        TitleColumn("title", label="Perk", get_url=_perk_url),
        Column("provider", label="Provider", accessor="provider.name"),
        Column("category", label="Category", accessor="get_category_display"),
        StatusTagColumn("status", label="Status", accessor="get_status_display", primary=lambda p: p.is_running),
        BooleanColumn("featured", label="Featured"),
        Column("redemption_count", label="Redemptions", sort_key="redemption_count"),
        Column("codes_left", label="Codes left", accessor=_codes_left),
    ]
    list_filter = ["status", "category", "featured", "method", "provider"]
    search_fields = ["title", "summary", "provider__name"]
    search_backend_name = None
    list_export = [
        "title",
        "provider",
        "get_category_display",
        "value_line",
        "get_method_display",
        "get_status_display",
        "featured",
        "starts_on",
        "ends_on",
        "redemption_count",
        "codes_left",
    ]
    export_headings = {
        "get_category_display": "Category",
        "get_method_display": "Redeemed by",
        "get_status_display": "Status",
        "redemption_count": "Redemptions",
        "codes_left": "Codes left",
    }
    edit_handler = ObjectList(
        [
            MultiFieldPanel(
                [
                    FieldPanel("title"),
                    FieldPanel("slug", widget=SlugInput),
                    FieldPanel("provider"),
                    FieldPanel("category"),
                    FieldPanel("summary"),
                    FieldPanel("value_line"),
                    FieldPanel("description"),
                    FieldPanel("terms"),
                ],
                heading="The offer",
            ),
            MultiFieldPanel(
                [
                    FieldPanel("method"),
                    FieldPanel("shared_code"),
                    FieldPanel("redemption_url"),
                    FieldPanel("low_codes_threshold"),
                ],
                heading="How members redeem it (upload a unique-code pool from the perk list's Codes page)",
            ),
            MultiFieldPanel(
                [
                    FieldPanel("eligible_tiers"),
                    FieldRowPanel([FieldPanel("starts_on"), FieldPanel("ends_on")]),
                    FieldRowPanel([FieldPanel("cap_per_organisation"), FieldPanel("total_cap")]),
                    FieldPanel("featured"),
                    FieldPanel("status"),
                ],
                heading="Who, when and how many",
            ),
        ],
        base_form_class=PerkAdminForm,
    )

    def get_urlpatterns(self) -> list:
        return [
            *super().get_urlpatterns(),
            path("<int:pk>/codes/", admin_views.CodeUploadView.as_view(), name="codes"),
            path("<int:pk>/review/", admin_views.ReviewOfferView.as_view(), name="review"),
        ]


class ProviderViewSet(ModelViewSet):
    model = Provider
    name = "benefits_providers"
    url_prefix = "benefits/providers"
    icon = "site"
    menu_label = "Providers"
    add_to_reference_index = False
    copy_view_enabled = False
    list_display = [
        TitleColumn("name", label="Provider", url_name="benefits_providers:edit"),
        Column("organisation", label="Member organisation"),
        "website",
        "contact_email",
    ]
    search_fields = ["name", "website", "contact_email"]
    search_backend_name = None
    panels = [
        FieldPanel("name"),
        FieldPanel("slug", widget=SlugInput),
        FieldPanel("organisation"),
        FieldPanel("website"),
        FieldPanel("contact_email"),
        FieldPanel("logo"),
        FieldPanel("description"),
    ]


class _PermissionMenuItem(MenuItem):
    def __init__(self, *args, permission: str, **kwargs) -> None:
        self.permission = permission
        super().__init__(*args, **kwargs)

    def is_shown(self, request) -> bool:
        return request.user.has_perm(self.permission)


class AwaitingApprovalViewSet(ViewSet):
    """A menu entry for the perks list filtered to the offers members submitted and staff have not decided."""

    name = "benefits_awaiting"
    icon = "warning"
    menu_label = "Awaiting approval"

    def get_menu_item(self, order=None):
        return _PermissionMenuItem(
            self.menu_label,
            reverse("benefits_perks:index") + "?status=pending",
            icon_name=self.icon,
            order=order or 200,
            permission="benefits.approve_perk",
        )


class RedemptionReportViewSet(ViewSet):
    name = "benefits_report"
    url_prefix = "benefits/report"
    icon = "table"
    menu_label = "Redemptions report"

    def get_urlpatterns(self) -> list:
        return [path("", admin_views.RedemptionReportView.as_view(), name="index")]

    def get_menu_item(self, order=None):
        return _PermissionMenuItem(
            self.menu_label,
            self.menu_url,
            icon_name=self.icon,
            order=order or 300,
            permission="benefits.view_redemption",
        )


class PerksGroup(ViewSetGroup):
    menu_label = "Perks"
    menu_icon = "pick"
    menu_order = 160
    items = (PerkViewSet, ProviderViewSet, AwaitingApprovalViewSet, RedemptionReportViewSet)


@hooks.register("register_admin_viewset")
def register_perks() -> ViewSetGroup:
    return PerksGroup()


@hooks.register("register_permissions")
def register_perk_permissions():
    return Permission.objects.filter(
        content_type__app_label="benefits", codename__in=["approve_perk", "view_redemption"]
    )


@hooks.register("register_member_export")
def redemptions_export():
    from benefits.resources import RedemptionExportResource
    from membership.exports import MemberExport

    return MemberExport(
        "redemptions",
        "Perk redemptions",
        RedemptionExportResource,
        "benefits.view_redemption",
        "Every perk redeemed: the perk, its provider, the organisation, who redeemed it and when.",
    )
