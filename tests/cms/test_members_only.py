"""Members-only pages: who may read them, what everyone else is told, and what never leaks."""

from datetime import timedelta

import pytest
from django.utils import timezone

from cms.models import BoardUpdatePage, NewsPage
from membership.models import ActivityEvent, ActivityKind
from tests.cms.conftest import add_news, page_form, paragraph, publish
from tests.factories import make_staff

SECRET = "QUAYSIDE-SECRET-42"


def test_anonymous_visitors_are_sent_to_log_in(client, members_page):
    response = client.get(members_page.url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={members_page.url}"


@pytest.mark.parametrize(
    ("person", "reason"),
    [
        ("no_organisation", "your account does not belong to an organisation yet"),
        ("no_subscription", "Never Joined is not a member yet"),
        ("pending", "New Co is not a member yet"),
        ("lapsed", "Lapsed Labs's membership has lapsed"),
    ],
)
def test_people_without_a_current_membership_are_told_why_and_shown_the_way_to_join(
    client, members_page, people, person, reason
):
    client.force_login(getattr(people, person))
    response = client.get(members_page.url)
    assert response.status_code == 403
    html = response.content.decode()
    assert reason in html
    assert 'href="/join/"' in html
    assert SECRET not in html
    assert members_page.introduction in html  # the public teaser, so they know what they are missing
    assert not ActivityEvent.objects.filter(kind=ActivityKind.PAGE_READ).exists()


def test_a_member_on_another_tier_is_refused_and_told_which_tiers_may_read(client, news_index, people):
    page = publish(
        news_index,
        NewsPage(title="Scale members' briefing", slug="briefing", body=paragraph(SECRET), members_only=True),
    )
    page.tiers.set([people.scale])
    page.save_revision().publish()

    client.force_login(people.entitled)
    response = client.get(page.url)
    assert response.status_code == 403
    assert "This page is for Scale members, and Tyne Analytics is a Growth member." in response.content.decode()
    assert SECRET not in response.content.decode()

    client.force_login(people.scale_member)
    response = client.get(page.url)
    assert response.status_code == 200
    assert SECRET in response.content.decode()


@pytest.mark.parametrize("person", ["entitled", "in_grace"])
def test_members_of_an_entitled_organisation_read_the_page(client, members_page, people, person):
    client.force_login(getattr(people, person))
    response = client.get(members_page.url)
    assert response.status_code == 200
    assert SECRET in response.content.decode()
    # What one member reads is never kept by a shared cache for the next visitor.
    assert "private" in response["Cache-Control"]


def test_staff_can_read_members_only_pages_to_check_what_they_publish(client, members_page):
    client.force_login(make_staff("editor@netech.example"))
    assert SECRET in client.get(members_page.url).content.decode()


def test_a_lapsed_organisation_loses_access(client, members_page, people):
    client.force_login(people.entitled)
    assert client.get(members_page.url).status_code == 200
    people.entitled.memberships.get().organisation.subscriptions.update(status="lapsed")
    assert client.get(members_page.url).status_code == 403


def test_a_read_counts_once_per_person_page_and_day(client, members_page, people, monkeypatch):
    client.force_login(people.entitled)
    for _ in range(3):
        assert client.get(members_page.url).status_code == 200
    reads = ActivityEvent.objects.filter(kind=ActivityKind.PAGE_READ)
    assert reads.count() == 1
    read = reads.get()
    assert read.person == people.entitled
    assert read.organisation.name == "Tyne Analytics"
    assert read.detail == "Members' guide"

    tomorrow = timezone.localdate() + timedelta(days=1)
    monkeypatch.setattr("django.utils.timezone.localdate", lambda *args, **kwargs: tomorrow)
    client.get(members_page.url)
    client.get(members_page.url)
    assert reads.count() == 2


def test_public_pages_record_no_reads(client, news_index, people):
    page = add_news(news_index, "Open news")
    client.force_login(people.entitled)
    assert client.get(page.url).status_code == 200
    assert not ActivityEvent.objects.filter(kind=ActivityKind.PAGE_READ).exists()


def test_listings_search_and_feeds_show_the_teaser_but_never_the_body(client, news_index, board_index, people):
    news = add_news(news_index, "Salary survey results", body=paragraph(f"Median pay {SECRET}"), members_only=True)
    board = publish(
        board_index,
        BoardUpdatePage(
            title="Budget meeting",
            slug="budget",
            introduction="The board's budget discussion.",
            attendees=f"Treasurer {SECRET}",
            topics=f"Fees {SECRET}",
            decisions=f"<p>Raise fees {SECRET}</p>",
            body=paragraph(SECRET),
            members_only=True,
        ),
    )
    for url in (news_index.url, board_index.url, "/", "/feeds/news/rss/", "/feeds/news/atom/", "/sitemap.xml"):
        html = client.get(url).content.decode()
        assert SECRET not in html, url
    assert "Salary survey results" in client.get(news_index.url).content.decode()
    assert "Members only" in client.get(news_index.url).content.decode()
    assert "Budget meeting" in client.get(board_index.url).content.decode()

    # Search finds them by title, never by what their bodies say, whoever searches.
    client.force_login(people.entitled)
    assert "Salary survey results" in client.get("/search/?q=salary").content.decode()
    found = client.get(f"/search/?q={SECRET}").content.decode()
    assert "Nothing found" in found and news.title not in found and board.title not in found


def test_members_only_pages_are_left_out_of_the_sitemap(client, news_index, members_page):
    public = add_news(news_index, "Open news")
    sitemap = client.get("/sitemap.xml").content.decode()
    assert public.full_url in sitemap
    assert members_page.full_url not in sitemap


def test_editors_preview_a_members_only_draft(client, news_index, superuser):
    page = publish(news_index, NewsPage(title="Briefing", slug="briefing", body=paragraph("Old"), members_only=True))
    client.force_login(superuser)
    form = page_form("Briefing", f"<p>{SECRET}</p>", date="2026-11-20", members_only="on")
    checked = client.post(f"/admin/pages/{page.pk}/edit/preview/", form)
    assert checked.json() == {"is_valid": True, "is_available": True}
    response = client.get(f"/admin/pages/{page.pk}/edit/preview/")
    assert response.status_code == 200
    assert SECRET in response.content.decode()
    assert not ActivityEvent.objects.filter(kind=ActivityKind.PAGE_READ).exists()
