from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from accounts.middleware import is_back_office_user


def admin_login_redirect(request: HttpRequest, *args, **kwargs) -> HttpResponseRedirect:
    """The Wagtail and Django admins' login: hand over to allauth, which applies rate limits and MFA.

    Whoever is already logged in goes on to where they were heading; the admins themselves then decide
    whether that user may enter.
    """
    next_url = request.GET.get(REDIRECT_FIELD_NAME) or request.POST.get(REDIRECT_FIELD_NAME) or "/admin/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
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
