import posixpath

from django.conf import settings
from django.contrib import admin
from django.contrib.sitemaps.views import sitemap
from django.http import Http404
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from django.views.static import serve
from wagtail import urls as wagtail_urls
from wagtail import views as wagtail_views
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.contrib.sitemaps import Sitemap
from wagtail.documents import urls as wagtaildocs_urls
from wagtail.documents.views import serve as wagtaildocs_serve

from accounts.views import admin_login_redirect, frontend_login_redirect
from cms.views import robots_txt, serve_page, with_a_usable_return_url
from config.views import healthz
from membership.billing_views import join_page

admin.site.site_header = f"{settings.WAGTAIL_SITE_NAME}: system administration"
# The Django admin's own login is replaced by allauth's, so it cannot bypass rate limits or MFA.
admin.site.login = admin_login_redirect
# The Django admin is for superusers only; everyone else on the staff works in the Wagtail admin.
admin.site.has_permission = lambda request: request.user.is_active and request.user.is_superuser

# Wagtail's document views, its password form's redirect made safe (cms.views.with_a_usable_return_url).
_documents_urls = [
    *[pattern for pattern in wagtaildocs_urls.urlpatterns if pattern.name != "wagtaildocs_authenticate_with_password"],
    path(
        "authenticate_with_password/<int:restriction_id>/",
        with_a_usable_return_url(wagtaildocs_serve.authenticate_with_password),
        name="wagtaildocs_authenticate_with_password",
    ),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("django-admin/", admin.site.urls),
    # Wagtail's login form likewise hands over to allauth.
    path("admin/login/", admin_login_redirect, name="wagtailadmin_login"),
    path("admin/", include(wagtailadmin_urls)),
    path("documents/", include(_documents_urls)),
    path("accounts/", include("allauth.urls")),
    path("my/account/", include("accounts.urls")),
    path("my/events/", include("cms.events.urls")),
    path("my/", include("membership.urls")),
    path("billing/", include("membership.billing_urls")),
    path("join/", join_page, name="join"),
    path("", include("benefits.urls")),
    path("", include("cms.urls")),
    path("sitemap.xml", sitemap, {"sitemaps": {"pages": Sitemap}}),
    path("robots.txt", robots_txt, name="robots_txt"),
    path("favicon.ico", RedirectView.as_view(url=f"{settings.STATIC_URL}img/favicon.svg", permanent=True)),
]


def serve_media(request, path: str):
    """Uploaded files (logos, images) when no bucket or CDN serves them.

    Documents are served only through /documents/<id>/, which applies their collection's privacy. The path is
    judged as ``serve`` will resolve it, so no other spelling of it (``//documents/``, ``./documents/``,
    ``logos/../documents/``) reaches a document's file.
    """
    if posixpath.normpath(path).lstrip("/").split("/", 1)[0] == "documents":
        raise Http404("Documents are served from /documents/.")
    return serve(request, path, document_root=settings.MEDIA_ROOT)


if settings.SERVE_MEDIA:
    urlpatterns += [re_path(r"^media/(?P<path>.*)$", serve_media)]

# Wagtail's front-end views, last: its page view is replaced by one that finds the site from the cache
# (cms.views.serve_page), at the same pattern and under the same name; its log-in form (Django's own, without
# allauth's rate limits or second factor) by a hand-over to allauth's.
_REPLACED = {"wagtail_serve", "wagtailcore_login", "wagtailcore_authenticate_with_password"}
urlpatterns += [
    *[pattern for pattern in wagtail_urls.urlpatterns if pattern.name not in _REPLACED],
    path("_util/login/", frontend_login_redirect, name="wagtailcore_login"),
    path(
        "_util/authenticate_with_password/<int:page_view_restriction_id>/<int:page_id>/",
        with_a_usable_return_url(wagtail_views.authenticate_with_password),
        name="wagtailcore_authenticate_with_password",
    ),
    re_path(wagtail_urls.serve_pattern, serve_page, name="wagtail_serve"),
]
