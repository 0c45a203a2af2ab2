"""Small factory functions: test data is built the way the platform builds it."""

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth.models import Group, Permission
from django.utils.text import slugify

from accounts.models import User
from membership.models import Organisation, OrganisationMember, OrganisationType, SizeBand

PASSWORD = "correct-horse-battery-staple"


def make_user(
    email: str,
    *,
    password: str = PASSWORD,
    verified: bool = True,
    first_name: str = "",
    last_name: str = "",
    **fields,
) -> User:
    user = User.objects.create_user(email, password, first_name=first_name, last_name=last_name, **fields)
    EmailAddress.objects.create(user=user, email=user.email, verified=verified, primary=True)
    return user


def make_staff(email: str, *, mfa: bool = True, superuser: bool = False, **fields) -> User:
    """A member of the membership team; with ``mfa`` an authenticator app is set up (see ``totp_secret``)."""
    user = make_user(email, is_staff=True, is_superuser=superuser, **fields)
    team, _ = Group.objects.get_or_create(name="Membership team")
    team.permissions.add(Permission.objects.get(content_type__app_label="wagtailadmin", codename="access_admin"))
    user.groups.add(team)
    if mfa:
        TOTP.activate(user, generate_totp_secret())
    return user


def totp_secret(user: User) -> str:
    from allauth.mfa.utils import decrypt

    authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
    return decrypt(authenticator.data["secret"])


def make_organisation(name: str, **fields) -> Organisation:
    fields.setdefault("organisation_type", OrganisationType.SME)
    fields.setdefault("size_band", SizeBand.SMALL)
    fields.setdefault("town", "Newcastle upon Tyne")
    return Organisation.objects.create(name=name, slug=slugify(name), **fields)


def add_member(
    organisation: Organisation, user: User, role: str = OrganisationMember.Role.MEMBER
) -> OrganisationMember:
    return OrganisationMember.objects.create(organisation=organisation, user=user, role=role)


def current_totp(secret: str) -> str:
    """The code an authenticator app would show right now."""
    import time

    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))
