"""The perks catalogue (public teasers, members redeem) and the perk pages of the member portal.

A code or a redemption link appears only in a response to the person who redeemed it: the perk page shows
it from their own Redemption row, never from the perk.
"""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from benefits import catalogue_cache, services
from benefits.forms import CatalogueFilterForm, OfferForm, RedeemForm
from benefits.models import Perk, Provider, Redemption
from config.ratelimit import limit_user
from membership.models import Organisation, Tier
from membership.renewals import entitled_tier
from membership.services import MembershipError
from membership.views import CURRENT_ORGANISATION, organisation_view, portal_context

PER_PAGE = 24
REDEMPTIONS_LIMITED = "You have redeemed a lot of perks in a short time, so this one was not redeemed."


def _can_preview(user) -> bool:
    return user.is_authenticated and user.has_perm("benefits.change_perk")


def _catalogue_perks():
    return (
        Perk.objects.available()
        .select_related("provider__organisation")
        .prefetch_related(Prefetch("eligible_tiers", queryset=Tier.objects.only("name", "sort_order")))
    )


def catalogue(request: HttpRequest) -> HttpResponse:
    key, page = catalogue_cache.cached(request)
    if page is not None:
        return page
    return catalogue_cache.store(key, _catalogue(request))


def _catalogue(request: HttpRequest) -> HttpResponse:
    providers = list(Provider.objects.filter(perks__in=Perk.objects.available()).distinct().only("name", "slug"))
    form = CatalogueFilterForm(request.GET or None, providers=providers)
    perks = _catalogue_perks()
    if form.is_valid():
        data = form.cleaned_data
        perks = perks.search(data["q"])
        if data["category"]:
            perks = perks.filter(category=data["category"])
        if data["provider"]:
            perks = perks.filter(provider__slug=data["provider"])
        if data["new"]:
            perks = perks.new()
        if data["featured"]:
            perks = perks.filter(featured=True)
    page = Paginator(perks, PER_PAGE).get_page(request.GET.get("page"))
    organisation = _current_organisation(request)
    tier = entitled_tier(organisation) if organisation else None
    redeemed = set()
    if request.user.is_authenticated:
        redeemed = set(
            Redemption.objects.filter(person=request.user, perk__in=[p.pk for p in page]).values_list(
                "perk_id", flat=True
            )
        )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "benefits/catalogue.html",
        {
            "form": form,
            "page": page,
            "redeemed": redeemed,
            "organisation": organisation,
            "tier": tier,
            "filter_query": query.urlencode(),
            "filtered": form.is_valid() and any(form.cleaned_data.values()),
        },
    )


def _my_organisations(request: HttpRequest) -> list[Organisation]:
    if not request.user.is_authenticated:
        return []
    return list(Organisation.objects.for_user(request.user).order_by("name"))


def _current_organisation(request: HttpRequest, organisations: list[Organisation] | None = None):
    """The organisation the person is working for: the one they chose, else the one they last used."""
    if organisations is None:
        organisations = _my_organisations(request)
    if not organisations:
        return None
    chosen = request.POST.get("organisation") or request.GET.get("organisation")
    by_slug = {o.slug: o for o in organisations}
    if chosen in by_slug:
        return by_slug[chosen]
    last = request.session.get(CURRENT_ORGANISATION)
    return next((o for o in organisations if o.pk == last), organisations[0])


def _perk_or_404(request: HttpRequest, slug: str) -> Perk:
    perk = get_object_or_404(Perk.objects.select_related("provider__organisation"), slug=slug)
    if perk.status not in (Perk.Status.PUBLISHED, Perk.Status.EXPIRED) and not _can_preview(request.user):
        raise Http404
    return perk


def perk_page(request: HttpRequest, slug: str) -> HttpResponse:
    perk = _perk_or_404(request, slug)
    return _render_perk(request, perk, RedeemForm())


def _render_perk(request: HttpRequest, perk: Perk, form: RedeemForm, status: int = 200) -> HttpResponse:
    organisations = _my_organisations(request)
    organisation = _current_organisation(request, organisations)
    form.fields["organisation"].choices = [(o.slug, o.name) for o in organisations]
    form.initial.setdefault("organisation", organisation.slug if organisation else "")
    redemption = None
    if organisation is not None:
        redemption = Redemption.objects.filter(perk=perk, person=request.user, organisation=organisation).first()
    reason = "" if redemption else services.refusal_reason(perk, organisation)
    return render(
        request,
        "benefits/perk.html",
        {
            "perk": perk,
            "form": form,
            "organisations": organisations,
            "organisation": organisation,
            "redemption": redemption,
            "reason": reason,
            "eligible_tiers": list(perk.eligible_tiers.all()),
        },
        status=status,
    )


