"""The application's URLs plus the benchmarks' trivial pages: an empty back-office page and an empty site page.

Only the benchmark server loads this module (ROOT_URLCONF=bench.urls): each page measures what every request
to that part of the platform costs before it does any work of its own (session, user, middleware, the frame's
template), so a page's figure against it is the page's own cost.
"""

from django.urls import path
from django.views.generic import TemplateView
from wagtail.admin.auth import require_admin_access
from wagtail.admin.views.generic import WagtailAdminTemplateMixin

from config.urls import urlpatterns as application


class EmptyBackOfficePage(WagtailAdminTemplateMixin, TemplateView):
    """The back office's frame (log-in, two-factor check, menu, header) around no content at all."""

    template_name = "wagtailadmin/generic/base.html"
    page_title = "Benchmark"


urlpatterns = [
    path("admin/bench/empty/", require_admin_access(EmptyBackOfficePage.as_view())),
    # The public site's frame (header, navigation, footer, the visitor's session) around no content.
    path("bench/empty/", TemplateView.as_view(template_name="base.html")),
    *application,
]
