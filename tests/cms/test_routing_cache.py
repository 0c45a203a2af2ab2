"""Serving a page finds its site and its address from the cache (``cms.cache``): a news page then costs two
queries, and every change that moves an address, a site or a privacy setting is honoured on the next request."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from wagtail.models import PageViewRestriction, Site

from cms.models import StandardPage
from tests.cms.conftest import add_news, paragraph, publish

pytestmark = pytest.mark.django_db


def _served_with_queries(client, url: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    return response.status_code, len(queries)


def test_a_news_page_costs_one_query_once_its_address_and_tags_are_known(client, news_index):
    story = add_news(news_index, "Quayside opens")
    story.tags.add("funding")
    story.save_revision().publish()
    client.get("/join/")  # the header's navigation, kept in the cache for every page
    assert client.get(story.url).status_code == 200  # the site and the address are looked up once

    status, queries = _served_with_queries(client, story.url)

    assert status == 200
    assert queries == 1  # the page with its image and category (its tags are kept in the cache)


def test_the_news_index_link_needs_no_query_for_the_parent(client, news_index):
    story = add_news(news_index, "Quayside opens")
    response = client.get(story.url)
    assert response.context["index_url"] == news_index.url
    assert f'href="{news_index.url}"' in response.content.decode()


def test_a_page_moved_or_unpublished_is_found_at_its_new_address_or_not_at_all(client, home, news_index):
    story = add_news(news_index, "Quayside opens")
    old_url = story.url
    assert client.get(old_url).status_code == 200

    other = publish(home, StandardPage(title="Archive", slug="archive", body=paragraph("Old things.")))
    story.move(other, pos="last-child")
    story.refresh_from_db()
    moved = client.get(old_url)  # Wagtail leaves a redirect behind; the old address no longer serves the page
    assert moved.status_code == 301 and moved["Location"] == story.url
    assert client.get(story.url).status_code == 200

    story.unpublish()
    assert client.get(story.url).status_code == 404


def test_a_privacy_setting_added_after_a_page_was_served_applies_at_once(client, news_index):
    story = add_news(news_index, "Board minutes")
    assert client.get(story.url).status_code == 200  # "no page has a privacy setting" is now in the cache

    restriction = PageViewRestriction.objects.create(page=story, restriction_type=PageViewRestriction.GROUPS)
    restriction.groups.add(Group.objects.create(name="Board"))
    response = client.get(story.url)
    assert response.status_code == 302 and "login" in response["Location"]

    restriction.delete()
    assert client.get(story.url).status_code == 200


def test_a_privacy_setting_on_an_ancestor_covers_the_pages_below(client, news_index):
    story = add_news(news_index, "Board minutes")
    assert client.get(story.url).status_code == 200
    PageViewRestriction.objects.create(page=news_index, restriction_type=PageViewRestriction.LOGIN)
    response = client.get(story.url)
    assert response.status_code == 302 and "login" in response["Location"]


def test_a_site_changed_after_a_page_was_served_applies_at_once(client, home, news_index):
    story = add_news(news_index, "Quayside opens")
    assert client.get(story.url).status_code == 200

    # The site now starts at another root: the old page is no longer part of it.
    other_root = publish(home, StandardPage(title="Microsite", slug="microsite", body=paragraph("Elsewhere.")))
    site = Site.objects.get(is_default_site=True)
    site.root_page = other_root
    site.save()
    assert client.get("/news/quayside-opens/").status_code == 404
    assert b"Elsewhere." in client.get("/").content
