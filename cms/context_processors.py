from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

# The header's sections, in order. A section appears once the capability behind it is installed, so the
# navigation never links to a page that does not exist.
NAVIGATION = [
    ("News", "cms:news"),
    ("Events", "cms:events"),
    ("Perks", "benefits:catalogue"),
    ("Directory", "cms:directory"),
    ("Join", "join"),
]


def _resolve(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def site_shell(request: HttpRequest) -> dict:
    navigation = []
    for label, name in NAVIGATION:
        url = _resolve(name)
        if url:
            navigation.append({"label": label, "url": url, "active": request.path.startswith(url)})
    return {
        "site_name": settings.WAGTAIL_SITE_NAME,
        "navigation": navigation,
        "portal_url": _resolve("membership:portal"),
        "account_url": _resolve("accounts:account"),
        "demo_payments": settings.DEMO_PAYMENTS,
    }
