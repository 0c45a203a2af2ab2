"""Stripe's side of billing: the webhook it calls, and the demo checkout that stands in for it without keys.

Both are thin: they parse the request, check who may, and hand over to ``membership.billing``.
"""

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from membership import billing, billing_changes
from membership.models import Subscription

logger = logging.getLogger(__name__)


@csrf_exempt  # Stripe cannot send our CSRF token; the signature on the raw body authenticates the call instead
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """400 for a delivery we cannot trust, 500 when acting on it failed (Stripe retries), else 200.

    Without Stripe keys nothing from outside is trusted: the demo checkout hands its signed events to the
    same ``receive_stripe_webhook`` in-process, and its secret is derived from a key that may be public.
    """
    if settings.DEMO_PAYMENTS:
        return JsonResponse({"error": "no webhook secret is configured"}, status=400)
    try:
        record = billing.receive_stripe_webhook(request.body, request.headers.get("Stripe-Signature"))
    except billing.InvalidWebhook as error:
        return JsonResponse({"error": str(error)}, status=400)
    except Exception:
        logger.exception("Stripe webhook failed; rolled back, Stripe will deliver it again")
        return JsonResponse({"error": "processing failed"}, status=500)
    if record is None:
        return JsonResponse({"status": "duplicate"})
    return JsonResponse({"status": "processed" if record.processed_at else "ignored"})


@login_required
@require_http_methods(["GET", "POST"])
def demo_checkout(request: HttpRequest, token: str) -> HttpResponse:
    """The demo checkout: only an admin of the subscription's organisation sees it (everyone else: 404)."""
    subscription = billing.find_demo_checkout(token, request.user)
    if subscription is None:
        raise Http404("No such checkout.")
    billing_page = billing.billing_page_path(subscription.organisation)
    if subscription.status != Subscription.Status.PENDING:
        return redirect(billing_page)  # paid or cancelled already: the billing page says which
    if request.method == "POST":
        if "pay" in request.POST:
            billing.pay_demo_checkout(subscription)
            return redirect(f"{billing_page}?checkout=success")
        billing.cancel_demo_checkout(subscription)
        return redirect(f"{billing_page}?checkout=cancelled")
    return render(
        request,
        "membership/billing/demo_checkout.html",
        {
            "subscription": subscription,
            "organisation": subscription.organisation,
            "amount": billing.format_pence(subscription.amount_pence),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def demo_card(request: HttpRequest, token: str) -> HttpResponse:
    """The demo's stand-in for saving a card to pay an invoiced membership: its organisation's admins only."""
    found = billing_changes.find_demo_card(token, request.user)
    if found is None:
        raise Http404("No such checkout.")
    subscription, number = found
    billing_page = billing.billing_page_path(subscription.organisation)
    if subscription.payment_method != Subscription.PaymentMethod.INVOICE or subscription.status not in (
        Subscription.LIVE_STATUSES
    ):
        return redirect(billing_page)  # moved to card, or ended, already: the billing page says which
    if request.method == "POST":
        if "save" in request.POST:
            billing_changes.save_demo_card(subscription, number)
            return redirect(f"{billing_page}?card=saved")
        return redirect(f"{billing_page}?card=cancelled")
    return render(
        request,
        "membership/billing/demo_card.html",
        {"subscription": subscription, "organisation": subscription.organisation},
    )
