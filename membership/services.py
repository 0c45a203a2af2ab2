"""Membership services: every change to organisations and their people goes through these functions.

Each runs in one transaction, checks the actor's right to make the change, writes an audit entry and
queues its e-mails for after the commit. A refused change raises ``MembershipError`` with a message that
can be shown to the person as it is, and changes nothing.
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from allauth.account.models import EmailAddress
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Model, Q
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User
from config.celery import queue_on_commit
from membership.activity import record_activity
from membership.models import (
    PRICING_FIELDS,
    ActivityKind,
    AuditEntry,
    FollowUp,
    Invitation,
    JoinRequest,
    Note,
    Organisation,
    OrganisationMember,
    Subscription,
)

INVITATION_SALT = "membership.invitation"
# After admins decline a request to join, the same person may ask that organisation again only after this long.
JOIN_REQUEST_PAUSE_AFTER_DECLINE = timedelta(days=30)
Role = OrganisationMember.Role


class MembershipError(Exception):
    """A change that is not allowed; the message says why, in words a member understands."""


def record_audit(
    action: str,
    summary: str,
    *,
    actor: User | None = None,
    organisation: Organisation | None = None,
    organisation_id: int | None = None,
    subject: User | None = None,
    changes: dict | None = None,
) -> AuditEntry:
    """Write one audit entry about ``organisation`` (or the organisation with ``organisation_id``, not read).
    ``changes`` maps a field to ``[before, after]``."""
    return AuditEntry.objects.create(
        action=action,
        summary=summary[:300],
        actor=actor if actor and actor.is_authenticated else None,
        organisation_id=organisation.pk if organisation is not None else organisation_id,
        subject=subject,
        changes=changes or {},
    )


def record_audits(entries: list[dict]) -> None:
    """Write many audit entries at once (an import); each dict takes ``record_audit``'s arguments, with
    ``organisation_id`` in place of ``organisation``."""
    AuditEntry.objects.bulk_create(
        [
            AuditEntry(
                action=entry["action"],
                summary=entry["summary"][:300],
                actor=entry.get("actor") if entry.get("actor") and entry["actor"].is_authenticated else None,
                organisation_id=entry.get("organisation_id"),
                changes=entry.get("changes") or {},
            )
            for entry in entries
        ],
        batch_size=2000,
    )


def diff(before: Model | dict, after: Model, fields: list[str]) -> dict:
    """The fields whose value changed, as ``{field: [before, after]}`` of their string forms."""
    changed = {}
    for field in fields:
        old = before.get(field) if isinstance(before, dict) else getattr(before, field)
        new = getattr(after, field)
        if old != new:
            changed[field] = [_plain(old), _plain(new)]
    return changed


def _plain(value):
    if value is None or isinstance(value, bool | int | str | list):
        return value
    return str(value)


# Organisations ---------------------------------------------------------------------------------------


def _unique_slug(name: str) -> str:
    base = slugify(name)[:200] or "organisation"
    slug, number = base, 2
    while Organisation.objects.filter(slug=slug).exists():
        slug, number = f"{base}-{number}", number + 1
    return slug


@transaction.atomic
def create_organisation(user: User, **fields) -> Organisation:
    """Create an organisation with ``user`` as its first admin."""
    specialisms = fields.pop("specialisms", None)
    tags = fields.pop("tags", None)
    organisation = Organisation(slug=_unique_slug(fields["name"]), **fields)
    organisation.billing_contact = organisation.billing_contact or user
    organisation.billing_email = organisation.billing_email or user.email
    organisation.save()
    if specialisms is not None:
        organisation.specialisms.set(specialisms)
    if tags:
        organisation.tags.set(tags)
    OrganisationMember.objects.create(organisation=organisation, user=user, role=Role.ADMIN)
    record_audit(
        "membership.organisation.created",
        f"{user} created {organisation}",
        actor=user,
        organisation=organisation,
        subject=user,
    )
    return organisation


# Fields holding several values: compared as sorted lists of their names.
_LIST_FIELDS = {
    "specialisms": lambda organisation: sorted(organisation.specialisms.values_list("name", flat=True)),
    "tags": lambda organisation: sorted(organisation.tags.names()),
}


@transaction.atomic
def update_organisation(
    organisation: Organisation, actor: User, form, *, save=None, where: str = "the member portal"
) -> Organisation:
    """Save an organisation's profile from a validated ModelForm and audit each changed field.

    Only its admins (or staff) may. ``save`` replaces ``form.save()`` where the caller saves in its own
    way (the back office logs the edit in its history too). No change, no audit entry.
    """
    before = _lock(organisation)  # and nobody else's edit can land between the two pictures
    _require_admin(before, actor)
    fields = [f for f in form.fields if f not in _LIST_FIELDS]
    _refuse_price_change(before, actor, form, fields)
    lists_before = {field: read(before) for field, read in _LIST_FIELDS.items() if field in form.fields}
    organisation = save() if save else form.save()
    changes = diff(before, organisation, fields)
    for field, old in lists_before.items():
        new = _LIST_FIELDS[field](organisation)
        if old != new:
            changes[field] = [old, new]
    if changes:
        record_audit(
            "membership.organisation.updated",
            f"{actor} updated {organisation} in {where}: {', '.join(sorted(changes))}",
            actor=actor,
            organisation=organisation,
            changes=changes,
        )
        record_activity(
            organisation,
            ActivityKind.PROFILE_UPDATED,
            key=f"{organisation.pk}:{timezone.localdate().isoformat()}",
            person=actor if membership_of(organisation, actor) else None,
            detail=", ".join(sorted(changes)),
        )
    return organisation


# Checks ---------------------------------------------------------------------------------------------


def _refuse_price_change(organisation: Organisation, actor: User, form, fields: list[str]) -> None:
    """Type and size choose the membership's price: once it is subscribed, only staff change them (audited), and
    the price follows at the next change of tier or renewal the membership team arranges."""
    if actor.is_staff or not organisation.has_live_subscription():
        return
    changed = [
        f
        for f in PRICING_FIELDS
        if f in fields and form.cleaned_data.get(f, getattr(organisation, f)) != getattr(organisation, f)
    ]
    if changed:
        raise MembershipError(
            "Your organisation's type and size set its membership price, so they cannot be changed while it is a "
            "member. Please contact the membership team."
        )


def _lock(organisation: Organisation) -> Organisation:
    """Lock the organisation's row: changes to its people happen one at a time."""
    return Organisation.objects.select_for_update().get(pk=organisation.pk)


