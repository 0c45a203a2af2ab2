"""The application's URLs plus the benchmarks' trivial back-office page.

Only the benchmark server loads this module (ROOT_URLCONF=bench.urls): the page measures what every
back-office request costs before it does any work of its own, so a listing's figure is its own cost.
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
    *application,
]
