"""The staff CRM's views in the Wagtail admin: listings, the organisation record and the home panel.

Every URL here sits behind Wagtail's admin-access check (and so behind staff MFA); each view checks the
model permission it needs on top. Changes go through ``membership.services``.
"""

from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, F, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Lower
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.functional import cached_property
from django.views import View
from django.views.generic import TemplateView
from wagtail.admin import messages
from wagtail.admin.ui.components import Component
from wagtail.admin.utils import get_valid_next_url_from_request
from wagtail.admin.views.generic import CreateView, DeleteView, EditView, IndexView, WagtailAdminTemplateMixin
from wagtail.admin.widgets.button import HeaderButton

from config.text import printable
from membership import services
from membership.admin_forms import FollowUpForm, NoteForm
from membership.models import AuditEntry, FollowUp, Invoice, Organisation, OrganisationMember, Specialism, Subscription

ACTIVITY_PER_PAGE = 50
MY_FOLLOW_UPS_SHOWN = 20


def record_url(organisation_pk: int) -> str:
    return reverse("crm_organisations:record", args=[quote(organisation_pk)])


# Organisations ---------------------------------------------------------------------------------------


def _active_contact_counts() -> Subquery:
    # A subquery rather than Count() over a join: filters on specialisms or tags add joins of their own,
    # which would multiply a joined count.
    counts = (
        OrganisationMember.objects.active()
        .filter(organisation=OuterRef("pk"))
        .order_by()
        .values("organisation")
        .annotate(total=Count("pk"))
        .values("total")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), Value(0))


# Every listing's CSV and XLSX download is neutralised for spreadsheets where Wagtail writes its cells
# (``config.apps``), these listings' as Wagtail's own.


class OrganisationIndexView(IndexView):
    """Organisations with their contact counts; the same number of queries for 50 or 5,000 of them."""

    def get_base_queryset(self) -> QuerySet[Organisation]:
        newest = Subscription.objects.filter(organisation=OuterRef("pk")).order_by("-created_at", "-pk")
        organisations = (
            super()
            .get_base_queryset()
            .select_related("account_manager")
            .annotate(
                active_contacts=_active_contact_counts(),
                # The newest subscription is the live one where there is one; each is read for the page's rows.
                tier_name=Subquery(newest.values("tier__name")[:1]),
                membership_status=Subquery(newest.values("status")[:1]),
                renews_on=Subquery(newest.values("current_period_end")[:1]),
            )
        )
        if self.is_export:
            # Only the spreadsheet needs it; on the page it would put a join into the pagination count.
            organisations = organisations.annotate(account_manager_email=F("account_manager__email"))
        return organisations

    def order_queryset(self, queryset: QuerySet[Organisation]) -> QuerySet[Organisation]:
        # The name index is on LOWER(name): sorting by that reads one page's worth of the index, where
        # sorting by the bare name would sort every organisation to show the first 50.
        if self.ordering in ("name", "-name"):
            name = Lower("name").desc() if self.ordering == "-name" else Lower("name").asc()
            return queryset.order_by(name, "pk")
        return super().order_queryset(queryset)


class OrganisationCreateView(CreateView):
    def get_success_url(self) -> str:
        return record_url(self.object.pk)

    def save_instance(self) -> Organisation:
        """Save the new organisation and audit its creation, in the view's transaction."""
        organisation = super().save_instance()
        services.record_audit(
            "membership.organisation.created",
            f"{self.request.user} created {organisation} in the back office",
            actor=self.request.user,
            organisation=organisation,
        )
        return organisation


class OrganisationEditView(EditView):
    def get_success_url(self) -> str:
        return record_url(self.object.pk)

    def save_instance(self) -> Organisation:
        """Save the form and audit each changed field as ``[before, after]``; no change, no entry."""
        return services.update_organisation(
            self.object, self.request.user, self.form, save=super().save_instance, where="the back office"
        )


class OrganisationDeleteView(DeleteView):
    def delete_action(self) -> None:
        """Delete the organisation (with its people, notes and follow-ups) and audit that it went."""
        name, pk = str(self.object), self.object.pk
        super().delete_action()
        services.record_audit(
            "membership.organisation.deleted",
            f"{self.request.user} deleted {name} in the back office",
            actor=self.request.user,
            changes={"organisation": [f"{name} (#{pk})", None]},
        )


