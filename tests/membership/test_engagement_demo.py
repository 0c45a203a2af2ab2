"""The demo data gives the engagement workspace something to show: a year of activity, scores in every band and an
at-risk queue; running it again adds nothing."""

import pytest
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection
from django.utils import timezone

from accounts.models import User
from membership.at_risk import at_risk_queue
from membership.engagement import Scoring
from membership.models import ActivityEvent, EngagementScore, EngagementSettings, Organisation


def _organisation_ids_from_one() -> None:
    """Which demo organisations are members, and which renew soon, follows their ids: start them at 1, as in a fresh
    database, whatever organisations the tests before this one created and rolled back."""
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [Organisation]):
            cursor.execute(sql)


@pytest.mark.django_db
def test_the_demo_has_history_scores_in_every_band_and_a_queue(capsys):
    _organisation_ids_from_one()
    call_command("seed_demo", orgs=40, quiet_login=True)
    events = ActivityEvent.objects.count()
    call_command("seed_demo", orgs=40, quiet_login=True)

    assert ActivityEvent.objects.count() == events > 1000
    assert EngagementScore.objects.count() == Organisation.objects.count()
    scoring, scores, now = Scoring.load(), EngagementScore.objects.all(), timezone.now()
    assert {scoring.band(scoring.score(score.level, now)) for score in scores} >= {"thriving", "steady", "at_risk"}
    assert len(at_risk_queue()) >= 1  # how many depends on which demo members renew soon
    manager = User.objects.get(email="engagement@netech.example")
    assert manager.has_perm("membership.import_members") and manager.has_perm("membership.view_engagementscore")
    assert EngagementSettings.load().recipients == ["engagement@netech.example"]
