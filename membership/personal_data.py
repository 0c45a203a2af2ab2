"""What membership holds about a person, for the personal-data export and account deletion."""

from allauth.account.models import EmailAddress
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.personal_data import Section, register
from accounts.services import AccountDeletionRefused
from membership import services
from membership.models import AuditEntry, Invitation, JoinRequest, Organisation, OrganisationMember


def _export(user: User) -> dict:
    return {
        "organisations": [
            {
                "organisation": m.organisation.name,
                "role": m.role,
                "job_title": m.job_title,
                "since": m.joined_at.isoformat(),
                "left": m.left_at.isoformat() if m.left_at else None,
            }
            for m in OrganisationMember.objects.filter(user=user).select_related("organisation")
        ],
        "invitations_received": [
            {"organisation": i.organisation.name, "email": i.email, "sent": i.sent_at.isoformat(), "status": i.status}
            for i in Invitation.objects.filter(email__iexact=user.email).select_related("organisation")
        ],
        "join_requests": [
            {"organisation": r.organisation.name, "email": r.email, "status": r.status, "message": r.message}
            for r in JoinRequest.objects.filter(user=user).select_related("organisation")
        ],
        # What happened to the person, without the summaries' wording: those name the colleagues who acted,
        # and a colleague's name or address is theirs, not this person's.
        "history": [
            {
                "at": e.created_at.isoformat(),
                "action": e.action,
                "organisation": e.organisation.name if e.organisation else None,
            }
            for e in AuditEntry.objects.filter(subject=user).select_related("organisation").order_by("created_at")
        ],
    }


def _check(user: User) -> str | None:
    """Someone who is the only admin of an organisation with other people must hand the role over first."""
    blocked = []
    for membership in OrganisationMember.objects.admins().filter(user=user).select_related("organisation"):
        organisation = membership.organisation
        others = organisation.active_members().exclude(user=user)
        if others.exists() and not others.filter(role=OrganisationMember.Role.ADMIN).exists():
            blocked.append(organisation.name)
    if blocked:
        return f"You are the only admin of {', '.join(blocked)}. Make a colleague an admin first."
    return None


def _erase(user: User) -> None:
    # Lock the organisations first, then check again: two admins deleting their accounts at once must not
    # leave an organisation with colleagues and no admin.
    organisation_ids = list(
        OrganisationMember.objects.active().filter(user=user).values_list("organisation", flat=True)
    )
    list(Organisation.objects.select_for_update().filter(pk__in=organisation_ids).order_by("pk"))
    reason = _check(user)
    if reason:
        raise AccountDeletionRefused(reason)
    addresses = [user.email, *EmailAddress.objects.filter(user=user).values_list("email", flat=True)]
    invitations = Invitation.objects.filter(Q(accepted_by=user) | Q(email__in=[a.lower() for a in addresses]))
    invitations.filter(accepted_at__isnull=True, revoked_at__isnull=True).update(revoked_at=timezone.now(), nonce="")
    invitations.update(email=f"erased-{user.pk}@erased.invalid")
    for membership in OrganisationMember.objects.active().filter(user=user).select_related("organisation"):
        membership.left_at = timezone.now()
        membership.save(update_fields=["left_at"])
        services.record_audit(
            "membership.member.left",
            f"A contact left {membership.organisation} and deleted their account",
            organisation=membership.organisation,
            subject=user,
            changes={"role": [membership.role, None]},
        )
    _withdraw_invitations_nobody_can_welcome(organisation_ids)
    # The history keeps its shape, but no longer names the person.
    names = {n for n in (user.get_full_name(), user.email) if n}
    for entry in AuditEntry.objects.filter(Q(subject=user) | Q(actor=user)):
        summary = entry.summary
        for name in names:
            summary = summary.replace(name, "a former contact")
        if summary != entry.summary:
            entry.summary = summary
            entry.save(update_fields=["summary"])
    JoinRequest.objects.filter(user=user, status=JoinRequest.Status.PENDING).update(
        status=JoinRequest.Status.WITHDRAWN, decided_at=timezone.now()
    )
    JoinRequest.objects.filter(user=user).update(email="", message="")
    Organisation.objects.filter(billing_contact=user).update(billing_contact=None)


def _withdraw_invitations_nobody_can_welcome(organisation_ids: list[int]) -> None:
    """An organisation the person leaves with nobody in it keeps no open invitations: whoever accepted one would
    be in an organisation with no admin. Its membership and records stay for the membership team."""
    empty = Organisation.objects.filter(pk__in=organisation_ids).exclude(memberships__left_at__isnull=True)
    for organisation in empty:
        pending = organisation.invitations.pending()
        count = pending.update(revoked_at=timezone.now(), nonce="")
        if count:
            services.record_audit(
                "membership.invitation.revoked",
                f"{count} open invitation{'s' if count != 1 else ''} to {organisation} withdrawn: its only admin "
                "deleted their account, and nobody is left to manage it",
                organisation=organisation,
                changes={"open_invitations": [count, 0]},
            )


def register_sections() -> None:
    register(Section("membership", export=_export, erase=_erase, check=_check))