@require_POST
def redeem(request: HttpRequest, slug: str) -> HttpResponse:
    perk = _perk_or_404(request, slug)
    if not request.user.is_authenticated:
        return redirect_to_login(perk.get_absolute_url())
    if refused := limit_user(request, "redeem_perk", REDEMPTIONS_LIMITED):
        return refused
    form = RedeemForm(request.POST)
    organisations = _my_organisations(request)
    form.fields["organisation"].choices = [(o.slug, o.name) for o in organisations]
    organisation = _current_organisation(request, organisations)
    if not form.is_valid() or organisation is None:
        reason = services.refusal_reason(perk, organisation) or "Choose the organisation to redeem it for."
        messages.error(request, reason)
        return _render_perk(request, perk, form, status=403 if organisation is None else 400)
    try:
        result = services.redeem_perk(perk, request.user, organisation, form.cleaned_data["message"])
    except MembershipError as error:
        messages.error(request, str(error))
        return _render_perk(
            request, perk, form, status=400 if isinstance(error, services.RedemptionIncomplete) else 403
        )
    request.session[CURRENT_ORGANISATION] = organisation.pk
    if result.created:
        messages.success(request, _redeemed_message(result.redemption))
    return redirect(f"{perk.get_absolute_url()}?organisation={organisation.slug}")


def _redeemed_message(redemption: Redemption) -> str:
    method = redemption.perk.method
    if method == Perk.Method.CONTACT:
        return f"Your request has gone to {redemption.perk.provider}; they will reply by e-mail."
    if method == Perk.Method.LINK:
        return "Redeemed. Use the link below to claim the offer; we have e-mailed it to you too."
    return "Redeemed. Your code is below; we have e-mailed it to you too."


@login_required
def my_redemptions(request: HttpRequest) -> HttpResponse:
    """Everything the person has redeemed, for whichever of their organisations, with the codes."""
    redemptions = (
        Redemption.objects.for_person(request.user)
        .select_related("perk__provider", "organisation")
        .order_by("-created_at", "-id")
    )
    page = Paginator(redemptions, 50).get_page(request.GET.get("page"))
    return render(request, "benefits/my_redemptions.html", {"page": page})


@organisation_view()
def organisation_perks(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    """The portal's Perks page: what the person redeemed for this organisation; admins also see colleagues'."""
    redemptions = Redemption.objects.filter(organisation=organisation).select_related("perk__provider", "person")
    mine = [r for r in redemptions.filter(person=request.user)[:200]]
    colleagues = redemptions.exclude(person=request.user)[:200] if membership.is_admin else []
    return render(
        request,
        "benefits/portal/perks.html",
        portal_context(
            request,
            organisation,
            membership,
            mine=mine,
            colleagues=colleagues,
            tier=entitled_tier(organisation),
        ),
    )


# Offers from a member organisation --------------------------------------------------------------------------


@organisation_view(admin_only=True)
def offers(request: HttpRequest, organisation: Organisation, membership) -> HttpResponse:
    since = timezone.now() - timedelta(days=30)
    perks = (
        Perk.objects.filter(provider__organisation=organisation)
        .annotate(recent=Count("redemptions", filter=Q(redemptions__created_at__gte=since)))
        .annotate(organisations=Count("redemptions__organisation", distinct=True))
        .order_by("-created_at")
    )
    return render(
        request, "benefits/portal/offers.html", portal_context(request, organisation, membership, perks=perks)
    )


@organisation_view(admin_only=True)
def offer_form(request: HttpRequest, organisation: Organisation, membership, pk: int | None = None) -> HttpResponse:
    perk = None
    if pk is not None:
        perk = get_object_or_404(Perk, pk=pk, provider__organisation=organisation)
        if perk.status in (Perk.Status.PUBLISHED, Perk.Status.EXPIRED):
            messages.info(request, "This offer is live: ask the membership team to change it.")
            return redirect("benefits:offers", organisation.slug)
    form = OfferForm(request.POST or None, instance=perk)
    if request.method == "POST" and form.is_valid():
        try:
            perk = services.submit_offer(organisation, request.user, form)
        except MembershipError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"Thank you: “{perk.title}” is with the membership team for approval.")
            return redirect("benefits:offers", organisation.slug)
    return render(
        request,
        "benefits/portal/offer_form.html",
        portal_context(request, organisation, membership, form=form, perk=perk),
        status=400 if form.is_bound and form.errors else 200,
    )


@organisation_view(admin_only=True)
@require_POST
def withdraw_offer(request: HttpRequest, organisation: Organisation, membership, pk: int) -> HttpResponse:
    perk = get_object_or_404(Perk, pk=pk, provider__organisation=organisation)
    try:
        services.withdraw_offer(perk, request.user)
    except MembershipError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"“{perk.title}” is withdrawn.")
    return redirect("benefits:offers", organisation.slug)