def membership_of(organisation: Organisation, user: User) -> OrganisationMember | None:
    if not user.is_authenticated:
        return None
    return OrganisationMember.objects.active().filter(organisation=organisation, user=user).first()


def _require_admin(organisation: Organisation, actor: User) -> None:
    if actor.is_staff:
        return  # the membership team acts for any organisation
    membership = membership_of(organisation, actor)
    if membership is None or not membership.is_admin:
        raise MembershipError("Only an admin of this organisation can do that.")


def _check_seat_available(organisation: Organisation, *, excluding_invitation: Invitation | None = None) -> None:
    limit = seat_limit(organisation)
    if limit is None:
        return
    taken = organisation.seats_taken()
    if excluding_invitation is not None and excluding_invitation.status == "pending":
        taken -= 1
    if taken >= limit:
        raise MembershipError(
            f"{organisation} has used all {limit} of its seats. Remove a colleague or revoke an "
            "invitation first, or ask the membership team about more seats."
        )


def seat_limit(organisation: Organisation) -> int | None:
    """How many people (and open invitations) the organisation may have; None means no limit.

    Seats agreed for the organisation itself win; otherwise its live subscription's tier decides.
    """
    if organisation.seat_limit is not None:
        return organisation.seat_limit
    live = Subscription.objects.live().filter(organisation=organisation).select_related("tier").first()
    return live.tier.seat_limit if live else None


def _admin_count(organisation: Organisation) -> int:
    return OrganisationMember.objects.admins().filter(organisation=organisation).count()


# Invitations ----------------------------------------------------------------------------------------


def invitation_key(invitation: Invitation) -> str:
    return signing.dumps({"i": invitation.pk, "n": invitation.nonce}, salt=INVITATION_SALT, compress=True)


def find_invitation(key: str) -> Invitation:
    """The invitation a link names, if its signature holds and it is the newest link sent; else an error."""
    try:
        data = signing.loads(key, salt=INVITATION_SALT)
        invitation = Invitation.objects.select_related("organisation").get(pk=data["i"])
    except (signing.BadSignature, Invitation.DoesNotExist, KeyError, TypeError) as error:
        raise MembershipError("This invitation link is not valid.") from error
    if not invitation.nonce or data.get("n") != invitation.nonce:
        raise MembershipError("This invitation link has been replaced by a newer one, or withdrawn.")
    return invitation


