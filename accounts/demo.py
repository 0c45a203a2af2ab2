"""Demo staff accounts: the membership team who work in the back office."""

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from accounts.models import User

# (e-mail, first name, last name, superuser): the first one is the login the demo prints.
STAFF = [
    ("director@netech.example", "Alex", "Morgan", True),
    ("engagement@netech.example", "Priya", "Shah", False),
    ("finance@netech.example", "Tom", "Reed", False),
    ("editor@netech.example", "Jess", "Carter", False),
]
# A fixed authenticator secret, so the printed demo login stays the same from run to run. Demo only.
DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXPNETECHDEMO234567"  # noqa: S105
TEAM_GROUP = "Membership team"


@transaction.atomic
def seed_staff(password: str) -> tuple[User, list[str], list[User]]:
    """Create the membership team with two-factor authentication set up.

    Returns the lead (whose login the demo prints), their unused recovery codes, and the whole team.
    """
    team, _ = Group.objects.get_or_create(name=TEAM_GROUP)
    team.permissions.add(Permission.objects.get(content_type__app_label="wagtailadmin", codename="access_admin"))
    lead, team_members = None, []
    for email, first, last, superuser in STAFF:
        user, created = User.objects.get_or_create(
            email=email,
            defaults={"first_name": first, "last_name": last, "is_staff": True, "is_superuser": superuser},
        )
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
        user.groups.add(team)
        EmailAddress.objects.get_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
        if not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
            TOTP.activate(user, DEMO_TOTP_SECRET)
        codes = RecoveryCodes.activate(user).get_unused_codes()
        team_members.append(user)
        lead = lead or (user, codes)
    return (*lead, team_members)
