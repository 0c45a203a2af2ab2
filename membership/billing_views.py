"""Joining a tier and the organisation's billing page in the member portal.

The Join page is public; everything under /my/org/<slug>/billing/ is scoped to the user's organisations
like the rest of the portal, and only the organisation's admins change anything.
"""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from membership import billing
from membership.models import Organisation, OrganisationType, SizeBand, Subscription, Tier
from membership.services import MembershipError
from membership.views import organisation_view, portal_context


class PriceFinderForm(forms.Form):
    organisation_type = forms.ChoiceField(label="Your organisation is", choices=OrganisationType.choices)
    size_band = forms.ChoiceField(label="with", choices=SizeBand.choices)


class JoinForm(forms.Form):
    tier = forms.ModelChoiceField(queryset=Tier.objects.filter(is_public=True), widget=forms.HiddenInput)
    interval = forms.ChoiceField(choices=Subscription.Interval.choices, initial=Subscription.Interval.YEAR)
    payment_method = forms.ChoiceField(
        label="Pay by", choices=Subscription.PaymentMethod.choices, initial=Subscription.PaymentMethod.CARD
    )
    po_number = forms.CharField(label="Purchase order number", max_length=50, required=False)

    def __init__(self, *args, organisation: Organisation, **kwargs):
        self.organisation = organisation
        super().__init__(*args, **kwargs)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("payment_method") == Subscription.PaymentMethod.INVOICE:
            if data.get("interval") == Subscription.Interval.MONTH:
                self.add_error("interval", "Invoices are annual; choose annual billing to pay by invoice.")
            if self.organisation.needs_purchase_order and not data.get("po_number", "").strip():
                self.add_error("po_number", "Your organisation needs a purchase order number on its invoices.")
        elif (
            data.get("interval") == Subscription.Interval.MONTH
            and data.get("tier")
            and not data["tier"].monthly_billing
        ):
            self.add_error("interval", f"{data['tier']} is billed annually.")
        return data


def _joinable_organisations(request: HttpRequest) -> list[Organisation]:
    """The user's organisations that they administer and that have no live subscription."""
    if not request.user.is_authenticated:
        return []
    live = Subscription.objects.live().values("organisation")
    return list(Organisation.objects.administered_by(request.user).exclude(pk__in=live))


def join_page(request: HttpRequest) -> HttpResponse:
    """The tiers side by side, priced for the visitor's organisation type and size."""
    joinable = _joinable_organisations(request)
    default = joinable[0] if joinable else None
    initial = (
        {"organisation_type": default.organisation_type, "size_band": default.size_band}
        if default
        else {"organisation_type": OrganisationType.SME, "size_band": SizeBand.MICRO}
    )
    finder = PriceFinderForm(request.GET or None, initial=initial)
    chosen = finder.cleaned_data if finder.is_valid() else initial
    tiers = list(Tier.objects.filter(is_public=True).prefetch_related("prices"))
    offers = []
    for tier in tiers:
        price = next(
            (
                p
                for p in tier.prices.all()
                if p.organisation_type == chosen["organisation_type"] and p.size_band == chosen["size_band"]
            ),
            None,
        )
        offers.append({"tier": tier, "price": price})
    return render(
        request,
        "membership/billing/join.html",
        {"finder": finder, "offers": offers, "joinable": joinable, "chosen": chosen},
    )


@organisation_view()
def billing_page(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    subscriptions = list(organisation.subscriptions.select_related("tier"))
    live = next((s for s in subscriptions if s.status in Subscription.LIVE_STATUSES), None)
    if request.GET.get("checkout") == "success":
        messages.success(request, "Thank you: your payment is being confirmed.")
    elif request.GET.get("checkout") == "cancelled":
        messages.info(request, "Checkout was cancelled; nothing was charged.")
    context = portal_context(
        request,
        organisation,
        membership,
        live=live,
        history=[s for s in subscriptions if s is not live],
        invoices=organisation.invoices.select_related("subscription__tier")[:24],
        join_form=JoinForm(organisation=organisation) if membership.is_admin and not live else None,
    )
    return render(request, "membership/billing/billing.html", context)


@organisation_view(admin_only=True)
@require_POST
def start_membership(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    """Subscribe to a tier: by card through checkout, or by invoice with a purchase order number."""
    form = JoinForm(request.POST, organisation=organisation)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(
            reverse("join") + f"?organisation_type={organisation.organisation_type}&size_band={organisation.size_band}"
        )
    data = form.cleaned_data
    try:
        if data["payment_method"] == Subscription.PaymentMethod.INVOICE:
            billing.start_invoice_subscription(organisation, data["tier"], request.user, data["po_number"].strip())
            messages.success(
                request, "Your invoice is on its way to your billing e-mail. It is payable within 30 days."
            )
            return redirect("membership:billing", organisation.slug)
        return redirect(billing.start_card_checkout(organisation, data["tier"], data["interval"], request.user))
    except MembershipError as error:
        messages.error(request, str(error))
        return redirect("membership:billing", organisation.slug)


@organisation_view(admin_only=True)
@require_POST
def manage_card(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    """Hand over to Stripe's customer portal to change the card or cancel."""
    return_url = request.build_absolute_uri(reverse("membership:billing", args=[organisation.slug]))
    try:
        return redirect(billing.customer_portal_url(organisation, return_url))
    except MembershipError as error:
        messages.error(request, str(error))
        return redirect("membership:billing", organisation.slug)
