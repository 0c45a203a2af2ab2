import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME, logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render, resolve_url
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache

from accounts import services
from accounts.forms import ConsentForm, DeleteAccountForm, ProfileForm
from accounts.middleware import is_back_office_user
from config.ratelimit import limit_user

DELETION_LIMITED = "Too many tries at confirming your account's deletion."


def admin_login_redirect(request: HttpRequest, *args, **kwargs) -> HttpResponseRedirect:
    """The Wagtail and Django admins' login: hand over to allauth, which applies rate limits and MFA.

    Whoever is already logged in goes on to where they were heading; the admins themselves then decide
    whether that user may enter.
    """
    next_url = request.GET.get(REDIRECT_FIELD_NAME) or request.POST.get(REDIRECT_FIELD_NAME) or "/admin/"
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "/admin/"
    if request.user.is_authenticated:
        # Sending a logged-in user who may not enter back to the log-in form would loop for ever.
        if request.path.startswith("/django-admin/"):
            if not request.user.is_superuser:
                raise PermissionDenied("The system administration is for superusers only.")
        elif not is_back_office_user(request.user):
            raise PermissionDenied("The back office is for the membership team only.")
        return HttpResponseRedirect(next_url)
    login_url = resolve_url(settings.LOGIN_URL)
    return HttpResponseRedirect(f"{login_url}?{urlencode({REDIRECT_FIELD_NAME: next_url})}")


def frontend_login_redirect(request: HttpRequest, *args, **kwargs) -> HttpResponseRedirect:
    """Wagtail's front-end log-in (``/_util/login/``), where a page or document open only to signed-in people, or
    to some groups, sends those it turns away. Wagtail's own is Django's log-in form, which has none of allauth's
    rate limits and asks for no second factor; this hands over to allauth instead, keeping where the visitor was
    going, and never reads a password. Someone already signed in was turned away by a group restriction: logging
    in again would change nothing (allauth would send them straight back, for ever), so they are told so."""
    next_url = request.GET.get(REDIRECT_FIELD_NAME) or "/"
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "/"
    if request.user.is_authenticated:
        raise PermissionDenied("That page is open only to some groups, and your account is not in them.")
    login_url = resolve_url(settings.LOGIN_URL)
    return HttpResponseRedirect(f"{login_url}?{urlencode({REDIRECT_FIELD_NAME: next_url})}")


@login_required
def account(request: HttpRequest) -> HttpResponse:
    """My account: name, marketing choices, and the way to one's personal data."""
    consents = services.current_consents(request.user)
    profile_form = ProfileForm(request.POST or None, instance=request.user, prefix="profile")
    consent_form = ConsentForm(request.POST or None, initial=consents, prefix="consent")
    if request.method == "POST" and profile_form.is_valid() and consent_form.is_valid():
        profile_form.save()
        services.record_consents(request.user, consent_form.cleaned_data, source="my account")
        messages.success(request, "Your details are saved.")
        return redirect("accounts:account")
    return render(
        request,
        "accounts/account.html",
        {"profile_form": profile_form, "consent_form": consent_form},
        status=400 if request.method == "POST" else 200,
    )


@never_cache
@login_required
def export(request: HttpRequest) -> HttpResponse:
    """Download everything the platform holds about me, as JSON."""
    data = services.export_personal_data(request.user)
    response = HttpResponse(
        json.dumps(data, indent=2, cls=DjangoJSONEncoder), content_type="application/json; charset=utf-8"
    )
    filename = f"my-data-{timezone.localdate():%Y-%m-%d}.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
def delete(request: HttpRequest) -> HttpResponse:
    """Delete my account, once any organisation I am the only admin of has another admin."""
    blockers = services.account_deletion_blockers(request.user)
    # Each try checks the password: limited, so that a borrowed session cannot be used to guess it.
    if request.method == "POST" and (refused := limit_user(request, "confirm_account_deletion", DELETION_LIMITED)):
        return refused
    form = DeleteAccountForm(request.user, request.POST or None)
    if request.method == "POST" and not blockers and form.is_valid():
        try:
            services.delete_account(request.user)
        except services.AccountDeletionRefused as error:
            messages.error(request, str(error))
            return redirect("accounts:delete")
        logout(request)
        messages.success(request, "Your account is deleted and your personal data erased.")
        return redirect("/")
    return render(request, "accounts/delete.html", {"form": form, "blockers": blockers})
