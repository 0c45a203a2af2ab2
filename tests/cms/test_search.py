"""Site search across news, success stories, board updates and standard pages."""

from cms.models import SuccessStoryPage
from tests.cms.conftest import add_news, paragraph, publish
from tests.factories import make_organisation


def test_it_finds_news_stories_and_pages_by_their_words(client, news_index, stories_index, home):
    add_news(news_index, "Gateshead Quays 5G testbed", body=paragraph("A private network for delivery robots."))
    publish(
        stories_index,
        SuccessStoryPage(
            title="First export order",
            organisation=make_organisation("Wearside Robotics"),
            introduction="Inspection robots head to Dutch wind farms.",
            body=paragraph("Twelve robots for offshore wind."),
        ),
    )
    add_news(news_index, "Salary survey", body=paragraph("Pay rose six per cent."))

    html = client.get("/search/?q=robots").content.decode()
    assert "2 results for “robots”." in html
    assert "Gateshead Quays 5G testbed" in html and "First export order" in html
    assert "Salary survey" not in html
    assert "Success story page" in html and "News page" in html
    assert "Inspection robots head to Dutch wind farms." in html  # the introduction, not the body


def test_an_empty_search_shows_the_form_and_a_miss_says_so(client, news_index):
    add_news(news_index, "Anything")
    html = client.get("/search/").content.decode()
    assert '<label for="search-q">' in html and "result" not in html
    assert "Nothing found for “zebra”" in client.get("/search/?q=zebra").content.decode()


def test_drafts_and_unpublished_pages_are_not_found(client, news_index):
    page = add_news(news_index, "Withdrawn announcement")
    page.unpublish()
    assert "Withdrawn announcement" not in client.get("/search/?q=withdrawn").content.decode()


def test_results_come_ten_to_a_page(client, news_index):
    for number in range(12):
        add_news(news_index, f"Digital skills update {number}")
    first = client.get("/search/?q=skills").content.decode()
    assert "12 results" in first and first.count('class="search-result__title"') == 10
    assert "?q=skills&amp;page=2" in first
    assert client.get("/search/?q=skills&page=2").content.decode().count('class="search-result__title"') == 2
