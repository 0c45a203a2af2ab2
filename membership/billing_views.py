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

from membership import billing, billing_changes
from membership.models import Organisation, OrganisationType, SizeBand, Subscription, Tier, TierPrice
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


class TierChangeForm(forms.Form):
    tier = forms.ModelChoiceField(
        label="Move to", queryset=Tier.objects.filter(is_public=True), widget=forms.RadioSelect, empty_label=None
    )


class SwitchToInvoiceForm(forms.Form):
    po_number = forms.CharField(label="Purchase order number", max_length=50, required=False)

    def __init__(self, *args, organisation: Organisation, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["po_number"].required = organisation.needs_purchase_order
        self.fields["po_number"].help_text = "Printed on every invoice." + (
            " Your organisation needs one." if organisation.needs_purchase_order else ""
        )


class PayOnlineForm(forms.Form):
    """Moving a membership paid as the membership team arranged onto Stripe, from its renewal."""

    payment_method = forms.ChoiceField(
        label="From the renewal, pay by",
        choices=Subscription.PaymentMethod.choices,
        initial=Subscription.PaymentMethod.CARD,
        widget=forms.RadioSelect,
    )
    po_number = forms.CharField(label="Purchase order number", max_length=50, required=False)

    def __init__(self, *args, organisation: Organisation, **kwargs):
        self.organisation = organisation
        super().__init__(*args, **kwargs)
        self.fields["po_number"].help_text = "For invoices: printed on each one." + (
            " Your organisation needs one." if organisation.needs_purchase_order else ""
        )

    def clean(self) -> dict:
        data = super().clean()
        by_invoice = data.get("payment_method") == Subscription.PaymentMethod.INVOICE
        if by_invoice and self.organisation.needs_purchase_order and not data.get("po_number", "").strip():
            self.add_error("po_number", "Your organisation needs a purchase order number on its invoices.")
        return data


def _joinable_organisations(request: HttpRequest) -> list[Organisation]:
    """The user's organisations that they administer and that have no live subscription."""
    if not request.user.is_authenticated:
        return []
    live = Subscription.objects.live().values("organisation")
    return list(Organisation.objects.administered_by(request.user).exclude(pk__in=live))


def join_page(request: HttpRequest) -> HttpResponse:
    """The tiers side by side, priced for the visitor's organisation type and size."""
    return _join_page(request)


def _join_page(
    request: HttpRequest, *, refused: JoinForm | None = None, errors: list[str] = (), status: int = 200
) -> HttpResponse:
    """The Join page; ``refused`` is a join that was refused: the page comes back priced for its organisation, with
    ``errors`` on that tier's form and what the admin chose and typed in it."""
    joinable = _joinable_organisations(request)
    default = refused.organisation if refused is not None else (joinable[0] if joinable else None)
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
        forms_here = [_join_form_values(tier, organisation, refused, errors) for organisation in joinable]
        offers.append({"tier": tier, "price": price, "forms": forms_here})
    if errors and not any(form["errors"] for offer in offers if offer["price"] for form in offer["forms"]):
        for error in errors:  # the form it came from is not on the page (the organisation has joined since, say)
            messages.error(request, error)
    return render(
        request,
        "membership/billing/join.html",
        {"finder": finder, "offers": offers, "joinable": joinable, "chosen": chosen},
        status=status,
    )


def _join_form_values(tier: Tier, organisation: Organisation, refused: JoinForm | None, errors) -> dict:
    """What one tier's join form for one organisation shows: its defaults, or what was sent in it and refused."""
    values = {
        "organisation": organisation,
        "interval": Subscription.Interval.YEAR,
        "payment_method": (
            Subscription.PaymentMethod.INVOICE if organisation.needs_purchase_order else Subscription.PaymentMethod.CARD
        ),
        "po_number": "",
        "errors": [],
    }
    if refused is not None and refused.organisation.pk == organisation.pk and refused.data.get("tier") == str(tier.pk):
        values.update(
            interval=refused.data.get("interval", values["interval"]),
            payment_method=refused.data.get("payment_method", values["payment_method"]),
            po_number=refused.data.get("po_number", ""),
            errors=list(errors),
        )
    return values


_RETURN_MESSAGES = {
    ("checkout", "success"): (messages.SUCCESS, "Thank you: your payment is being confirmed."),
    ("checkout", "cancelled"): (messages.INFO, "Checkout was cancelled; nothing was charged."),
    ("card", "saved"): (
        messages.SUCCESS,
        "Thank you: your card is saved. Your membership is paid by card from now on.",
    ),
    ("card", "cancelled"): (messages.INFO, "No card was saved; your membership is still paid by invoice."),
    ("online", "card"): (
        messages.SUCCESS,
        "Thank you: your card is saved. It is charged when your membership renews, and not before.",
    ),
}


@organisation_view()
def billing_page(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    for (name, value), (level, text) in _RETURN_MESSAGES.items():
        if request.GET.get(name) == value:
            messages.add_message(request, level, text)
    return _billing_page(request, organisation, membership)


def _billing_page(
    request: HttpRequest,
    organisation: Organisation,
    membership,
    *,
    renew_form: JoinForm | None = None,
    invoice_form: SwitchToInvoiceForm | None = None,
    tier_form: TierChangeForm | None = None,
    online_form: PayOnlineForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The page every member sees; an admin also gets the forms that change the membership. A form given here
    was refused: it is shown again with its error and what the admin chose or typed."""
    subscriptions = list(organisation.subscriptions.select_related("tier", "scheduled_tier"))
    live = next((s for s in subscriptions if s.status in Subscription.LIVE_STATUSES), None)
    history = [s for s in subscriptions if s is not live]
    context = portal_context(
        request,
        organisation,
        membership,
        live=live,
        history=history,
        invoices=organisation.invoices.select_related("subscription__tier")[:24],
    )
    if membership.is_admin and live is None:
        context["renew_form"] = renew_form or _renew_form(organisation, history[0] if history else None)
        chosen = renew_form.cleaned_data.get("tier") if renew_form and hasattr(renew_form, "cleaned_data") else None
        context["renew_tier"] = chosen or (history[0].tier if history else None)
    if live is not None and billing.paid_offline(live):
        # Paid as the membership team arranged (imported): nothing at Stripe to change; it can move online.
        context["offline"] = True
        # Back from saving a card (?online=card), Stripe is confirming it: no second offer meanwhile.
        confirming = request.GET.get("online") == "card"
        if membership.is_admin and (online_form is not None or (billing.may_pay_online(live) and not confirming)):
            context["online_form"] = online_form or PayOnlineForm(organisation=organisation)
            context["online_price"] = billing.price_for(live.tier, organisation, live.interval)
    elif membership.is_admin and live is not None and live.status == Subscription.Status.ACTIVE:
        context["tier_options"] = _tier_options(organisation, live)
        context["tier_form"] = tier_form
        context["invoice_form"] = invoice_form or SwitchToInvoiceForm(
            organisation=organisation, initial={"po_number": live.po_number}
        )
    return render(request, "membership/billing/billing.html", context, status=status)


def _renew_form(organisation: Organisation, last: Subscription | None) -> JoinForm | None:
    """Joining again, on the last membership's terms (any tier can be chosen on the Join page instead)."""
    if last is None or not last.tier.is_public:
        return None
    initial = {
        "tier": last.tier,
        "interval": last.interval,
        "payment_method": last.payment_method,
        "po_number": last.po_number,
    }
    return JoinForm(organisation=organisation, initial=initial)


def _tier_options(organisation: Organisation, live: Subscription) -> list[dict]:
    """The other public tiers with a price for this organisation and billing interval, each an up- or downgrade."""
    options = []
    prices = TierPrice.objects.filter(
        organisation_type=organisation.organisation_type, size_band=organisation.size_band
    ).select_related("tier")
    for price in (
        prices.filter(tier__is_public=True).exclude(tier=live.tier_id).order_by("tier__sort_order", "tier__name")
    ):
        amount = billing.price_of(price, price.tier, live.interval)
        if amount is not None:
            options.append({"tier": price.tier, "amount": amount, "upgrade": amount > live.amount_pence})
    return options


@organisation_view(admin_only=True)
@require_POST
def start_membership(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    """Subscribe to a tier: by card through checkout, or by invoice with a purchase order number."""
    form = JoinForm(request.POST, organisation=organisation)
    renewing = "renew" in request.POST  # from the billing page: errors are shown there, with what was typed
    if not form.is_valid() and renewing:
        return _billing_page(request, organisation, membership, renew_form=form, status=400)
    if not form.is_valid():
        # Shown again on the Join page, on the tier's form, with what was chosen and typed.
        errors = [error for field_errors in form.errors.values() for error in field_errors]
        return _join_page(request, refused=form, errors=errors, status=400)
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
        # Refused, or Stripe unreachable: nothing was written; the form comes back with what was chosen and typed,
        # where it was sent from.
        if not renewing:
            return _join_page(request, refused=form, errors=[str(error)], status=400)
        form.add_error(None, str(error))
        return _billing_page(request, organisation, membership, renew_form=form, status=400)


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


# Changing a live membership: each action calls one service in membership.billing_changes ---------------------


def _done(request: HttpRequest, organisation: Organisation, change) -> HttpResponse:
    try:
        messages.success(request, change())
    except MembershipError as error:
        messages.error(request, str(error))
    return redirect("membership:billing", organisation.slug)


@organisation_view(admin_only=True)
@require_POST
def change_tier(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    """Upgrade or downgrade: prorated at once by card, or (invoice payers' downgrades) at renewal."""
    form = TierChangeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose the tier to move to.")
        return redirect("membership:billing", organisation.slug)
    try:
        messages.success(request, billing_changes.change_tier(organisation, form.cleaned_data["tier"], request.user))
    except MembershipError as error:
        form.add_error(None, str(error))
        return _billing_page(request, organisation, membership, tier_form=form, status=400)
    return redirect("membership:billing", organisation.slug)


@organisation_view(admin_only=True)
@require_POST
def keep_tier(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    """Take back a downgrade waiting for the renewal."""
    return _done(request, organisation, lambda: billing_changes.keep_tier(organisation, request.user))


@organisation_view(admin_only=True)
@require_POST
def switch_to_invoice(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    form = SwitchToInvoiceForm(request.POST, organisation=organisation)
    if form.is_valid():
        try:
            message = billing_changes.switch_to_invoice(organisation, request.user, form.cleaned_data["po_number"])
        except MembershipError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, message)
            return redirect("membership:billing", organisation.slug)
    return _billing_page(request, organisation, membership, invoice_form=form, status=400)


@organisation_view(admin_only=True)
@require_POST
def switch_to_card(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    """Send the admin to save a card (Stripe Checkout in setup mode, or the demo's stand-in)."""
    try:
        return redirect(billing_changes.start_switch_to_card(organisation, request.user))
    except MembershipError as error:
        messages.error(request, str(error))
        return redirect("membership:billing", organisation.slug)


@organisation_view(admin_only=True)
@require_POST
def cancel_membership(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    """End the membership when its period ends."""
    return _done(request, organisation, lambda: billing_changes.cancel_at_period_end(organisation, request.user))


@organisation_view(admin_only=True)
@require_POST
def withdraw_application(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    """Take back a membership asked for by invoice, before its invoice is paid."""

    def withdraw() -> str:
        subscription = billing_changes.withdraw_invoiced_application(organisation, request.user)
        return (
            f"The {subscription.tier} membership you asked for is withdrawn and its invoice is void: nothing is owed. "
            "You can join again, by card or with a new invoice."
        )

    return _done(request, organisation, withdraw)


@organisation_view(admin_only=True)
@require_POST
def resume_membership(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    """Take back a cancellation before the period ends."""
    return _done(request, organisation, lambda: billing_changes.resume_membership(organisation, request.user))


@organisation_view(admin_only=True)
@require_POST
def pay_online(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    """Move a membership paid as the membership team arranged onto Stripe, from its renewal: to Stripe Checkout to
    save a card, or an invoice from Stripe at the renewal. Refused: the form again, with what was chosen and typed."""
    form = PayOnlineForm(request.POST, organisation=organisation)
    if form.is_valid():
        data = form.cleaned_data
        try:
            done = billing_changes.start_paying_online(
                organisation, request.user, data["payment_method"], data["po_number"]
            )
        except MembershipError as error:
            live = Subscription.objects.live().filter(organisation=organisation).first()
            if live is None or not billing.paid_offline(live):  # no form to show the refusal on: say it
                messages.error(request, str(error))
                return redirect("membership:billing", organisation.slug)
            form.add_error(None, str(error))
        else:
            if data["payment_method"] == Subscription.PaymentMethod.CARD:
                return redirect(done)
            messages.success(request, done)
            return redirect("membership:billing", organisation.slug)
    return _billing_page(request, organisation, membership, online_form=form, status=400)
