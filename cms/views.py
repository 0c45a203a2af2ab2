import functools

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET
from wagtail import views as wagtail_views
from wagtail.models import Page

from cms.cache import find_site
from cms.models import paginate
from config.text import printable


@require_GET
@cache_control(max_age=86400, public=True)
def robots_txt(request: HttpRequest) -> HttpResponse:
    """Crawlers may read the public site; the portal, accounts and the back office are off limits."""
    lines = [
        "User-agent: *",
        "Disallow: /admin/",
        "Disallow: /django-admin/",
        "Disallow: /my/",
        "Disallow: /accounts/",
        f"Sitemap: {settings.SITE_URL}/sitemap.xml",
    ]
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain")


SEARCH_PER_PAGE = 10


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    """Search the published public pages: news, success stories, board updates, standard pages, events.

    Members-only pages are found by their title and introduction only: their bodies are never indexed.
    """
    query = printable(request.GET.get("q", ""))[:200]
    results = None
    if query:
        pages = Page.objects.live().public().specific().search(query, operator="and")
        results = paginate(request, pages, SEARCH_PER_PAGE)
    return TemplateResponse(request, "cms/search.html", {"query": query, "results": results})


def serve_page(request: HttpRequest, path: str) -> HttpResponse:
    """Wagtail's page view, with the request's site found from the cache rather than the database
    (``cms.cache.find_site``); everything else about serving the page is Wagtail's."""
    find_site(request)
    return wagtail_views.serve(request, path)


def with_a_usable_return_url(view):
    """Wagtail's password forms for pages and documents (``_util/authenticate_with_password/``,
    ``documents/authenticate_with_password/``) redirect, once the password is right, to the form's ``return_url``:
    they check it names this site, but a bare word such as ``0`` passes that check and Django's ``redirect`` then
    takes it for the name of a view, which fails with a server error. A return address that is not a path or a
    URL goes home instead."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST":
            return_url = request.POST.get("return_url", "")
            if not ("/" in return_url or "." in return_url) or any(c.isspace() for c in return_url):
                request.POST = request.POST.copy()
                request.POST["return_url"] = "/"
        return view(request, *args, **kwargs)

    return wrapper
