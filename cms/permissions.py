"""Editors and moderators: who writes the site's pages, who publishes them, and the review between the two.

``set_up_editorial_workflow`` makes the "Editors" and "Moderators" groups and the "Moderators approval"
workflow what the site needs, and may run any number of times (``seed_demo`` runs it; in production run it
once from a shell, or set the same up in *Settings*). Wagtail's own migrations create both groups and the
workflow on a new database; this adds what the site's pages need on top and repairs anything missing:

- Editors write and edit pages anywhere on the site and submit them for moderation; they cannot publish.
- Moderators may also publish, unpublish, lock and unlock pages, and approve or reject what editors submit.
- Both may use images and documents and keep the news categories.
- Every page is under the "Moderators approval" workflow, whose one task Moderators approve.
"""

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from wagtail.models import GroupApprovalTask, GroupPagePermission, Page, Workflow, WorkflowPage

EDITORS = "Editors"
MODERATORS = "Moderators"
WORKFLOW = "Moderators approval"

EDITOR_PAGE_PERMISSIONS = ["add_page", "change_page"]
MODERATOR_PAGE_PERMISSIONS = [*EDITOR_PAGE_PERMISSIONS, "publish_page", "lock_page", "unlock_page"]
# (app label, codenames) every editor and moderator has besides page permissions.
SHARED_PERMISSIONS = [
    ("wagtailadmin", ["access_admin"]),
    ("wagtailimages", ["add_image", "change_image", "choose_image"]),
    ("wagtaildocs", ["add_document", "change_document", "choose_document"]),
    ("cms", ["add_newscategory", "change_newscategory", "delete_newscategory", "view_newscategory"]),
]


def _permissions(app_label: str, codenames: list[str]) -> list[Permission]:
    return list(Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))


def _grant_pages(group: Group, root: Page, codenames: list[str]) -> None:
    for permission in _permissions("wagtailcore", codenames):
        GroupPagePermission.objects.get_or_create(group=group, page=root, permission=permission)


@transaction.atomic
def set_up_editorial_workflow() -> tuple[Group, Group, Workflow]:
    """Make the Editors and Moderators groups and the moderation workflow right; returns all three."""
    root = Page.get_first_root_node()
    editors, _ = Group.objects.get_or_create(name=EDITORS)
    moderators, _ = Group.objects.get_or_create(name=MODERATORS)
    for group in (editors, moderators):
        for app_label, codenames in SHARED_PERMISSIONS:
            group.permissions.add(*_permissions(app_label, codenames))
    _grant_pages(editors, root, EDITOR_PAGE_PERMISSIONS)
    _grant_pages(moderators, root, MODERATOR_PAGE_PERMISSIONS)

    workflow, _ = Workflow.objects.get_or_create(name=WORKFLOW, defaults={"active": True})
    if not workflow.active:
        workflow.active = True
        workflow.save(update_fields=["active"])
    task = GroupApprovalTask.objects.filter(workflow_tasks__workflow=workflow).first()
    if task is None:
        task, _ = GroupApprovalTask.objects.get_or_create(name=WORKFLOW)
        workflow.workflow_tasks.create(task=task, sort_order=0)
    task.groups.add(moderators)
    WorkflowPage.objects.update_or_create(page=root, defaults={"workflow": workflow})
    return editors, moderators, workflow
