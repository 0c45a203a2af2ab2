"""Demo engagement: a year of activity for the demo organisations, so scores, bands and the at-risk queue look like
a real membership body's; then every score is computed.

Each organisation follows a pattern (thriving, steady, fading, dormant or new) drawn from a fixed seed. Every
occasion has a fixed key, so running it again adds nothing. Only the first ``LIMIT`` organisations get history,
so that ``seed_demo --orgs 200000`` for benchmarks stays quick.
"""

import random
from datetime import timedelta

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from membership.engagement import recompute_scores
from membership.models import ActivityEvent, ActivityKind, EngagementSettings, Organisation, OrganisationMember
from membership.permissions import grant_engagement_permissions

LIMIT = 600
IMPORTERS_GROUP = "Data imports"
Kind = ActivityKind

# pattern: (share of organisations, occasions a month now, occasions a month 6-12 months ago)
PATTERNS = {
    "thriving": (0.2, 10, 8),
    "steady": (0.3, 3, 3),
    "fading": (0.25, 0.5, 7),
    "dormant": (0.15, 0, 3),
    "new": (0.1, 4, 0),
}
# What one occasion is, by how often it happens.
KINDS = [
    (Kind.LOGIN, 40),
    (Kind.PAGE_READ, 20),
    (Kind.EVENT_REGISTERED, 10),
    (Kind.EVENT_ATTENDED, 8),
    (Kind.PERK_REDEEMED, 8),
    (Kind.STAFF_INTERACTION, 5),
    (Kind.PROFILE_UPDATED, 3),
    (Kind.COLLEAGUE_JOINED, 3),
    (Kind.INVOICE_PAID, 2),
    (Kind.STORY_PUBLISHED, 1),
]
DETAILS = {
    Kind.EVENT_REGISTERED: [
        "Quayside tech breakfast",
        "AI in manufacturing",
        "Cyber resilience clinic",
        "Summer social",
    ],
    Kind.EVENT_ATTENDED: ["Quayside tech breakfast", "AI in manufacturing", "Cyber resilience clinic", "Summer social"],
    Kind.PERK_REDEEMED: ["Cloud credits", "Legal health check", "Recruitment discount", "Co-working day passes"],
    Kind.PAGE_READ: ["Members' briefing", "Skills partnership update", "Funding round-up"],
    Kind.STORY_PUBLISHED: ["A funding win", "A new office in Sunderland"],
}


def _monthly_rate(pattern: str, days_ago: int) -> float:
    _, now_rate, then_rate = PATTERNS[pattern]
    if pattern == "new" and days_ago > 120:
        return 0.0
    if pattern == "dormant" and days_ago < 100:
        return 0.0
    # Between the two rates, by how long ago: a fading member did more a year ago, a growing one less.
    weight = min(days_ago, 365) / 365
    return now_rate * (1 - weight) + then_rate * weight


@transaction.atomic
def seed_engagement(team: list[User]) -> int:
    """A year of activity for the demo organisations, their scores, and the engagement team's access; returns how
    many occasions were added."""
    _set_up_team(team)
    rng = random.Random(2026)
    now = timezone.now()
    organisations = list(Organisation.objects.order_by("pk").values_list("pk", "created_at")[:LIMIT])
    people: dict[int, list[int]] = {}
    for org_id, user_id in OrganisationMember.objects.filter(
        organisation_id__in=[pk for pk, _ in organisations]
    ).values_list("organisation_id", "user_id"):
        people.setdefault(org_id, []).append(user_id)
    kinds, weights = zip(*KINDS, strict=True)
    names, shares = zip(*[(name, share) for name, (share, _, _) in PATTERNS.items()], strict=True)
    events = []
    for org_id, _created in organisations:
        pattern = rng.choices(names, shares)[0]
        number = 0
        for days_ago in range(365, -1, -1):
            if rng.random() >= _monthly_rate(pattern, days_ago) / 30:
                continue
            kind = rng.choices(kinds, weights)[0]
            number += 1
            choices = people.get(org_id) or [None]
            events.append(
                ActivityEvent(
                    organisation_id=org_id,
                    person_id=rng.choice(choices) if kind != Kind.STAFF_INTERACTION else None,
                    kind=kind,
                    key=f"demo:{org_id}:{number}",
                    detail=rng.choice(DETAILS.get(kind, [""])),
                    occurred_at=now - timedelta(days=days_ago, hours=rng.randint(0, 10), minutes=rng.randint(0, 59)),
                )
            )
    before = ActivityEvent.objects.count()
    ActivityEvent.objects.bulk_create(events, batch_size=5000, ignore_conflicts=True)
    recompute_scores(now)
    return ActivityEvent.objects.count() - before


def _set_up_team(team: list[User]) -> None:
    """The membership team gets the workspace; the engagement manager also imports and receives the digest."""
    from accounts.demo import TEAM_GROUP

    grant_engagement_permissions(Group.objects.get(name=TEAM_GROUP))
    importers, _ = Group.objects.get_or_create(name=IMPORTERS_GROUP)
    grant_engagement_permissions(importers, can_import=True)
    manager = next((user for user in team if user.email.startswith("engagement@")), None)
    if manager is None:
        return
    manager.groups.add(importers)
    settings_row = EngagementSettings.load()
    if not settings_row.digest_recipients:
        settings_row.digest_recipients = manager.email
        settings_row.save(update_fields=["digest_recipients"])
