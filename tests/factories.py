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


# Events ------------------------------------------------------------------------------------------------------


def make_event_index(title: str = "Events", slug: str = "events"):
    """The events programme page under the home page (made once)."""
    from cms.events.models import EventIndexPage
    from cms.models import HomePage

    index = EventIndexPage.objects.filter(slug=slug).first()
    if index is None:
        index = EventIndexPage(title=title, slug=slug)
        HomePage.objects.get().add_child(instance=index)
    return index


def make_event(title: str = "Tech for Good Breakfast", *, starts_in=None, hours: int = 2, capacity: int = 40, **fields):
    """A published event, two weeks ahead by default, at a Newcastle venue, free unless priced."""
    from datetime import timedelta

    from django.utils import timezone

    from cms.events.models import EventPage

    free_for_tiers = fields.pop("free_for_tiers", None)
    start = fields.pop("starts_at", None) or timezone.now() + (starts_in or timedelta(days=14))
    start = start.replace(second=0, microsecond=0)  # as editors enter times
    fields.setdefault("summary", f"{title}: talks and networking for the region's tech sector.")
    fields.setdefault("venue_name", "The Catalyst")
    fields.setdefault("venue_address", "3 Science Square\nNewcastle upon Tyne NE4 5TG")
    event = EventPage(
        title=title,
        slug=fields.pop("slug", None) or slugify(title),
        starts_at=start,
        ends_at=fields.pop("ends_at", None) or start + timedelta(hours=hours),
        capacity=capacity,
        **fields,
    )
    make_event_index().add_child(instance=event)
    if free_for_tiers:
        event.free_for_tiers.set(free_for_tiers)
        event.save()
    return event
