"""The membership team's permissions for perks, granted to a group in one call."""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

PERKS_TEAM_PERMISSIONS = {
    "perk": ["view", "add", "change", "approve"],
    "provider": ["view", "add", "change"],
    "redemption": ["view"],
}


def grant_perks_team_permissions(group: Group) -> None:
    """Give ``group`` the Perks menu: perks, providers, approvals, code pools and the report. Safe to repeat."""
    query = Q()
    for model, actions in PERKS_TEAM_PERMISSIONS.items():
        query |= Q(content_type__model=model, codename__in=[f"{action}_{model}" for action in actions])
    group.permissions.add(*Permission.objects.filter(query, content_type__app_label="benefits"))
