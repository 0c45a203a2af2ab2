"""The page cache: public pages served to anonymous visitors from the cache, purged whenever a page changes."""

import pytest
from django.db import transaction
from wagtail.models import PageViewRestriction

from cms.cache import purge_pages
from cms.models import NewsIndexPage, NewsPage, StandardPage
from tests.cms.conftest import add_news, paragraph, publish


@pytest.fixture
def page_cache(settings):
    settings.PAGE_CACHE = True


def _served(client, url: str) -> tuple[str, str]:
    response = client.get(url)
    assert response.status_code == 200
    return response.get("X-Page-Cache", ""), response.content.decode()


def test_it_is_off_unless_the_setting_turns_it_on(client, news_index):
    page = add_news(news_index, "Quayside news")
    assert client.get(page.url).get("X-Page-Cache") is None
    assert client.get(page.url).get("X-Page-Cache") is None


def test_a_page_cached_while_a_publish_was_under_way_is_not_served_once_it_commits(
    client, news_index, page_cache, django_capture_on_commit_callbacks
):
    page = add_news(news_index, "Quayside news")
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        purge_pages()  # as a publish does, inside its transaction
        assert _served(client, page.url)[0] == "miss"  # a request in between reads and keeps the page as it was
        assert _served(client, page.url)[0] == "hit"
    assert _served(client, page.url)[0] == "miss"


def test_anonymous_visitors_get_the_stored_page(client, news_index, page_cache, django_assert_num_queries):
    page = add_news(news_index, "Quayside news")
    assert _served(client, page.url)[0] == "miss"
    with django_assert_num_queries(0):
        state, html = _served(client, page.url)
    assert state == "hit"
    assert "<h1>Quayside news</h1>" in html
    # The security headers are added to a stored page as to any other.
    response = client.get(page.url)
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["Content-Type"] == "text/html; charset=utf-8"


def test_each_address_is_stored_on_its_own(client, news_index, page_cache):
    for number in range(12):
        add_news(news_index, f"Story {number}")
    assert _served(client, news_index.url)[0] == "miss"
    assert _served(client, f"{news_index.url}?page=2")[0] == "miss"
    assert "Story 0" in _served(client, f"{news_index.url}?page=2")[1]
    assert "Story 0" not in _served(client, news_index.url)[1]


def test_logged_in_people_are_never_served_from_it(client, news_index, page_cache, member):
    page = add_news(news_index, "Quayside news")
    _served(client, page.url)
    client.force_login(member)
    state, html = _served(client, page.url)
    assert state == ""
    assert "Log out" in html  # their own header, not the anonymous one


def test_publishing_a_change_purges_it(client, news_index, page_cache):
    page = add_news(news_index, "Quayside news")
    _served(client, page.url)
    _served(client, "/")
    assert _served(client, page.url)[0] == "hit"

    page.title = "Quayside news, updated"
    page.save_revision().publish()
    state, html = _served(client, page.url)
    assert state == "miss" and "Quayside news, updated" in html
    # Other pages that list it are purged too: the home page shows the new title.
    assert "Quayside news, updated" in _served(client, "/")[1]


def test_unpublishing_moving_and_deleting_purge_it(client, home, news_index, page_cache):
    page = add_news(news_index, "Quayside news")
    _served(client, news_index.url)
    page.unpublish()
    assert "Quayside news" not in _served(client, news_index.url)[1]

    about = publish(home, StandardPage(title="About", slug="about", body=paragraph("Who we are")))
    _served(client, about.url)
    other = publish(home, StandardPage(title="Other", slug="other", body=paragraph("x")))
    about.move(other, pos="last-child")
    # The stored copy at the old address is gone: Wagtail now redirects it to the new one.
    assert client.get("/about/")["Location"] == "/other/about/"
    assert _served(client, "/other/about/")[0] == "miss"

    _served(client, "/other/about/")
    about.refresh_from_db()
    about.delete()
    assert client.get("/other/about/").status_code == 404


def test_members_only_and_privately_restricted_pages_are_never_stored(client, home, members_page, page_cache):
    assert client.get(members_page.url).status_code == 302
    assert client.get(members_page.url).get("X-Page-Cache") is None

    private = publish(home, StandardPage(title="Board pack", slug="pack", body=paragraph("x")))
    PageViewRestriction.objects.create(page=private, restriction_type=PageViewRestriction.LOGIN)
    assert client.get(private.url).status_code == 302
    assert client.get(private.url).get("X-Page-Cache") is None


def test_the_directory_is_never_stored_so_profile_changes_show_at_once(client, directory, page_cache):
    assert client.get(directory.url).get("X-Page-Cache") is None
    assert client.get(directory.url).get("X-Page-Cache") is None


def test_a_visitor_with_a_message_waiting_is_not_served_from_it(client, news_index, page_cache):
    page = add_news(news_index, "Quayside news")
    _served(client, page.url)
    client.cookies["messages"] = "anything"
    assert client.get(page.url).get("X-Page-Cache") is None


def test_a_page_created_in_code_appears_in_stored_listings(client, home, page_cache):
    index = publish(home, NewsIndexPage(title="News", slug="news"))
    _served(client, index.url)
    index.add_child(instance=NewsPage(title="Added directly", body=paragraph("x")))
    assert "Added directly" in _served(client, index.url)[1]