@transaction.atomic
def invite_colleague(organisation: Organisation, actor: User, email: str, role: str = Role.MEMBER) -> Invitation:
    """Invite ``email`` to join; an open invitation to the same address is sent again instead."""
    organisation = _lock(organisation)
    _require_admin(organisation, actor)
    email = email.strip().lower()
    if OrganisationMember.objects.active().filter(organisation=organisation, user__email__iexact=email).exists():
        raise MembershipError(f"{email} already belongs to {organisation}.")
    existing = organisation.invitations.filter(
        email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).first()
    if existing and existing.status == "pending":
        if existing.role != role:  # asked again with another role: the invitation that goes out says the new one
            _change_invitation_role(existing, actor, role)
        return resend_invitation(existing, actor)
    if existing:  # expired: close it, so the new one is the only open invitation
        existing.revoked_at = timezone.now()
        existing.save(update_fields=["revoked_at"])
    _check_seat_available(organisation)
    invitation = Invitation(organisation=organisation, email=email, role=role, invited_by=actor)
    invitation.refresh_nonce()
    invitation.save()
    record_audit(
        "membership.invitation.sent",
        f"{actor} invited {email} to {organisation} as {Role(role).label.lower()}",
        actor=actor,
        organisation=organisation,
        changes={"email": [None, email], "role": [None, role]},
    )
    _queue_invitation_email(invitation)
    return invitation


@transaction.atomic
def resend_invitation(invitation: Invitation, actor: User) -> Invitation:
    """Send a fresh link (and a fresh expiry); earlier links stop working. An expired invitation sent again takes
    a seat again, so it needs one free, as a new invitation does."""
    organisation = _lock(invitation.organisation)
    _require_admin(organisation, actor)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at or invitation.revoked_at:
        raise MembershipError("That invitation has already been accepted or revoked.")
    if invitation.status == "expired":
        _check_seat_available(organisation)
    invitation.refresh_nonce()
    invitation.save(update_fields=["nonce", "sent_at", "expires_at"])
    record_audit(
        "membership.invitation.resent",
        f"{actor} sent the invitation for {invitation.email} again",
        actor=actor,
        organisation=invitation.organisation,
    )
    _queue_invitation_email(invitation)
    return invitation


def _change_invitation_role(invitation: Invitation, actor: User, role: str) -> None:
    before = invitation.role
    Invitation.objects.filter(pk=invitation.pk).update(role=role)
    invitation.role = role
    record_audit(
        "membership.invitation.role_changed",
        f"{actor} changed the invitation for {invitation.email} to {Role(role).label.lower()}",
        actor=actor,
        organisation=invitation.organisation,
        changes={"role": [before, role]},
    )


@transaction.atomic
def revoke_invitation(invitation: Invitation, actor: User) -> None:
    _require_admin(invitation.organisation, actor)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at:
        raise MembershipError("That invitation has already been accepted.")
    if invitation.revoked_at:
        return
    invitation.revoked_at = timezone.now()
    invitation.nonce = ""
    invitation.save(update_fields=["revoked_at", "nonce"])
    record_audit(
        "membership.invitation.revoked",
        f"{actor} revoked the invitation for {invitation.email}",
        actor=actor,
        organisation=invitation.organisation,
    )


@transaction.atomic
def accept_invitation(invitation: Invitation, user: User) -> OrganisationMember:
    """Join the organisation through an invitation sent to one of ``user``'s verified addresses."""
    invitation = Invitation.objects.select_for_update().select_related("organisation").get(pk=invitation.pk)
    organisation = _lock(invitation.organisation)
    if invitation.accepted_at:
        raise MembershipError("This invitation has already been used.")
    if invitation.revoked_at:
        raise MembershipError("This invitation has been withdrawn. Ask an admin of the organisation for a new one.")
    if invitation.expires_at <= timezone.now():
        raise MembershipError("This invitation has expired. Ask an admin of the organisation to send it again.")
    if not EmailAddress.objects.filter(user=user, email__iexact=invitation.email, verified=True).exists():
        raise MembershipError(f"This invitation was sent to {invitation.email}. Log in with that address to accept it.")
    if membership_of(organisation, user):
        raise MembershipError(f"You already belong to {organisation}.")
    _check_seat_available(organisation, excluding_invitation=invitation)
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.nonce = ""
    invitation.save(update_fields=["accepted_at", "accepted_by", "nonce"])
    membership = OrganisationMember.objects.create(organisation=organisation, user=user, role=invitation.role)
    record_audit(
        "membership.member.joined",
        f"{user} joined {organisation} by invitation",
        actor=user,
        organisation=organisation,
        subject=user,
        changes={"role": [None, invitation.role]},
    )
    _record_colleague_joined(membership)
    return membership


