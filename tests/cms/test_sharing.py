"""What search engines and link previews see: Open Graph and Twitter tags from each page, and the sitemap."""

import io

import pytest
from django.core.files.images import ImageFile
from PIL import Image as PILImage
from wagtail.images import get_image_model

from tests.cms.conftest import add_news


def _meta(html: str, attribute: str, name: str) -> str:
    marker = f'<meta {attribute}="{name}" content="'
    assert marker in html, name
    return html.split(marker, 1)[1].split('"', 1)[0]


@pytest.fixture
def picture(db):
    data = io.BytesIO()
    PILImage.new("RGB", (1600, 900), (11, 61, 92)).save(data, "JPEG")
    return get_image_model().objects.create(
        title="Quayside", description="The Quayside at dusk", file=ImageFile(data, name="quayside.jpg")
    )


def test_a_news_page_shares_its_title_introduction_and_listing_image(client, news_index, picture, settings):
    settings.SITE_URL = "https://netech.example"
    page = add_news(news_index, "Sunderland Software Centre expands", listing_image=picture)
    html = client.get(page.url).content.decode()
    assert _meta(html, "property", "og:title") == "Sunderland Software Centre expands"
    assert _meta(html, "property", "og:description") == "In short: Sunderland Software Centre expands."
    assert _meta(html, "property", "og:type") == "article"
    assert _meta(html, "property", "og:url") == f"https://netech.example{page.url}"
    image = _meta(html, "property", "og:image")
    assert image.startswith("https://netech.example/media/images/") and ".fill-1200x630" in image
    assert _meta(html, "property", "og:image:width") == "1200"
    assert _meta(html, "property", "og:image:alt") == "The Quayside at dusk"
    assert _meta(html, "name", "twitter:card") == "summary_large_image"
    assert _meta(html, "name", "twitter:title") == "Sunderland Software Centre expands"
    assert _meta(html, "name", "twitter:image") == image


def test_the_search_description_and_seo_title_win_when_editors_set_them(client, news_index):
    page = add_news(news_index, "Long headline", seo_title="Short title", search_description="For search engines")
    html = client.get(page.url).content.decode()
    assert _meta(html, "property", "og:title") == "Short title"
    assert _meta(html, "property", "og:description") == "For search engines"
    assert _meta(html, "name", "twitter:card") == "summary"


def test_other_views_share_the_site_itself(client, db, settings):
    settings.SITE_URL = "https://netech.example"
    html = client.get("/join/").content.decode()
    assert _meta(html, "property", "og:site_name") == "North East Tech Network"
    assert _meta(html, "property", "og:type") == "website"
    assert _meta(html, "property", "og:image") == "https://netech.example/static/img/logo.svg"


def test_a_members_only_page_shares_only_its_public_teaser(client, members_page, people):
    client.force_login(people.entitled)
    html = client.get(members_page.url).content.decode()
    assert _meta(html, "property", "og:description") == "How to get the most from membership."
    assert "QUAYSIDE-SECRET-42" not in html.split("</head>")[0]


def test_the_sitemap_lists_the_published_public_pages(client, news_index, directory):
    page = add_news(news_index, "Open news")
    sitemap = client.get("/sitemap.xml").content.decode()
    for listed in (page, news_index, directory):
        assert f"<loc>{listed.full_url}</loc>" in sitemap
