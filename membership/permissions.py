"""The membership team's permissions in the back office, granted to a group in one call."""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

# model name -> the actions the membership team may take on it in the staff CRM.
MEMBERSHIP_TEAM_PERMISSIONS = {
    "organisation": ["view", "add", "change"],
    "note": ["view", "add", "change"],
    "followup": ["view", "add", "change"],
    "specialism": ["view", "add", "change"],
    "tier": ["view", "add", "change"],
    "tierprice": ["view", "add", "change", "delete"],
    "subscription": ["view"],
    "invoice": ["view", "change"],
    # People and the audit trail change only through the services, so staff only read them here.
    "organisationmember": ["view"],
    "auditentry": ["view"],
}


def membership_team_permissions() -> "list[Permission]":
    query = Q()
    for model, actions in MEMBERSHIP_TEAM_PERMISSIONS.items():
        query |= Q(content_type__model=model, codename__in=[f"{action}_{model}" for action in actions])
    return list(Permission.objects.filter(query, content_type__app_label="membership"))


def grant_membership_team_permissions(group: Group) -> None:
    """Give ``group`` what the staff CRM needs: it may run again without adding anything twice.

    Deleting organisations and removing people stay with superusers and the member services.
    """
    group.permissions.add(*membership_team_permissions())


# The engagement workspace: the dashboard and queue, and the scoring settings. Importing is granted on its own
# (``membership.import_members``), to those trusted to change many records at once.
ENGAGEMENT_PERMISSIONS = {
    "engagementscore": ["view"],
    "engagementsettings": ["view", "change"],
}


def grant_engagement_permissions(group: Group, *, can_import: bool = False) -> None:
    """Give ``group`` the engagement workspace (and, with ``can_import``, spreadsheet imports); may run again."""
    query = Q()
    for model, actions in ENGAGEMENT_PERMISSIONS.items():
        query |= Q(content_type__model=model, codename__in=[f"{action}_{model}" for action in actions])
    if can_import:
        query |= Q(codename="import_members")
    group.permissions.add(*Permission.objects.filter(query, content_type__app_label="membership"))
