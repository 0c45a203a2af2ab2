"""Back-office pages for perks: code-pool upload, reviewing member offers, and the redemption report."""

import csv
from datetime import date, datetime, time, timedelta

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.db.models.functions import TruncMonth
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views.generic import TemplateView
from wagtail.admin.views.generic import WagtailAdminTemplateMixin

from benefits import services
from benefits.models import Perk, Provider, Redemption
from config import uploads
from config.text import printable, spreadsheet_cell
from membership.services import MembershipError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024


class CodeUploadForm(forms.Form):
    file = forms.FileField(label="CSV file of codes", help_text="One code per row, in the first column.")
    skip_duplicates = forms.BooleanField(
        label="Add the new codes and skip the duplicates",
        required=False,
        help_text="Without this, a file with any duplicate adds nothing, so you can check it first.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is larger than 5 MB; split it into smaller files.")
        if uploads.extension_of(upload) not in ("csv", "txt"):
            raise forms.ValidationError("Choose a .csv file, one code per row.")
        uploads.check_text(upload, label="The file")
        return upload


class CodeUploadView(WagtailAdminTemplateMixin, TemplateView):
    """Upload a CSV of codes to a perk's pool; duplicates are reported, and added only when staff say so."""

    template_name = "benefits/admin/codes.html"
    page_title = "Codes"

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.has_perm("benefits.change_perk"):
            raise PermissionDenied
        self.perk = get_object_or_404(Perk.objects.with_codes_left().select_related("provider"), pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_page_subtitle(self) -> str:
        return self.perk.title

    def get_context_data(self, **kwargs) -> dict:
        kwargs.setdefault("form", CodeUploadForm())
        issued = self.perk.codes.filter(redemption__isnull=False).count()
        return super().get_context_data(perk=self.perk, issued=issued, **kwargs)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        form = CodeUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        upload = services.read_code_file(self.perk, form.cleaned_data["file"])
        if upload.errors or (upload.duplicates and not form.cleaned_data["skip_duplicates"]):
            messages.error(request, "Nothing was added. Fix the file, or choose to skip the duplicates.")
            return self.render_to_response(self.get_context_data(form=form, upload=upload), status=400)
        added = services.add_codes(self.perk, upload.codes, request.user)
        skipped = f"; {upload.duplicates} duplicates skipped" if upload.duplicates else ""
        messages.success(request, f"{added} codes added to {self.perk}{skipped}.")
        return redirect("benefits_perks:codes", self.perk.pk)


class ReviewOfferView(WagtailAdminTemplateMixin, TemplateView):
    """Approve a member's offer, or reject it with a reason the organisation is told."""

    template_name = "benefits/admin/review.html"
    page_title = "Review an offer"

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.has_perm("benefits.approve_perk"):
            raise PermissionDenied
        self.perk = get_object_or_404(Perk.objects.select_related("provider__organisation"), pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_page_subtitle(self) -> str:
        return self.perk.title

    def get_context_data(self, **kwargs) -> dict:
        return super().get_context_data(
            perk=self.perk,
            reason=printable(self.request.POST.get("reason", "")),
            eligible_tiers=list(self.perk.eligible_tiers.all()),
            **kwargs,
        )

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        try:
            if request.POST.get("decision") == "approve":
                services.approve_offer(self.perk, request.user)
                messages.success(request, f"“{self.perk}” is published and its organisation has been told.")
            else:
                services.reject_offer(self.perk, request.user, printable(request.POST.get("reason", "")))
                messages.success(request, f"“{self.perk}” is rejected and its organisation has been told why.")
        except MembershipError as error:
            messages.error(request, str(error))
            return self.render_to_response(self.get_context_data(), status=400)
        return redirect("benefits_perks:index")


class ReportForm(forms.Form):
    GROUPS = [("perk", "Perk"), ("provider", "Provider"), ("month", "Month"), ("organisation", "Organisation")]

    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    group = forms.ChoiceField(label="Per", choices=GROUPS, required=False)
    provider = forms.ModelChoiceField(label="Provider", queryset=Provider.objects.all(), required=False)

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            self.add_error("end", "The period cannot end before it starts.")
        return data


def _report_rows(data: dict) -> tuple[list[dict], str]:
    today = timezone.localdate()
    start = data.get("start") or today - timedelta(days=365)
    end = data.get("end") or today
    zone = timezone.get_current_timezone()
    redemptions = Redemption.objects.filter(
        created_at__gte=datetime.combine(start, time.min, zone),
        created_at__lt=datetime.combine(end + timedelta(days=1), time.min, zone),
    )
    if data.get("provider"):
        redemptions = redemptions.filter(perk__provider=data["provider"])
    group = data.get("group") or "perk"
    period = f"{start:%-d %b %Y} to {end:%-d %b %Y}"
    if group == "month":
        rows = (
            redemptions.annotate(month=TruncMonth("created_at"))
            .values("month")
            .annotate(redemptions=Count("id"), organisations=Count("organisation", distinct=True))
            .order_by("month")
        )
        labelled = [{**row, "label": row["month"].strftime("%B %Y")} for row in rows]
        return labelled, period
    field = {"perk": "perk__title", "provider": "perk__provider__name", "organisation": "organisation__name"}[group]
    rows = (
        redemptions.values(field)
        .annotate(redemptions=Count("id"), organisations=Count("organisation", distinct=True))
        .order_by("-redemptions", field)
    )
    return [{**row, "label": row[field]} for row in rows], period


class RedemptionReportView(WagtailAdminTemplateMixin, TemplateView):
    """How many redemptions per perk, provider, month or organisation over a period; exportable as CSV."""

    template_name = "benefits/admin/report.html"
    page_title = "Redemptions report"

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.has_perm("benefits.view_redemption"):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        form = ReportForm(request.GET or None)
        data = form.cleaned_data if form.is_valid() else {}
        rows, period = _report_rows(data)
        if request.GET.get("export") == "csv" and (form.is_valid() or not form.is_bound):
            return _csv(rows, data.get("group") or "perk", period)
        total = sum(row["redemptions"] for row in rows)
        return self.render_to_response(
            self.get_context_data(form=form, rows=rows, period=period, total=total, query=request.GET.urlencode()),
            status=400 if form.is_bound and form.errors else 200,
        )


def _csv(rows: list[dict], group: str, period: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="redemptions-by-{group}-{date.today():%Y%m%d}.csv"'
    writer = csv.writer(response)
    writer.writerow([dict(ReportForm.GROUPS)[group], "Redemptions", "Organisations", "Period"])
    for row in rows:
        writer.writerow([spreadsheet_cell(row["label"]), row["redemptions"], row["organisations"], period])
    return response
