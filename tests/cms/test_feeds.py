"""The news feeds: valid RSS 2.0 and Atom 1.0, newest first, linked from the news index and every page's head."""

import feedparser
import pytest

from cms.models import NewsCategory
from tests.cms.conftest import add_news, paragraph


@pytest.fixture
def news(news_index):
    funding = NewsCategory.objects.create(name="Funding")
    older = add_news(news_index, "Tees Valley skills fund opens", days_ago=5, category=funding, author="Hannah Ridley")
    older.tags.add("skills")
    older.save_revision().publish()
    newer = add_news(news_index, "Cyber firms grew by a fifth", days_ago=1)
    secret = add_news(
        news_index,
        "Salary survey",
        days_ago=3,
        members_only=True,
        introduction="The survey's results, for members.",
        body=paragraph("Median pay MEMBERS-ONLY-FIGURE"),
    )
    return newer, older, secret


@pytest.mark.parametrize(("url", "version"), [("/feeds/news/rss/", "rss20"), ("/feeds/news/atom/", "atom10")])
def test_the_feeds_parse_as_valid_rss_and_atom(client, news, url, version):
    newer, _older, _secret = news
    response = client.get(url)
    assert response.status_code == 200
    feed = feedparser.parse(response.content)
    assert feed.bozo is False, feed.get("bozo_exception")
    assert feed.version == version
    assert feed.feed.title == "North East Tech Network: news"
    assert [entry.title for entry in feed.entries] == [
        "Cyber firms grew by a fifth",
        "Salary survey (members only)",
        "Tees Valley skills fund opens",
    ]
    first, members_only, last = feed.entries
    assert first.link == f"http://testserver{newer.url}"
    assert first.summary == "In short: Cyber firms grew by a fifth."
    assert last.author == "Hannah Ridley"
    assert {tag.term for tag in last.tags} == {"Funding", "skills"}
    # A members-only story is announced by its public introduction; its body never goes out.
    assert members_only.summary == "The survey's results, for members."
    assert b"MEMBERS-ONLY-FIGURE" not in response.content
    assert b"full story" not in response.content  # feeds carry introductions, not bodies


def test_the_news_index_and_every_page_link_to_the_feeds(client, news_index):
    index = client.get(news_index.url).content.decode()
    assert '<a href="/feeds/news/rss/">RSS feed</a>' in index
    assert '<a href="/feeds/news/atom/">Atom feed</a>' in index
    head = client.get("/join/").content.decode().split("</head>")[0]
    assert '<link rel="alternate" type="application/rss+xml"' in head and 'href="/feeds/news/rss/"' in head
    assert '<link rel="alternate" type="application/atom+xml"' in head and 'href="/feeds/news/atom/"' in head
