"""The demo site: news, board updates, success stories, an About page and the directory, loaded idempotently."""

import pytest
from django.core.management import call_command
from wagtail.models import Page, Revision

from cms.models import BoardUpdatePage, DirectoryPage, NewsPage, StandardPage, SuccessStoryPage
from membership.models import ActivityEvent, ActivityKind


@pytest.mark.django_db
def test_seed_demo_builds_the_site_once(client, capsys):
    call_command("seed_demo", orgs=20, quiet_login=True)
    counts = (Page.objects.count(), Revision.objects.count(), ActivityEvent.objects.count())
    call_command("seed_demo", orgs=20, quiet_login=True)
    assert (Page.objects.count(), Revision.objects.count(), ActivityEvent.objects.count()) == counts

    assert NewsPage.objects.live().count() >= 8
    assert BoardUpdatePage.objects.live().count() >= 3
    assert BoardUpdatePage.objects.filter(members_only=True).count() == 1
    stories = SuccessStoryPage.objects.live()
    assert stories.count() >= 4 and not stories.filter(organisation__isnull=True).exists()
    # The engagement demo adds a history of its own (keys "demo:..."); each story records its own once.
    published = ActivityEvent.objects.filter(kind=ActivityKind.STORY_PUBLISHED).exclude(key__startswith="demo:")
    assert published.count() == stories.count()
    assert StandardPage.objects.get(slug="about").live
    assert DirectoryPage.objects.live().exists()
    assert "10 news stories, 3 board updates, 5 success stories" in capsys.readouterr().out

    for url in ("/", "/news/", "/advisory-board/", "/success-stories/", "/about/", "/directory/"):
        assert client.get(url).status_code == 200, url
    html = client.get("/").content.decode()
    assert "Latest news" in html and "A North East success" in html
    assert client.get("/advisory-board/board-meeting-budget-and-fees/").status_code == 302