def _record_colleague_joined(membership: OrganisationMember) -> None:
    record_activity(
        membership.organisation,
        ActivityKind.COLLEAGUE_JOINED,
        key=str(membership.pk),
        person=membership.user,
        occurred_at=membership.joined_at,
    )


def _queue_invitation_email(invitation: Invitation) -> None:
    from membership import tasks

    queue_on_commit(tasks.send_invitation_email, invitation.pk)


# Asking to join -------------------------------------------------------------------------------------


def organisations_matching_domains(user: User) -> "list[Organisation]":
    """Organisations listing the domain of one of the user's verified addresses, that they are not in."""
    domains = {
        address.split("@", 1)[1].lower()
        for address in EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True)
    }
    if not domains:
        return []
    mine = Organisation.objects.for_user(user).values("pk")
    candidates = Organisation.objects.exclude(pk__in=mine).exclude(email_domains="")
    query = None
    for domain in domains:
        clause = Q(email_domains__icontains=domain)
        query = clause if query is None else query | clause
    return [o for o in candidates.filter(query) if set(o.domains) & domains]


@transaction.atomic
def request_to_join(organisation: Organisation, user: User, message: str = "") -> JoinRequest:
    matching = [
        email
        for email in EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True)
        if email.split("@", 1)[1].lower() in organisation.domains
    ]
    if not matching:
        raise MembershipError(
            f"To ask to join {organisation}, verify an e-mail address at "
            f"{' or '.join(organisation.domains) or 'one of its domains'} first."
        )
    if membership_of(organisation, user):
        raise MembershipError(f"You already belong to {organisation}.")
    if JoinRequest.objects.filter(organisation=organisation, user=user, status=JoinRequest.Status.PENDING).exists():
        raise MembershipError(f"You have already asked to join {organisation}; its admins will decide.")
    declined = (
        JoinRequest.objects.filter(organisation=organisation, user=user, status=JoinRequest.Status.DECLINED)
        .filter(decided_at__gt=timezone.now() - JOIN_REQUEST_PAUSE_AFTER_DECLINE)
        .order_by("-decided_at")
        .first()
    )
    if declined is not None:  # asking again at once would only e-mail the admins the same question again
        again = timezone.localdate(declined.decided_at + JOIN_REQUEST_PAUSE_AFTER_DECLINE)
        raise MembershipError(
            f"The admins of {organisation} declined your request. You can ask again from {again:%-d %B %Y}, or ask "
            "one of them to invite you."
        )
    try:
        with transaction.atomic():  # a double submission meets the one-pending-request constraint
            join_request = JoinRequest.objects.create(
                organisation=organisation, user=user, email=matching[0], message=message
            )
    except IntegrityError as error:
        raise MembershipError(f"You have already asked to join {organisation}; its admins will decide.") from error
    record_audit(
        "membership.join_request.created",
        f"{user} asked to join {organisation}",
        actor=user,
        organisation=organisation,
        subject=user,
    )
    from membership import tasks

    queue_on_commit(tasks.send_join_request_email, join_request.pk)
    return join_request


@transaction.atomic
def decide_join_request(join_request: JoinRequest, actor: User, *, approve: bool) -> JoinRequest:
    organisation = _lock(join_request.organisation)
    _require_admin(organisation, actor)
    join_request = JoinRequest.objects.select_for_update().get(pk=join_request.pk)
    if join_request.status != JoinRequest.Status.PENDING:
        raise MembershipError("That request has already been decided.")
    if approve and membership_of(organisation, join_request.user) is None:
        _check_seat_available(organisation)
        membership = OrganisationMember.objects.create(
            organisation=organisation, user=join_request.user, role=Role.MEMBER
        )
        _record_colleague_joined(membership)
    join_request.status = JoinRequest.Status.APPROVED if approve else JoinRequest.Status.DECLINED
    join_request.decided_at = timezone.now()
    join_request.decided_by = actor
    join_request.save(update_fields=["status", "decided_at", "decided_by"])
    record_audit(
        "membership.member.joined" if approve else "membership.join_request.declined",
        f"{actor} {'approved' if approve else 'declined'} {join_request.user}'s request to join",
        actor=actor,
        organisation=organisation,
        subject=join_request.user,
    )
    from membership import tasks

    queue_on_commit(tasks.send_join_decision_email, join_request.pk)
    return join_request


