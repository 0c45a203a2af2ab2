"""Every page type is created in the back office and renders; listings and the home page show what they should
at a fixed number of queries."""

import re
from unittest.mock import patch

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from taggit.models import Tag
from wagtail.models import Page
from wagtail.test.utils.form_data import inline_formset

from cms.blocks import CallToActionBlock
from cms.models import (
    BoardAction,
    BoardUpdatePage,
    DirectoryPage,
    NewsCategory,
    NewsIndexPage,
    NewsPage,
    SuccessStoryPage,
)
from tests.cms.conftest import add_news, page_form, paragraph, publish
from tests.factories import make_organisation

TODAY = "2026-11-20"

# (model, parent fixture, extra form fields, text the published page shows)
PAGE_TYPES = [
    ("newsindexpage", "home", {"introduction": "All the news."}, "All the news."),
    ("newspage", "news_index", {"date": TODAY, "introduction": "A short intro."}, "A short intro."),
    ("boardupdateindexpage", "home", {"introduction": "What the board decides."}, "What the board decides."),
    (
        "boardupdatepage",
        "board_index",
        {
            "meeting_date": TODAY,
            "attendees": "Dr Amina Yusuf, chair",
            "topics": "Events programme",
            "actions": inline_formset([{"action": "Draft the calendar", "owner": "Membership team", "due_date": ""}]),
        },
        "Draft the calendar",
    ),
    ("successstoryindexpage", "home", {"introduction": "The region's successes."}, "The region&#x27;s successes."),
    ("successstorypage", "stories_index", {"date": TODAY, "introduction": "A first export."}, "A first export."),
    ("standardpage", "home", {"introduction": "Who we are."}, "Who we are."),
    ("directorypage", "home", {"introduction": "Our members."}, "Our members."),
]


@pytest.mark.parametrize(("model", "parent", "fields", "shows"), PAGE_TYPES)
def test_every_page_type_is_created_and_published_in_the_back_office_and_renders(
    client, superuser, request, model, parent, fields, shows
):
    parent_page = request.getfixturevalue(parent)
    client.force_login(superuser)
    has_body = model in {"newspage", "boardupdatepage", "successstorypage", "standardpage"}
    form = page_form(f"A new {model}", "<p>Body words</p>" if has_body else None, **fields)
    form["action-publish"] = "action-publish"

    response = client.post(f"/admin/pages/add/cms/{model}/{parent_page.pk}/", form)
    assert response.status_code == 302, response.context["form"].errors if response.context else response

    page = Page.objects.get(title=f"A new {model}").specific
    assert page.live and page._meta.model_name == model
    client.logout()
    html = client.get(page.url).content.decode()
    assert f"<h1>A new {model}</h1>" in html
    assert shows in html
    if has_body:
        assert "Body words</p>" in html


def test_the_back_office_refuses_a_call_to_action_with_both_a_page_and_an_address(home):
    from wagtail.blocks.struct_block import StructBlockValidationError

    block = CallToActionBlock()
    value = block.to_python({"heading": "Join", "button_label": "Go", "page": home.pk, "url": "https://x.example"})
    with pytest.raises(StructBlockValidationError):
        block.clean(value)
    neither = block.to_python({"heading": "Join", "button_label": "Go", "page": None, "url": ""})
    with pytest.raises(StructBlockValidationError):
        block.clean(neither)


def test_a_body_renders_every_block_type_through_its_template(client, news_index, home):
    body = [
        {"type": "paragraph", "value": "<h2>Funding</h2><p>Grants open.</p>"},
        {"type": "quote", "value": {"quote": "It paid for itself.", "attribution": "Amara", "role": "Founder"}},
        {"type": "image", "value": {"image": None, "caption": "A caption without a picture", "attribution": ""}},
        {
            "type": "call_to_action",
            "value": {"heading": "Join us", "text": "", "button_label": "Join", "page": home.pk, "url": ""},
        },
    ]
    page = add_news(news_index, "Blocks", body=body)
    html = client.get(page.url).content.decode()
    assert "<h2>Funding</h2><p>Grants open.</p>" in html
    assert "<blockquote><p>It paid for itself.</p></blockquote>" in html
    assert 'Amara, <span class="block-quote__role">Founder</span>' in html
    assert "<figcaption>A caption without a picture</figcaption>" in html
    assert '<a class="button" href="/">Join</a>' in html


def test_every_block_offers_a_preview_in_the_block_picker():
    from cms.blocks import BaseStreamBlock

    for name, block in BaseStreamBlock().child_blocks.items():
        assert block.meta.template == f"blocks/{name}_block.html"
        assert block.get_description(), name
        assert hasattr(block.meta, "preview_value"), name


