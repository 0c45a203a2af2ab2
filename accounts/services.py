from datetime import timedelta

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db import transaction
from django.utils import timezone

from accounts import personal_data
from accounts.models import ConsentRecord, User


@transaction.atomic
def purge_unverified_accounts(older_than_days: int = 14) -> int:
    """Delete abandoned sign-ups: people who signed up themselves but never verified their address within
    ``older_than_days``.

    They never logged in and hold nothing but an address, which is not kept without a reason. Only accounts
    made through the sign-up form go, which always sets a password: an account the membership team or an
    organisation made for someone (an imported contact, who has no password until they set one) is theirs to
    remove, never this job's, and neither is anyone who belongs, or belonged, to an organisation. Staff accounts
    are never touched. Running it again deletes nothing more: it is safe to retry.
    """
    cutoff = timezone.now() - timedelta(days=older_than_days)
    stale = (
        User.objects.filter(
            date_joined__lt=cutoff,
            last_login__isnull=True,
            is_staff=False,
            is_superuser=False,
        )
        .exclude(emailaddress__verified=True)
        .exclude(password__startswith=UNUSABLE_PASSWORD_PREFIX)
        # By the relation's name only: accounts depends on no other app.
        .exclude(memberships__isnull=False)
    )
    _, deleted = User.objects.filter(pk__in=list(stale.values_list("pk", flat=True))).delete()
    return deleted.get("accounts.User", 0)


def current_consents(user: User) -> dict[str, bool]:
    """Each channel's current choice: the newest record, or no (consent is off by default)."""
    choices = {channel: False for channel in ConsentRecord.Channel.values}
    seen = set()
    for channel, granted in user.consent_records.order_by("-recorded_at", "-id").values_list("channel", "granted"):
        if channel not in seen:
            choices[channel] = granted
            seen.add(channel)
    return choices


@transaction.atomic
def record_consents(user: User, choices: dict[str, bool], source: str) -> list[ConsentRecord]:
    """Record each channel whose choice changed, with the time and where it was made."""
    current = current_consents(user)
    return [
        ConsentRecord.objects.create(user=user, channel=channel, granted=granted, source=source)
        for channel, granted in choices.items()
        if channel in current and current[channel] != granted
    ]


def latest_consents(user_ids: list[int]) -> dict[int, dict[str, bool]]:
    """Each person's newest recorded choice for each channel they have decided on, in one query."""
    latest: dict[int, dict[str, bool]] = {}
    records = ConsentRecord.objects.filter(user_id__in=user_ids).order_by("user_id", "channel", "-recorded_at", "-id")
    for user_id, channel, granted in records.values_list("user_id", "channel", "granted"):
        latest.setdefault(user_id, {}).setdefault(channel, granted)
    return latest


def consents_from_import(recorded: dict[str, bool], wanted: bool, *, chooses_own: bool = False) -> dict[str, bool]:
    """The choices a "yes" or "no" in an imported file records for a person, given what they have decided before.

    A no is recorded for every channel still granted or never decided on (so a later yes, from an older list say,
    finds a decision and changes nothing). A yes is recorded only for channels the person has never decided on,
    and never for someone who has logged in (``chooses_own``): they make their own choices under My account, where
    leaving a box unticked records nothing. So an import never overturns a choice, and someone who withdrew stays
    withdrawn.
    """
    if wanted:
        if chooses_own:
            return {}
        return {channel: True for channel in ConsentRecord.Channel.values if channel not in recorded}
    return {channel: False for channel in ConsentRecord.Channel.values if recorded.get(channel, True)}


def record_consents_in_bulk(choices: dict[int, dict[str, bool]], source: str) -> int:
    """Record many people's choices at once (an import), each with the time and ``source``; returns how many."""
    now = timezone.now()
    records = [
        ConsentRecord(user_id=user_id, channel=channel, granted=granted, source=source, recorded_at=now)
        for user_id, channels in choices.items()
        for channel, granted in channels.items()
    ]
    ConsentRecord.objects.bulk_create(records, batch_size=2000)
    return len(records)


def export_personal_data(user: User) -> dict:
    """Everything the platform holds about ``user``, as JSON-ready data."""
    from allauth.account.models import EmailAddress
    from allauth.mfa.models import Authenticator

    data = {
        "exported_at": timezone.now().isoformat(),
        "account": {
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "date_joined": user.date_joined.isoformat(),
            "last_login": user.last_login.isoformat() if user.last_login else None,
            "email_addresses": [
                {"email": e.email, "verified": e.verified, "primary": e.primary}
                for e in EmailAddress.objects.filter(user=user)
            ],
            "two_factor_methods": sorted(Authenticator.objects.filter(user=user).values_list("type", flat=True)),
        },
        "marketing_consent": [
            {"channel": r.channel, "granted": r.granted, "source": r.source, "recorded_at": r.recorded_at.isoformat()}
            for r in user.consent_records.order_by("recorded_at", "id")
        ],
    }
    for section in personal_data.sections():
        data[section.name] = section.export(user)
    return data


def account_deletion_blockers(user: User) -> list[str]:
    return [reason for section in personal_data.sections() if section.check and (reason := section.check(user))]


class AccountDeletionRefused(Exception):
    pass


@transaction.atomic
def delete_account(user: User) -> None:
    """Erase a person's personal data and close their log-in; records others rely on are kept, anonymised.

    Their memberships end (audited), their addresses, second factors and consent records go, and the user
    row stays only as an anonymous placeholder so invoices, audit entries and activity keep their shape.
    """
    from allauth.account.models import EmailAddress
    from allauth.mfa.models import Authenticator

    user = User.objects.select_for_update().get(pk=user.pk)
    blockers = account_deletion_blockers(user)
    if blockers:
        raise AccountDeletionRefused(" ".join(blockers))
    for section in personal_data.sections():
        if section.erase:
            section.erase(user)
    EmailAddress.objects.filter(user=user).delete()
    Authenticator.objects.filter(user=user).delete()
    user.consent_records.all().delete()
    user.email = f"erased-{user.pk}@erased.invalid"
    user.first_name = ""
    user.last_name = ""
    user.is_active = False
    # A new (unusable) password changes the session hash, and an inactive user is never loaded: every
    # session the person still has open, on any device, ends with this.
    user.set_unusable_password()
    user.save()
