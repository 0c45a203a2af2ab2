from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import User


@transaction.atomic
def purge_unverified_accounts(older_than_days: int = 14) -> int:
    """Delete sign-ups whose e-mail address was never verified within ``older_than_days``.

    They never logged in and hold nothing but an address, which is not kept without a reason. Staff
    accounts are never touched. Running it again deletes nothing more: it is safe to retry.
    """
    cutoff = timezone.now() - timedelta(days=older_than_days)
    stale = User.objects.filter(
        date_joined__lt=cutoff,
        last_login__isnull=True,
        is_staff=False,
        is_superuser=False,
    ).exclude(emailaddress__verified=True)
    _, deleted = User.objects.filter(pk__in=list(stale.values_list("pk", flat=True))).delete()
    return deleted.get("accounts.User", 0)