def test_the_news_index_filters_by_category_and_tag_and_pages_ten_at_a_time(client, news_index):
    funding = NewsCategory.objects.create(name="Funding")
    for number in range(12):
        page = NewsPage(title=f"Story {number}", category=funding if number < 3 else None)
        if number % 4 == 0:
            page.tags.add("Teesside")
        publish(news_index, page)

    first = client.get(news_index.url).content.decode()
    assert first.count('class="card teaser"') == 10
    assert "Page 1 of 2" in first and "?page=2" in first
    assert client.get(f"{news_index.url}?page=2").content.decode().count('class="card teaser"') == 2
    assert client.get(f"{news_index.url}?page=99").status_code == 200

    by_category = client.get(f"{news_index.url}?category=funding").content.decode()
    assert by_category.count('class="card teaser"') == 3 and "Showing Funding" in by_category
    by_tag = client.get(f"{news_index.url}?tag=teesside").content.decode()
    assert by_tag.count('class="card teaser"') == 3


def _queries(client, url: str) -> int:
    """Queries for a request once caches are warm (publishing purges the navigation, rebuilt on the next view)."""
    client.get(url)
    with CaptureQueriesContext(connection) as context:
        assert client.get(url).status_code == 200
    return len(context.captured_queries)


def test_the_news_index_and_a_news_page_run_the_same_queries_when_the_news_grows_tenfold(client, news_index):
    funding = NewsCategory.objects.create(name="Funding")

    def add(count: int) -> NewsPage:
        for number in range(count):
            page = NewsPage(title=f"Story {NewsPage.objects.count()}", category=funding, body=paragraph("Words"))
            page.tags.add("skills", f"tag-{number}")
            publish(news_index, page)
        return NewsPage.objects.order_by("-pk").first()

    page = add(3)
    small = (_queries(client, news_index.url), _queries(client, page.url), _queries(client, "/"))
    page = add(27)
    assert (_queries(client, news_index.url), _queries(client, page.url), _queries(client, "/")) == small


def _tags_shown(html: str) -> list[str]:
    return re.findall(r'<li><a href="[^"]*\?tag=[^"]*">([^<]*)</a></li>', html)


def test_a_news_page_shows_its_tags_as_last_published_and_a_preview_shows_the_drafts(client, news_index):
    body = [
        *paragraph("Words"),
        {
            "type": "call_to_action",
            "value": {"heading": "Join us", "text": "", "button_label": "Join", "page": None, "url": "https://x.org/"},
        },
    ]
    page = NewsPage(title="Tagged", body=body)
    page.tags.add("skills", "Teesside")
    page = publish(news_index, page)
    assert sorted(_tags_shown(client.get(page.url).content.decode())) == ["Teesside", "skills"]

    draft = page.get_latest_revision_as_object()
    draft.tags.set(["funding"])
    revision = draft.save_revision()
    assert sorted(_tags_shown(client.get(page.url).content.decode())) == ["Teesside", "skills"]  # a draft only
    assert _tags_shown(draft.make_preview_request().content.decode()) == ["funding"]

    revision.publish()
    assert _tags_shown(client.get(page.url).content.decode()) == ["funding"]

    page.refresh_from_db()
    page.tags.add("Wearside")  # tags written by code, without a publish
    page.save()
    assert sorted(_tags_shown(client.get(page.url).content.decode())) == ["Wearside", "funding"]

    tag = Tag.objects.get(name="funding")  # renamed by staff
    tag.name, tag.slug = "Grants", "grants"
    tag.save()
    assert sorted(_tags_shown(client.get(page.url).content.decode())) == ["Grants", "Wearside"]


def test_an_empty_page_link_in_a_body_builds_no_page_query(home):
    from cms.blocks import OptionalPageChooserBlock

    block = OptionalPageChooserBlock(required=False)
    with patch.object(type(Page.objects), "in_bulk", side_effect=AssertionError("a query for no pages")):
        assert block.bulk_to_python([None, None]) == [None, None]
    assert block.bulk_to_python([None, home.pk, None]) == [None, home.page_ptr, None]


def test_a_board_update_shows_attendees_topics_decisions_and_actions(client, board_index):
    page = BoardUpdatePage(
        title="October meeting",
        attendees="Dr Amina Yusuf, chair\nMark Jennings",
        topics="Events programme\nPerks",
        decisions="<ul><li>Four events in Teesside</li></ul>",
        body=paragraph("Attendance rose by a third."),
    )
    page.actions = [BoardAction(action="Draft the spring calendar", owner="Membership team")]
    publish(board_index, page)
    html = client.get(page.url).content.decode()
    for text in (
        "<li>Dr Amina Yusuf, chair</li>",
        "<li>Mark Jennings</li>",
        "<li>Perks</li>",
        "<li>Four events in Teesside</li>",
        "Attendance rose by a third.",
        "<td>Draft the spring calendar</td><td>Membership team</td>",
    ):
        assert text in html
    assert "October meeting" in client.get(board_index.url).content.decode()