class OrganisationRecordView(WagtailAdminTemplateMixin, TemplateView):
    """One organisation as the membership team sees it: facts, people, activity, notes and follow-ups.

    Needs ``membership.view_organisation``, checked before the organisation is looked up so that no one
    else can learn which ids exist; reading its notes needs ``view_note`` and its follow-ups ``view_followup``;
    adding a note needs ``add_note``, a follow-up ``add_followup``. A
    valid POST redirects back with a message; an invalid one shows the page again with what was typed.
    """

    template_name = "membership/admin/organisation_record.html"
    header_icon = "group"

    def dispatch(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm("membership.view_organisation"):
            raise PermissionDenied
        self.organisation = get_object_or_404(Organisation.objects.select_related("account_manager"), pk=pk)
        self.note_form = NoteForm(prefix="note")
        self.follow_up_form = FollowUpForm(prefix="follow_up", initial={"assignee": request.user.pk})
        return super().dispatch(request, pk)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        action = request.POST.get("action")
        if action == "add_note":
            return self._add_note(request)
        if action == "add_follow_up":
            return self._add_follow_up(request)
        return HttpResponseBadRequest("Unknown action.")

    def _add_note(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("membership.add_note"):
            raise PermissionDenied
        self.note_form = NoteForm(request.POST, prefix="note")
        if not self.note_form.is_valid():
            messages.error(request, "The note could not be added: please check the form.")
            return self.get(request)
        services.add_note(self.organisation, request.user, **self.note_form.cleaned_data)
        messages.success(request, "Note added.")
        return redirect(record_url(self.organisation.pk) + "#notes-section")

    def _add_follow_up(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("membership.add_followup"):
            raise PermissionDenied
        self.follow_up_form = FollowUpForm(request.POST, prefix="follow_up")
        if not self.follow_up_form.is_valid():
            messages.error(request, "The follow-up could not be added: please check the form.")
            return self.get(request)
        follow_up = services.add_follow_up(self.organisation, request.user, **self.follow_up_form.cleaned_data)
        messages.success(request, f"Follow-up “{follow_up}” added for {follow_up.assignee}.")
        return redirect(record_url(self.organisation.pk) + "#follow-ups-section")

    def get_page_title(self) -> str:
        return str(self.organisation)

    def get_breadcrumbs_items(self) -> list[dict]:
        return [
            *self.breadcrumbs_items,
            {"url": reverse("crm_organisations:index"), "label": "Organisations"},
            {"url": "", "label": str(self.organisation)},
        ]

    @cached_property
    def header_buttons(self) -> list:
        if not self.request.user.has_perm("membership.change_organisation"):
            return []
        edit_url = reverse("crm_organisations:edit", args=[quote(self.organisation.pk)])
        return [HeaderButton("Edit", url=edit_url, icon_name="edit")]

    def get_context_data(self, **kwargs) -> dict:
        organisation, user = self.organisation, self.request.user
        memberships = list(organisation.memberships.select_related("user").order_by("role", "user__last_name"))
        # Notes, follow-ups, the audit trail and what the organisation pays are each behind a permission of their
        # own, which the group editor offers apart from viewing organisations.
        can_view_notes = user.has_perm("membership.view_note")
        can_view_follow_ups = user.has_perm("membership.view_followup")
        follow_ups = list(organisation.follow_ups.select_related("assignee")) if can_view_follow_ups else []
        can_view_activity = user.has_perm("membership.view_auditentry")
        activity = organisation.audit_entries.all() if can_view_activity else AuditEntry.objects.none()
        return super().get_context_data(
            **kwargs,
            organisation=organisation,
            specialisms=list(organisation.specialisms.all()),
            tags=sorted(organisation.tags.names()),
            contacts=[m for m in memberships if m.left_at is None],
            former_contacts=sorted((m for m in memberships if m.left_at), key=lambda m: m.left_at, reverse=True),
            activity=Paginator(activity, ACTIVITY_PER_PAGE).get_page(self.request.GET.get("activity")),
            notes=organisation.notes.select_related("author") if can_view_notes else [],
            can_view_notes=can_view_notes,
            can_view_follow_ups=can_view_follow_ups,
            can_view_activity=can_view_activity,
            can_view_billing=user.has_perm("membership.view_subscription"),
            subscriptions=list(organisation.subscriptions.select_related("tier")),
            open_follow_ups=sorted((f for f in follow_ups if not f.done), key=lambda f: f.due_date),
            done_follow_ups=sorted((f for f in follow_ups if f.done), key=lambda f: f.done_at, reverse=True),
            note_form=self.note_form,
            follow_up_form=self.follow_up_form,
            can_add_note=user.has_perm("membership.add_note"),
            can_add_follow_up=user.has_perm("membership.add_followup"),
            can_change_follow_up=user.has_perm("membership.change_followup"),
        )


class FollowUpDoneView(View):
    """Mark a follow-up done (``done=1``) or open again (``done=0``); POST only, needs change_followup."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm("membership.change_followup"):
            raise PermissionDenied
        follow_up = get_object_or_404(FollowUp, pk=pk)
        done = request.POST.get("done") == "1"
        services.set_follow_up_done(follow_up, done)
        messages.success(request, f"“{follow_up}” marked {'done' if done else 'not done'}.")
        next_url = get_valid_next_url_from_request(request)
        return redirect(next_url or record_url(follow_up.organisation_id) + "#follow-ups-section")


# People, follow-ups and specialisms ------------------------------------------------------------------


class PeopleIndexView(IndexView):
    """Everyone who is or was a contact at an organisation; read-only, a fixed number of queries."""

    page_title = "People"
    verbose_name, verbose_name_plural = "person", "people"

    def get_base_queryset(self) -> QuerySet[OrganisationMember]:
        # Newest first by default: the primary key's order is an index, where the model's ordering (by
        # organisation name, then e-mail) would sort every contact to show one page. People and their
        # organisations are fetched for the page only.
        return super().get_base_queryset().order_by("-pk").prefetch_related("user", "organisation")


class FollowUpIndexView(IndexView):
    """Open follow-ups across all organisations, soonest due first.

    Reading them (the page, its results and its export, and the menu item) needs ``view_followup``: staff who
    may only add follow-ups add them on an organisation's record.
    """

    page_title = "Open follow-ups"
    any_permission_required = ["view"]
    verbose_name, verbose_name_plural = "follow-up", "open follow-ups"

    def get_base_queryset(self) -> QuerySet[FollowUp]:
        # Fetched for the page only: joining first would read every organisation to show 50 follow-ups.
        return FollowUp.objects.open().prefetch_related("organisation", "assignee")


class SpecialismIndexView(IndexView):
    def get_base_queryset(self) -> QuerySet[Specialism]:
        # A subquery rather than Count() over a join, so counting the specialisms for the paginator does
        # not count every organisation's specialisms as well.
        in_use = (
            Organisation.specialisms.through.objects.filter(specialism=OuterRef("pk"))
            .order_by()
            .values("specialism")
            .annotate(total=Count("specialism"))  # answered from the index alone
            .values("total")
        )
        return (
            super()
            .get_base_queryset()
            .annotate(organisation_count=Coalesce(Subquery(in_use, output_field=IntegerField()), Value(0)))
        )


# The admin home ------------------------------------------------------------------------------------


class MyFollowUpsPanel(Component):
    """The signed-in person's open follow-ups, soonest (so overdue) first: three queries however many."""

    name = "my_follow_ups"
    template_name = "membership/admin/my_follow_ups_panel.html"
    order = 50

    def __init__(self, user) -> None:
        self.user = user

    def get_context_data(self, parent_context) -> dict:
        mine = FollowUp.objects.open().filter(assignee=self.user)
        # The organisations are fetched for the 20 shown only: a join would make the database read all of
        # them before it could pick the first 20 follow-ups.
        shown = list(mine.order_by("due_date", "pk").prefetch_related("organisation")[:MY_FOLLOW_UPS_SHOWN])
        return {
            "follow_ups": shown,
            "total": len(shown) if len(shown) < MY_FOLLOW_UPS_SHOWN else mine.count(),
            "all_url": reverse("crm_follow_ups:index") + f"?assignee={self.user.pk}",
        }


class MembershipPanel(Component):
    """Members by tier and type, recurring revenue, renewals due and lapses, drawn as charts."""

    name = "membership_dashboard"
    template_name = "membership/admin/membership_panel.html"
    order = 40

    def get_context_data(self, parent_context) -> dict:
        from membership.dashboard import membership_figures

        return {"figures": membership_figures()}


class MarkInvoicePaidView(WagtailAdminTemplateMixin, TemplateView):
    """Finance records an invoice paid by bank transfer, with the payment's reference; needs change_invoice."""

    template_name = "membership/admin/mark_invoice_paid.html"
    page_title = "Record a bank transfer"

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.has_perm("membership.change_invoice"):
            raise PermissionDenied
        self.invoice = get_object_or_404(Invoice.objects.select_related("organisation"), pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs) -> dict:
        return super().get_context_data(
            **kwargs, invoice=self.invoice, reference=printable(self.request.POST.get("reference", ""))
        )

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        from membership import billing

        try:
            billing.mark_invoice_paid_out_of_band(
                self.invoice, request.user, printable(request.POST.get("reference", ""))
            )
        except services.MembershipError as error:
            messages.error(request, str(error))
            return self.render_to_response(self.get_context_data(), status=400)
        messages.success(request, f"Invoice {self.invoice} is recorded as paid.")
        return redirect("crm_invoices:index")
