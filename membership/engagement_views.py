"""The engagement manager's workspace in the Wagtail admin: dashboard, at-risk queue, scoring settings, import and
export.

Every URL sits behind Wagtail's admin-access check (and so behind staff MFA); each view checks the permission it
needs before it reads anything. Changes go through the services (``membership.engagement``, ``at_risk``,
``importing``).
"""

from __future__ import annotations

from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView
from wagtail.admin import messages
from wagtail.admin.ui.components import Component
from wagtail.admin.utils import get_valid_next_url_from_request
from wagtail.admin.views.generic import WagtailAdminTemplateMixin

from membership import at_risk, engagement, exports, importing
from membership.admin_forms import EngagementSettingsForm, MemberImportForm
from membership.engagement_dashboard import engagement_figures
from membership.models import EngagementSettings, MemberImport, MemberImportRow, Organisation
from membership.resources import MemberImportResource
from membership.services import MembershipError

VIEW_ENGAGEMENT = "membership.view_engagementscore"
CHANGE_SETTINGS = "membership.change_engagementsettings"
IMPORT = "membership.import_members"
QUEUE_PER_PAGE = 50
IMPORT_ROWS_PER_PAGE = 100


class _Page(WagtailAdminTemplateMixin, TemplateView):
    permission = VIEW_ENGAGEMENT
    header_icon = "pick"

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.has_perm(self.permission):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    def get_breadcrumbs_items(self) -> list[dict]:
        items = [*self.breadcrumbs_items]
        if self.page_title != "Engagement":
            items.append({"url": reverse("engagement:workspace"), "label": "Engagement"})
        return [*items, {"url": "", "label": self.get_page_title()}]


class WorkspaceView(_Page):
    """Activity over time, the score distribution, the at-risk count, the renewals pipeline, the most engaged."""

    template_name = "membership/engagement/workspace.html"
    page_title = "Engagement"

    def get_context_data(self, **kwargs) -> dict:
        user = self.request.user
        return super().get_context_data(
            **kwargs,
            figures=engagement_figures(),
            can_import=user.has_perm(IMPORT),
            can_change_settings=user.has_perm(CHANGE_SETTINGS),
        )


class AtRiskQueueView(_Page):
    """Organisations to talk to now, most urgent first, each with why and what to do next."""

    template_name = "membership/engagement/at_risk.html"
    page_title = "At-risk queue"

    def get_context_data(self, **kwargs) -> dict:
        queue = at_risk.at_risk_queue()
        page = Paginator(queue, QUEUE_PER_PAGE).get_page(self.request.GET.get("p"))
        at_risk.explain(page.object_list)
        config = EngagementSettings.load()
        return super().get_context_data(
            **kwargs,
            page=page,
            total=len(queue),
            config=config,
            can_add_follow_up=self.request.user.has_perm("membership.add_followup"),
            can_view_follow_ups=self.request.user.has_perm("membership.view_followup"),
        )