def test_the_home_page_shows_the_latest_news_and_a_success_story(client, news_index, stories_index):
    for number in range(5):
        add_news(news_index, f"News {number}", days_ago=number)
    organisation = make_organisation("Wearside Robotics")
    publish(stories_index, SuccessStoryPage(title="First export order", organisation=organisation, body=paragraph("x")))

    html = client.get("/").content.decode()
    assert "Latest news" in html
    assert all(f"News {number}" in html for number in range(3))
    assert "News 3" not in html  # the three newest only
    assert "First export order" in html and "Wearside Robotics" in html
    # Nothing to show yet: the events and perks sections stay out.
    assert "Upcoming events" not in html and "Member perks" not in html


def test_the_navigation_links_to_news_and_the_directory_once_they_are_published(client, home):
    assert 'href="/news/"' not in client.get("/").content.decode()
    news = publish(home, NewsIndexPage(title="News", slug="news"))
    nav = client.get("/").content.decode().split('aria-label="Main"')[1].split("</nav>")[0]
    assert '<a href="/news/">News</a>' in nav
    assert "Directory" not in nav

    publish(home, DirectoryPage(title="Member directory", slug="members"))
    assert '<a href="/members/">Directory</a>' in client.get("/").content.decode()

    news.unpublish()
    assert 'href="/news/"' not in client.get("/").content.decode()


def test_a_page_is_found_by_its_address_in_two_queries_as_wagtail_would_find_it(rf, home, news_index):
    from django.http import Http404

    page = add_news(news_index, "Quayside", category=NewsCategory.objects.create(name="Funding"))
    request = rf.get(page.url)
    with CaptureQueriesContext(connection) as queries:
        found = home.route(request, ["news", page.slug])
        assert found.page.category.name == "Funding"  # fetched alongside
    assert len(queries) == 2
    assert found.page == page and isinstance(found.page, NewsPage)
    assert Page.route(home, request, ["news", page.slug]).page == found.page  # Wagtail's own routing agrees

    assert home.route(request, ["news"]).page.specific == news_index  # other types: Wagtail's routing
    with pytest.raises(Http404):
        home.route(request, ["news", "no-such-story"])
    page.unpublish()
    with pytest.raises(Http404):
        home.route(request, ["news", page.slug])


def test_a_youtube_embed_plays_from_the_privacy_enhanced_host_the_policy_allows(client, news_index):
    from wagtail.embeds.embeds import get_embed_hash
    from wagtail.embeds.models import Embed

    url = "https://www.youtube.com/watch?v=quayside"
    # What Wagtail's finder would have fetched from YouTube, stored as it stores every embed.
    Embed.objects.create(
        url=url,
        hash=get_embed_hash(url),
        type="video",
        html='<iframe src="https://www.youtube.com/embed/quayside" title="Quayside summit"></iframe>',
    )
    page = add_news(news_index, "Summit video", body=[{"type": "embed", "value": url}])
    response = client.get(page.url)
    html = response.content.decode()
    assert '<iframe src="https://www.youtube-nocookie.com/embed/quayside"' in html
    assert "https://www.youtube-nocookie.com" in response["Content-Security-Policy"]


def test_the_home_page_shows_the_next_events_and_featured_perks(client, home):
    from datetime import timedelta

    from benefits.models import Category, Perk, Provider
    from tests.factories import make_event

    make_event("Past breakfast", starts_in=timedelta(days=-10))
    for days in (3, 1, 20, 40):
        make_event(f"Event in {days} days", starts_in=timedelta(days=days))
    provider = Provider.objects.create(name="Cloudforge", slug="cloudforge")
    for title, featured in (("Cloud credits", True), ("Quiet deal", False)):
        Perk.objects.create(
            provider=provider, title=title, slug=title.lower().replace(" ", "-"), category=Category.SOFTWARE,
            summary="s", value_line="20% off", method=Perk.Method.LINK, redemption_url="https://x.example/secret",
            status=Perk.Status.PUBLISHED, featured=featured,
        )  # fmt: skip

    html = client.get("/").content.decode()

    assert "Upcoming events" in html
    assert html.index("Event in 1 days") < html.index("Event in 3 days") < html.index("Event in 20 days")
    assert "Event in 40 days" not in html and "Past breakfast" not in html
    assert "Member perks" in html and "Cloud credits" in html and "20% off" in html
    assert "Quiet deal" not in html
    assert "https://x.example/secret" not in html
