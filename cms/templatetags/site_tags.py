"""Template tags for the public site's shell."""

from django import template
from django.conf import settings
from django.templatetags.static import static
from django.utils.safestring import mark_safe

from cms.models import OPEN_GRAPH_IMAGE

register = template.Library()

ARTICLE_TYPES = {"newspage", "boardupdatepage", "successstorypage"}
DEFAULT_DESCRIPTION = "the membership body for the North East's tech sector: events, perks and the region's successes."


def _absolute(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else f"{settings.SITE_URL}{url}"


@register.inclusion_tag("cms/_open_graph.html", takes_context=True)
def open_graph(context) -> dict:
    """Open Graph and Twitter card tags for the page being shown (or the site, on other views): its title, its
    public description and its listing image. A members-only page shares only what its listings show."""
    request = context.get("request")
    page = context.get("page")
    site_name = settings.WAGTAIL_SITE_NAME
    tags = {
        "site_name": site_name,
        "type": "website",
        "title": site_name,
        "description": f"{site_name}: {DEFAULT_DESCRIPTION}",
        "url": _absolute(request.path) if request else settings.SITE_URL,
        "image": _absolute(static("img/logo.svg")),
        "card": "summary",
    }
    if page is not None and hasattr(page, "get_url"):
        description = getattr(page, "summary", "") or page.search_description or getattr(page, "hero_text", "")
        tags.update(
            title=page.seo_title or page.title,
            description=description or tags["description"],
            url=_absolute(page.get_url(request) or "/"),
            type="article" if page._meta.model_name in ARTICLE_TYPES else "website",
        )
        image = getattr(page, "listing_image", None)
        if image is not None:
            rendition = image.get_rendition(OPEN_GRAPH_IMAGE)
            tags.update(
                image=_absolute(rendition.url),
                image_width=rendition.width,
                image_height=rendition.height,
                image_alt=image.default_alt_text,
                card="summary_large_image",
            )
    return tags


@register.filter
def privacy_enhanced(embed_html: str) -> str:
    """YouTube players from its privacy-enhanced host, the one the site's Content Security Policy allows.

    The HTML is the embed Wagtail's finder fetched for an editor's address (already trusted as safe)."""
    html = str(embed_html).replace("https://www.youtube.com/embed/", "https://www.youtube-nocookie.com/embed/")
    return mark_safe(html)  # noqa: S308
