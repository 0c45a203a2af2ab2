"""An editor who may publish writes a news post in the back office, publishes it, and finds it on the home page."""

import re

import pytest
from playwright.sync_api import Page, expect

from cms.models import HomePage, NewsIndexPage, NewsPage
from cms.permissions import set_up_editorial_workflow
from tests.e2e.journeys import log_in_with_second_factor
from tests.factories import PASSWORD, make_staff, totp_secret

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_editor_publishes_a_news_post_that_appears_on_the_home_page(page: Page, live_server, settings):
    settings.SITE_URL = live_server.url
    base = live_server.url
    _, moderators, _ = set_up_editorial_workflow()
    editor = make_staff("jess.carter@netech.example", first_name="Jess", last_name="Carter")
    editor.groups.add(moderators)
    news = HomePage.objects.get().add_child(instance=NewsIndexPage(title="News", slug="news"))

    log_in_with_second_factor(page, base, editor.email, PASSWORD, totp_secret(editor))
    page.goto(f"{base}/admin/pages/{news.pk}/add_subpage/")
    expect(page.get_by_role("heading", name="New: News page")).to_be_visible(timeout=15_000)

    page.locator("#id_title").fill("Tees Valley opens a £2.4m digital skills fund")
    page.get_by_role("textbox", name="Introduction").fill("Employers can claim up to £20,000 towards training.")
    body = page.locator("[data-contentpath='body']")
    body.get_by_role("button", name="Insert a block").first.click()
    page.get_by_role("option", name="Rich text").click()
    body.get_by_role("textbox").first.click()
    page.keyboard.type("Applications open on the first of next month.")
    # The rich text editor saves what was typed into the form a moment later: publish only once it has.
    expect(body.locator("input[name='body-0-value']")).to_have_value(re.compile("first of next month"))

    page.get_by_role("button", name="More actions").click()
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status").filter(has_text="created and published")).to_be_visible()

    post = NewsPage.objects.get(title="Tees Valley opens a £2.4m digital skills fund")
    assert post.live and post.owner == editor

    page.goto(f"{base}/")
    latest = page.get_by_role("region", name="Latest news")
    expect(latest.get_by_role("link", name="Tees Valley opens a £2.4m digital skills fund")).to_be_visible()
    latest.get_by_role("link", name="Tees Valley opens a £2.4m digital skills fund").click()
    expect(page.get_by_text("Applications open on the first of next month.")).to_be_visible()