class AtRiskFollowUpView(View):
    """One click: the organisation's suggested next action becomes a follow-up task. POST only."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm(VIEW_ENGAGEMENT) or not request.user.has_perm("membership.add_followup"):
            raise PermissionDenied
        organisation = get_object_or_404(Organisation, pk=pk)
        try:
            follow_up, created = at_risk.create_follow_up(organisation, request.user)
        except MembershipError as error:
            messages.error(request, str(error))
        else:
            if created:
                messages.success(
                    request, f"Follow-up “{follow_up}” added for {follow_up.assignee}, due {follow_up.due_date:%-d %b}."
                )
            else:
                messages.info(request, f"{organisation} already has this follow-up open: “{follow_up}”.")
        return redirect(get_valid_next_url_from_request(request) or reverse("engagement:at_risk"))


class SettingsView(_Page):
    """Weights, half-life, bands, the at-risk rules and who receives the digest."""

    template_name = "membership/engagement/settings.html"
    page_title = "Engagement scoring"
    permission = CHANGE_SETTINGS

    def get_context_data(self, **kwargs) -> dict:
        form = kwargs.pop("form", None) or EngagementSettingsForm(instance=EngagementSettings.load())
        return super().get_context_data(**kwargs, form=form)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = EngagementSettingsForm(request.POST, instance=EngagementSettings.load())
        if not form.is_valid():
            messages.error(request, "The settings could not be saved: please check the form.")
            return self.render_to_response(self.get_context_data(form=form), status=400)
        engagement.update_settings(form, request.user)
        messages.success(request, "Engagement settings saved. Scores are being recomputed with them.")
        return redirect("engagement:settings")


# Import ---------------------------------------------------------------------------------------------------------


class ImportView(_Page):
    """Upload a spreadsheet; it is checked and previewed before anything is written."""

    template_name = "membership/engagement/import.html"
    page_title = "Import organisations and contacts"
    permission = IMPORT

    def get_context_data(self, **kwargs) -> dict:
        form = kwargs.pop("form", None) or MemberImportForm()
        return super().get_context_data(
            **kwargs,
            form=form,
            columns=MemberImportResource().columns,
            recent=MemberImport.objects.defer("content").select_related("uploaded_by")[:10],
        )

    def post(self, request: HttpRequest) -> HttpResponse:
        form = MemberImportForm(request.POST, request.FILES)
        if not form.is_valid():
            messages.error(request, "The file could not be uploaded: please check the form.")
            return self.render_to_response(self.get_context_data(form=form), status=400)
        record, _ = importing.start_import(form.cleaned_data["file"], request.user)
        return redirect("engagement:import_detail", record.pk)


class ImportDetailView(_Page):
    """The progress of a check or an import; then the preview (every row's outcome) and the button to import."""

    template_name = "membership/engagement/import_detail.html"
    permission = IMPORT

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.has_perm(self.permission):
            raise PermissionDenied
        self.record = get_object_or_404(
            MemberImport.objects.defer("content").select_related("uploaded_by"), pk=kwargs["pk"]
        )
        return super().dispatch(request, *args, **kwargs)

    def get_page_title(self) -> str:
        return f"Import of {self.record.filename}"

    def get_breadcrumbs_items(self) -> list[dict]:
        return [
            *self.breadcrumbs_items,
            {"url": reverse("engagement:import"), "label": "Import"},
            {"url": "", "label": self.record.filename},
        ]

    def get_context_data(self, **kwargs) -> dict:
        record = self.record
        context = super().get_context_data(**kwargs, record=record)
        if record.in_progress:
            fraction = cache.get(importing.progress_key(record.pk)) or 0.0
            return context | {"progress": round(100 * fraction), "refresh": True}
        outcome = self.request.GET.get("outcome", "")
        rows = record.row_results.all()
        if outcome in MemberImportRow.Outcome.values:
            rows = rows.filter(outcome=outcome)
        page = Paginator(rows, IMPORT_ROWS_PER_PAGE).get_page(self.request.GET.get("p"))
        counts = record.counts or {}
        filters = [("", "All rows", record.rows)] + [
            (value, label, counts.get(value, 0)) for value, label in MemberImportRow.Outcome.choices
        ]
        return context | {"page": page, "outcome": outcome, "filters": filters, "counts": counts}


class ImportConfirmView(View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm(IMPORT):
            raise PermissionDenied
        record = get_object_or_404(MemberImport.objects.defer("content"), pk=pk)
        try:
            at_once = importing.confirm_import(record, request.user)
        except MembershipError as error:
            messages.error(request, str(error))
        else:
            record.refresh_from_db()
            if at_once and record.status == MemberImport.Status.DONE:
                messages.success(request, f"{record.filename} is imported.")
            elif at_once:
                messages.error(request, "Nothing was imported: the file has errors now. See the rows below.")
        return redirect("engagement:import_detail", pk)


# Export ---------------------------------------------------------------------------------------------------------


class ExportView(_Page):
    """Download organisations, contacts, subscriptions (and what other apps register) as CSV or XLSX."""

    template_name = "membership/engagement/export.html"
    page_title = "Export"

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        self.available = exports.exports_for(request.user)
        if not self.available:
            raise PermissionDenied
        return super(_Page, self).dispatch(request, *args, **kwargs)  # each export checks its own permission

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        slug, kind = request.GET.get("export"), request.GET.get("format", "csv")
        if not slug:
            return super().get(request, *args, **kwargs)
        export = next((e for e in self.available if e.slug == slug), None)
        if export is None or kind not in exports.FORMATS:
            raise Http404("No such export.")
        filename = f"{export.slug}-{timezone.localdate():%Y-%m-%d}.{kind}"
        if kind == "csv":
            response = StreamingHttpResponse(exports.stream_csv(export), content_type=exports.FORMATS[kind])
        else:
            response = HttpResponse(exports.xlsx_bytes(export), content_type=exports.FORMATS[kind])
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def get_context_data(self, **kwargs) -> dict:
        return super().get_context_data(**kwargs, exports=self.available)


# The admin home ------------------------------------------------------------------------------------------------


class EngagementPanel(Component):
    """The at-risk count, the bands and the most engaged, on the admin home."""

    name = "engagement_dashboard"
    template_name = "membership/engagement/panel.html"
    order = 45

    def get_context_data(self, parent_context) -> dict:
        return {"figures": engagement_figures(compact=True)}