# Roles, leaving and removal ------------------------------------------------------------------------


@dataclass
class _Change:
    membership: OrganisationMember
    organisation: Organisation


def _locked_membership(membership: OrganisationMember) -> _Change:
    organisation = _lock(membership.organisation)
    membership = OrganisationMember.objects.select_for_update().get(pk=membership.pk)
    if membership.left_at:
        raise MembershipError(f"{membership.user} no longer belongs to {organisation}.")
    return _Change(membership, organisation)


@transaction.atomic
def change_role(membership: OrganisationMember, actor: User, role: str) -> OrganisationMember:
    change = _locked_membership(membership)
    membership, organisation = change.membership, change.organisation
    _require_admin(organisation, actor)
    if membership.role == role:
        return membership
    if membership.is_admin and _admin_count(organisation) <= 1:
        raise MembershipError(
            f"{membership.user} is the only admin of {organisation}. Make someone else an admin first."
        )
    before = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    record_audit(
        "membership.member.role_changed",
        f"{actor} made {membership.user} {Role(role).label.lower()} of {organisation}",
        actor=actor,
        organisation=organisation,
        subject=membership.user,
        changes={"role": [before, role]},
    )
    return membership


@transaction.atomic
def hand_over_admin(organisation: Organisation, actor: User, to: OrganisationMember) -> None:
    """Make ``to`` an admin and step down to member, in one step."""
    if to.organisation_id != organisation.pk:
        raise MembershipError("That person is not in this organisation.")
    mine = membership_of(organisation, actor)
    if mine is None or not mine.is_admin:
        raise MembershipError("Only an admin of this organisation can hand the admin role over.")
    if to.pk == mine.pk:
        raise MembershipError("Choose a colleague to hand the admin role to.")
    change_role(to, actor, Role.ADMIN)
    change_role(mine, actor, Role.MEMBER)


@transaction.atomic
def remove_member(membership: OrganisationMember, actor: User) -> None:
    """Take someone out of an organisation; their log-in and history stay. Used for leaving too."""
    change = _locked_membership(membership)
    membership, organisation = change.membership, change.organisation
    leaving = membership.user_id == actor.pk
    if not leaving:
        _require_admin(organisation, actor)
    if membership.is_admin and _admin_count(organisation) <= 1:
        raise MembershipError(
            f"{'You are' if leaving else f'{membership.user} is'} the only admin of {organisation}. "
            "Hand the admin role to a colleague first."
        )
    membership.left_at = timezone.now()
    membership.save(update_fields=["left_at"])
    if organisation.billing_contact_id == membership.user_id:
        organisation.billing_contact = None
        organisation.save(update_fields=["billing_contact"])
    record_audit(
        "membership.member.left" if leaving else "membership.member.removed",
        f"{membership.user} left {organisation}" if leaving else f"{actor} removed {membership.user}",
        actor=actor,
        organisation=organisation,
        subject=membership.user,
        changes={"role": [membership.role, None]},
    )


# The membership team's CRM ------------------------------------------------------------------------


@transaction.atomic
def add_note(organisation: Organisation, author: User, *, kind: str, date, body: str) -> Note:
    """Log a call, meeting or e-mail with the organisation. It counts as activity on the day it happened (midday,
    for a day before today), so a call logged a week late neither looks recent nor leaves the organisation quiet."""
    note = Note.objects.create(organisation=organisation, author=author, kind=kind, date=date, body=body)
    now = timezone.now()
    happened = timezone.make_aware(datetime.combine(date, time(12))) if date < timezone.localdate(now) else now
    record_activity(
        organisation,
        ActivityKind.STAFF_INTERACTION,
        key=f"note:{note.pk}",
        detail=f"{note.get_kind_display()} logged by {author}",
        occurred_at=min(happened, now),
    )
    return note


@transaction.atomic
def add_follow_up(organisation: Organisation, creator: User, *, title: str, due_date, assignee: User) -> FollowUp:
    return FollowUp.objects.create(
        organisation=organisation, created_by=creator, title=title, due_date=due_date, assignee=assignee
    )


@transaction.atomic
def set_follow_up_done(follow_up: FollowUp, done: bool) -> FollowUp:
    follow_up = FollowUp.objects.select_for_update().get(pk=follow_up.pk)
    follow_up.done_at = (follow_up.done_at or timezone.now()) if done else None
    follow_up.save(update_fields=["done_at"])
    return follow_up
