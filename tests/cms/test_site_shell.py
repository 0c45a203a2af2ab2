import pytest
from wagtail.models import Page, Site

from cms.models import HomePage
from tests.factories import make_organisation


@pytest.mark.django_db
def test_the_home_page_is_the_site_root(client):
    site = Site.objects.get(is_default_site=True)
    assert isinstance(site.root_page.specific, HomePage)
    make_organisation("Tyne Analytics", town="Gateshead")
    make_organisation("Wearside Robotics", town="Sunderland")

    html = client.get("/").content.decode()
    assert "<h1>The North East&#x27;s tech community</h1>" in html
    assert '<span class="stat__value">2</span><span class="stat__label">member organisations' in html
    assert '<a class="skip-link" href="#main">' in html
    assert '<nav class="site-nav" aria-label="Main">' in html
    assert '<footer class="site-footer">' in html


@pytest.mark.django_db
def test_the_header_offers_log_in_or_the_account(client, member):
    html = client.get("/").content.decode()
    assert 'href="/accounts/login/"' in html
    assert "Log out" not in html
    client.force_login(member)
    html = client.get("/").content.decode()
    assert "Log out" in html and 'href="/my/account/"' in html and 'href="/my/"' in html


@pytest.mark.django_db
def test_the_home_page_runs_a_fixed_number_of_queries(client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        client.get("/")  # navigation addresses are looked up once, then kept until a page is published
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/").status_code == 200
        return len(captured)

    for number in range(3):
        make_organisation(f"Organisation {number}", town=f"Town {number % 7}")
    few = queries()
    for number in range(3, 30):
        make_organisation(f"Organisation {number}", town=f"Town {number % 7}")
    assert queries() == few
    assert few <= 16


@pytest.mark.django_db
def test_the_home_page_is_edited_in_the_back_office(client, superuser):
    client.force_login(superuser)
    home = HomePage.objects.get()
    response = client.get(f"/admin/pages/{home.pk}/edit/")
    assert response.status_code == 200
    assert b"Hero" in response.content
    assert Page.objects.filter(depth=2).count() == 1


@pytest.mark.django_db
def test_the_back_office_makes_no_calls_to_gravatar(client, superuser):
    client.force_login(superuser)
    for path in ("/admin/", "/admin/users/", "/admin/account/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert b"gravatar" not in response.content.lower(), path


@pytest.mark.django_db
def test_unknown_pages_get_the_site_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"Page not found" in response.content
    assert b'class="site-header"' in response.content


@pytest.mark.django_db
def test_the_sitemap_lists_the_home_page(client):
    response = client.get("/sitemap.xml")
    assert response.status_code == 200
    assert b"<urlset" in response.content


def test_robots_txt_keeps_crawlers_out_of_private_areas(client, settings):
    settings.SITE_URL = "https://members.example.org"
    response = client.get("/robots.txt")
    assert response["Content-Type"] == "text/plain"
    body = response.content.decode()
    for path in ("/admin/", "/my/", "/accounts/"):
        assert f"Disallow: {path}" in body
    assert "Sitemap: https://members.example.org/sitemap.xml" in body
