"""Security headers that every response carries, whichever part of the stack answered it.

Django's SecurityMiddleware sends nosniff, the referrer policy, the opener policy and HSTS; django-csp and the
clickjacking middleware send the Content-Security-Policy and X-Frame-Options for views. This middleware sits
first, just outside SecurityMiddleware, so it also sees the redirect to https SecurityMiddleware answers itself and
the static files WhiteNoise answers before any view runs, and:

- adds the Permissions-Policy (``PERMISSIONS_POLICY``): the site uses no camera, microphone, location or the
  like, so no page, nor anything embedded in one, may ask for them;
- enforces ``BACK_OFFICE_CSP`` in the Wagtail and Django admins, whose own inline scripts the site's strict
  policy would block (there it is sent report-only): framing by other sites, plugins, a foreign ``<base>`` and
  posting forms elsewhere are still refused;
- gives any other response that has no policy (static files) the site's own policy, and X-Frame-Options.

Headers a view set on purpose are left alone.
"""

from collections.abc import Callable

from csp.constants import HEADER as CSP_HEADER
from csp.utils import build_policy
from django.conf import settings
from django.http import HttpRequest, HttpResponse


def _policy_text(directives: dict[str, list[str]]) -> str:
    return build_policy(config=directives)


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.DEBUG and response.status_code in (404, 500):
            return response  # Django's debug pages style themselves inline
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        if CSP_HEADER not in response and not getattr(response, "_csp_exempt", False):
            if request.path_info.startswith(settings.STAFF_MFA_REQUIRED_PREFIXES):
                response[CSP_HEADER] = _policy_text(settings.BACK_OFFICE_CSP)
            else:
                response[CSP_HEADER] = _policy_text(settings.CONTENT_SECURITY_POLICY["DIRECTIVES"])
        if not getattr(response, "xframe_options_exempt", False):
            response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        return response


class RequestSizeLimitMiddleware:
    """Refuse, with 413, a request whose declared body is larger than any form here takes, before anything reads
    it: otherwise Django would write the whole of an oversized upload to a temporary file before a form's own size
    check turned it down. The site's limit (``MAX_REQUEST_BYTES``) allows for a logo or an image and the form
    around it; staff logged in to the back office have a larger one (``MAX_BACK_OFFICE_REQUEST_BYTES``) for its
    imports and documents, which no one else gets, even at the back office's addresses. A body sent without a
    length (chunked) is left to the front proxy's own limit. It runs after the authentication middleware and
    before anything that reads the body (the CSRF check reads it in its view hook, after every middleware's
    call)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.MAX_REQUEST_BYTES
        if length > limit and request.path_info.startswith(settings.STAFF_MFA_REQUIRED_PREFIXES):
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated and user.is_staff:
                limit = settings.MAX_BACK_OFFICE_REQUEST_BYTES
        if length > limit:
            from django.shortcuts import render

            return render(request, "413.html", {"limit": limit}, status=413)
        return self.get_response(request)
