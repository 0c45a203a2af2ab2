"""Editors write and submit, moderators publish; pages go live on schedule; success stories count as activity."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.utils import timezone
from wagtail.models import GroupApprovalTask, Page, Workflow

from cms import tasks
from cms.models import NewsPage, SuccessStoryPage
from cms.permissions import EDITORS, MODERATORS, WORKFLOW, set_up_editorial_workflow
from membership.models import ActivityEvent, ActivityKind
from tests.cms.conftest import page_form, paragraph, publish
from tests.factories import make_organisation, make_staff


@pytest.fixture
def roles(db):
    editors, moderators, workflow = set_up_editorial_workflow()
    editor = make_staff("editor@netech.example")
    editor.groups.set([editors])
    moderator = make_staff("moderator@netech.example")
    moderator.groups.set([moderators])
    return editor, moderator, workflow


def test_setting_up_the_roles_twice_changes_nothing(db):
    set_up_editorial_workflow()
    counts = (Group.objects.count(), Workflow.objects.count(), GroupApprovalTask.objects.count())
    grants = sorted(Group.objects.get(name=EDITORS).permissions.values_list("codename", flat=True))
    set_up_editorial_workflow()
    assert (Group.objects.count(), Workflow.objects.count(), GroupApprovalTask.objects.count()) == counts
    assert sorted(Group.objects.get(name=EDITORS).permissions.values_list("codename", flat=True)) == grants
    assert "change_newscategory" in grants and "access_admin" in grants


def test_editors_may_not_publish_and_moderators_may(roles, news_index):
    editor, moderator, workflow = roles
    page = news_index.add_child(instance=NewsPage(title="Draft", body=paragraph("x"), live=False))
    assert page.get_workflow() == workflow and workflow.name == WORKFLOW
    assert not page.permissions_for_user(editor).can_publish()
    assert page.permissions_for_user(editor).can_edit()
    assert page.permissions_for_user(moderator).can_publish()
    assert list(workflow.tasks.get().specific.groups.all()) == [Group.objects.get(name=MODERATORS)]


def test_an_editor_submits_a_story_and_a_moderator_publishes_it(client, roles, news_index):
    editor, moderator, _ = roles
    client.force_login(editor)
    form = page_form("Funding opens", "<p>Grants for start-ups.</p>", date="2026-11-20")
    form["action-publish"] = "action-publish"  # not theirs to use: it is treated as a save
    response = client.post(f"/admin/pages/add/cms/newspage/{news_index.pk}/", form)
    assert response.status_code == 302
    page = NewsPage.objects.get(title="Funding opens")
    assert not page.live

    form.pop("action-publish")
    form["action-submit"] = "action-submit"
    assert client.post(f"/admin/pages/{page.pk}/edit/", form).status_code == 302
    page.refresh_from_db()
    assert not page.live and page.current_workflow_task is not None
    assert client.get(page.url or "/news/funding-opens/").status_code == 404

    client.force_login(moderator)
    form.pop("action-submit")
    form.update({"action-workflow-action": "true", "workflow-action-name": "approve"})
    assert client.post(f"/admin/pages/{page.pk}/edit/", form).status_code == 302
    page.refresh_from_db()
    assert page.live
    client.logout()
    assert "Grants for start-ups." in client.get(page.url).content.decode()


def test_a_page_scheduled_to_go_live_is_published_by_the_periodic_task(client, news_index, monkeypatch):
    page = news_index.add_child(instance=NewsPage(title="Embargoed", body=paragraph("x"), live=False))
    page.go_live_at = timezone.now() + timedelta(hours=1)
    page.save_revision().publish()
    page.refresh_from_db()
    assert not page.live

    tasks.publish_scheduled_pages.delay()
    assert not Page.objects.get(pk=page.pk).live  # not yet

    two_hours_on = timezone.now() + timedelta(hours=2)
    monkeypatch.setattr("django.utils.timezone.now", lambda: two_hours_on)
    tasks.publish_scheduled_pages.delay()
    assert Page.objects.get(pk=page.pk).live
    assert client.get("/news/embargoed/").status_code == 200


def test_beat_runs_scheduled_publishing_every_minute():
    entry = settings.CELERY_BEAT_SCHEDULE["publish-scheduled-pages"]
    assert entry["task"] == "cms.tasks.publish_scheduled_pages"
    assert str(entry["schedule"]) == str(__import__("celery.schedules", fromlist=["crontab"]).crontab())


def test_publishing_a_success_story_counts_once_for_its_organisation(stories_index):
    organisation = make_organisation("Wearside Robotics")
    story = publish(
        stories_index, SuccessStoryPage(title="First export", organisation=organisation, body=paragraph("x"))
    )
    story.title = "First export order"
    story.save_revision().publish()
    story.save_revision().publish()

    events = ActivityEvent.objects.filter(kind=ActivityKind.STORY_PUBLISHED)
    assert events.count() == 1
    assert events.get().organisation == organisation and events.get().detail == "First export"
    assert events.get().person is None


def test_a_story_without_an_organisation_counts_for_nobody(stories_index):
    publish(stories_index, SuccessStoryPage(title="The region's year", body=paragraph("x")))
    assert not ActivityEvent.objects.filter(kind=ActivityKind.STORY_PUBLISHED).exists()
