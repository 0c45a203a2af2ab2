"""The site in the back office: news categories as snippets, and the page cache's say on what it may keep."""

from wagtail import hooks
from wagtail.snippets.models import register_snippet
from wagtail.snippets.views.snippets import SnippetViewSet

from cms import cache
from cms.events import wagtail_hooks as events_hooks  # noqa: F401  (Wagtail finds hooks only in <app>.wagtail_hooks)
from cms.models import NewsCategory


class NewsCategoryViewSet(SnippetViewSet):
    model = NewsCategory
    icon = "tag"
    menu_label = "News categories"
    menu_order = 300
    add_to_admin_menu = False
    list_display = ["name", "slug"]
    search_fields = ["name"]
    ordering = ["name"]


register_snippet(NewsCategoryViewSet)


@hooks.register("before_serve_page")
def keep_public_pages_in_the_page_cache(page, request, serve_args, serve_kwargs):
    """Public pages of the types that allow it may be cached for anonymous visitors; members-only pages and
    pages behind Wagtail's own privacy settings never are."""
    if not cache.may_use_cache(request) or not getattr(page, "page_cache", False):
        return
    if getattr(page, "members_only", False) or page.get_view_restrictions().exists():
        return
    cache.mark_cacheable(request)
