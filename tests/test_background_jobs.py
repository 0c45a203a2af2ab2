import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from accounts import tasks
from accounts.models import User
from config.celery import queue_on_commit
from tests.factories import make_staff, make_user


def _age(user: User, days: int) -> None:
    User.objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(days=days))


@pytest.mark.django_db
def test_it_purges_only_old_unverified_sign_ups():
    stale = make_user("stale@example.org", verified=False)
    recent = make_user("recent@example.org", verified=False)
    verified = make_user("verified@example.org")
    staff = make_staff("staff@netech.example", mfa=False, verified=False)
    for user in (stale, verified, staff):
        _age(user, 30)

    tasks.purge_unverified_accounts()
    assert set(User.objects.values_list("email", flat=True)) == {recent.email, verified.email, staff.email}

    # Run again: nothing more goes.
    tasks.purge_unverified_accounts()
    assert User.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_task_is_queued_only_when_the_transaction_commits():
    _age(make_user("stale@example.org", verified=False), 30)

    with pytest.raises(RuntimeError), transaction.atomic():
        queue_on_commit(tasks.purge_unverified_accounts)
        raise RuntimeError("roll back")
    assert User.objects.count() == 1

    with transaction.atomic():
        queue_on_commit(tasks.purge_unverified_accounts)
        assert User.objects.count() == 1  # not yet: the transaction is still open
    assert User.objects.count() == 0


def test_a_real_worker_runs_tasks_from_the_broker(celery_worker):
    _age(make_user("stale@example.org", verified=False), 30)
    with transaction.atomic():
        queue_on_commit(tasks.purge_unverified_accounts)
    deadline = time.monotonic() + 20
    while User.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not User.objects.exists()


def test_the_purge_is_scheduled_nightly(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["purge-unverified-accounts"]
    assert entry["task"] == "accounts.tasks.purge_unverified_accounts"
    assert entry["task"] in {name for name in tasks.purge_unverified_accounts.app.tasks}
