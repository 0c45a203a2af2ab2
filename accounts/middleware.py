from collections.abc import Callable

from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode


def is_back_office_user(user) -> bool:
    """Staff are those who may enter the back office: Django staff, superusers and Wagtail editors."""
    return user.is_staff or user.is_superuser or user.has_perm("wagtailadmin.access_admin")


class StaffMFARequiredMiddleware:
    """Staff reach the back office only once they have set up an authenticator app.

    allauth then asks for the second factor at every log-in, so a stolen password alone never opens
    /admin/ or /django-admin/.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._must_set_up_mfa(request):
            messages.warning(
                request,
                "The back office holds members' personal and financial data: set up two-factor "
                "authentication with an authenticator app before you continue.",
            )
            return redirect(reverse("mfa_activate_totp") + "?" + urlencode({"next": request.get_full_path()}))
        return self.get_response(request)

    def _must_set_up_mfa(self, request: HttpRequest) -> bool:
        if not settings.STAFF_MFA_REQUIRED:
            return False
        if not request.path.startswith(settings.STAFF_MFA_REQUIRED_PREFIXES):
            return False
        user = request.user
        if not user.is_authenticated or not is_back_office_user(user):
            return False
        return not is_mfa_enabled(user, [Authenticator.Type.TOTP])
