"""Redeeming perks, and the life of an offer a member organisation submits.

``redeem_perk`` is the only way a redemption is made. It locks the perk's row, so two people redeeming at
once are served one after the other: caps are counted and a code is taken while no one else can.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User
from benefits import catalogue_cache
from benefits.models import Perk, PerkCode, Provider, Redemption
from config.celery import queue_on_commit
from membership.activity import record_activity
from membership.models import ActivityKind, Organisation, Subscription, Tier
from membership.renewals import entitled_tier
from membership.services import MembershipError, membership_of, record_audit

MAX_CODE_LENGTH = 100
MAX_CODES_PER_UPLOAD = 50_000


class RedemptionRefused(MembershipError):
    """The organisation may not redeem this perk now; the message says why, in the member's words."""


class RedemptionIncomplete(RedemptionRefused):
    """The request lacks something the member can add (a contact request's message): bad input, not a refusal."""


# Who may redeem ---------------------------------------------------------------------------------------------


def _tier_names(tiers: list[Tier]) -> str:
    names = [tier.name for tier in tiers]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _not_a_member_reason(organisation: Organisation) -> str:
    latest = Subscription.objects.filter(organisation=organisation).order_by("-created_at", "-id").first()
    if latest and latest.status == Subscription.Status.LAPSED:
        return (
            f"{organisation}'s membership has lapsed, so its perks are paused. "
            "Renew the membership to redeem perks again."
        )
    if latest and latest.status == Subscription.Status.CANCELLED:
        return f"{organisation}'s membership has ended. Rejoin to redeem perks again."
    if latest and latest.status == Subscription.Status.PENDING:
        return f"{organisation}'s membership starts when its first payment arrives; perks open then."
    return f"{organisation} is not a member yet. Choose a membership tier to redeem perks."


def refusal_reason(perk: Perk, organisation: Organisation | None) -> str:
    """Why ``organisation`` may not redeem ``perk`` now, or "" when it may.

    Counts are read as they stand: ``redeem_perk`` asks again while it holds the perk's lock.
    """
    today = timezone.localdate()
    if perk.status != Perk.Status.PUBLISHED:
        return "This offer is not available."
    if perk.starts_on and perk.starts_on > today:
        return f"This offer opens on {perk.starts_on:%-d %B %Y}."
    if perk.ends_on and perk.ends_on < today:
        return f"This offer ended on {perk.ends_on:%-d %B %Y}."
    if organisation is None:
        return "Perks are for the people of member organisations. Join, or ask your organisation to add you."
    tier = entitled_tier(organisation)
    if tier is None:
        return _not_a_member_reason(organisation)
    eligible = list(perk.eligible_tiers.all())
    if eligible and tier not in eligible:
        return f"This offer is for {_tier_names(eligible)} members; {organisation} is on the {tier.name} tier."
    if perk.cap_per_organisation is not None:
        used = perk.redemptions.filter(organisation=organisation).count()
        if used >= perk.cap_per_organisation:
            return (
                f"{organisation} has used all {perk.cap_per_organisation} of its redemptions of this offer."
                if perk.cap_per_organisation > 1
                else f"{organisation} has already redeemed this offer."
            )
    if perk.total_cap is not None and perk.redemption_count >= perk.total_cap:
        return "This offer has been fully claimed."
    if perk.method == Perk.Method.UNIQUE_CODE and not perk.codes.filter(redemption__isnull=True).exists():
        return "All the codes for this offer have been claimed."
    return ""


@dataclass
class Redeemed:
    redemption: Redemption
    created: bool


@transaction.atomic
def redeem_perk(perk: Perk, person: User, organisation: Organisation, message: str = "") -> Redeemed:
    """Redeem ``perk`` for ``organisation``: check, take a code if the perk has a pool, record it.

    A person redeems a perk once per organisation: asking again returns the first redemption (and its code)
    rather than taking another. Raises RedemptionRefused, changing nothing, when the organisation may not.
    """
    perk = Perk.objects.select_for_update(of=("self",)).select_related("provider").get(pk=perk.pk)
    if membership_of(organisation, person) is None:
        raise RedemptionRefused("You can only redeem perks for an organisation you belong to.")
    existing = Redemption.objects.filter(perk=perk, person=person, organisation=organisation).first()
    if existing:
        return Redeemed(existing, created=False)
    reason = refusal_reason(perk, organisation)
    if reason:
        raise RedemptionRefused(reason)
    if perk.method == Perk.Method.CONTACT and not message.strip():
        raise RedemptionIncomplete("Tell the provider what you would like, so they can reply.")
    code = None
    if perk.method == Perk.Method.UNIQUE_CODE:
        code = perk.codes.select_for_update().filter(redemption__isnull=True).order_by("id").first()
    redemption = Redemption.objects.create(
        perk=perk,
        organisation=organisation,
        person=person,
        code=code.code if code else (perk.shared_code if perk.method == Perk.Method.SHARED_CODE else ""),
        message=message.strip() if perk.method == Perk.Method.CONTACT else "",
    )
    if code:
        code.redemption = redemption
        code.save(update_fields=["redemption"])
    perk.redemption_count += 1
    perk.save(update_fields=["redemption_count"])
    record_activity(
        organisation, ActivityKind.PERK_REDEEMED, key=f"redemption:{redemption.pk}", person=person, detail=perk.title
    )
    from benefits import tasks

    queue_on_commit(tasks.send_redemption_email, redemption.pk)
    if perk.method == Perk.Method.CONTACT:
        queue_on_commit(tasks.send_contact_request, redemption.pk)
    if code:
        _alert_if_codes_low(perk)
    return Redeemed(redemption, created=True)


def _alert_if_codes_low(perk: Perk) -> None:
    """Tell staff once when the pool falls to its threshold; adding codes re-arms the alert."""
    if perk.low_codes_alerted_at:
        return
    left = perk.codes.filter(redemption__isnull=True).count()
    if left > perk.low_codes_threshold:
        return
    perk.low_codes_alerted_at = timezone.now()
    perk.save(update_fields=["low_codes_alerted_at"])
    from benefits import tasks

    queue_on_commit(tasks.send_low_codes_alert, perk.pk)


# Code pools ---------------------------------------------------------------------------------------------


@dataclass
class CodeUpload:
    codes: list[str] = field(default_factory=list)
    repeated_in_file: list[str] = field(default_factory=list)
    already_in_pool: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return len(self.repeated_in_file) + len(self.already_in_pool)


def read_code_file(perk: Perk, upload) -> CodeUpload:
    """Read a CSV of codes: the first column of each row (a header row named "code" is skipped).

    Codes repeated in the file, or already in the perk's pool, are reported so staff can decide.
    """
    result = CodeUpload()
    try:
        text = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        result.errors.append("The file is not UTF-8 text. Save it as CSV (UTF-8) and try again.")
        return result
    seen: set[str] = set()
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        code = row[0].strip() if row else ""
        if not code or (number == 1 and code.lower() in {"code", "codes"}):
            continue
        if len(code) > MAX_CODE_LENGTH:
            result.errors.append(f"Row {number}: the code is longer than {MAX_CODE_LENGTH} characters.")
        elif code in seen:
            result.repeated_in_file.append(code)
        else:
            seen.add(code)
            result.codes.append(code)
    if len(result.codes) > MAX_CODES_PER_UPLOAD:
        result.errors.append(f"Upload at most {MAX_CODES_PER_UPLOAD:,} codes at a time.")
    existing = (
        set(PerkCode.objects.filter(perk=perk, code__in=result.codes).values_list("code", flat=True))
        if result.codes and not result.errors
        else set()
    )
    result.already_in_pool = [code for code in result.codes if code in existing]
    result.codes = [code for code in result.codes if code not in existing]
    if not result.codes and not result.errors:
        result.errors.append("The file has no new codes.")
    return result


@transaction.atomic
def add_codes(perk: Perk, codes: list[str], actor: User) -> int:
    """Add codes to the pool, skipping any already there; returns how many were added."""
    perk = Perk.objects.select_for_update().get(pk=perk.pk)
    before = perk.codes.filter(redemption__isnull=True).count()
    PerkCode.objects.bulk_create(
        [PerkCode(perk=perk, code=code) for code in codes], ignore_conflicts=True, batch_size=2000
    )
    added = perk.codes.filter(redemption__isnull=True).count() - before
    if perk.low_codes_alerted_at and before + added > perk.low_codes_threshold:
        perk.low_codes_alerted_at = None
        perk.save(update_fields=["low_codes_alerted_at"])
    record_audit(
        "benefits.codes.added",
        f"{actor} added {added} codes to {perk}",
        actor=actor,
        organisation=perk.provider.organisation,
        changes={"codes_left": [before, before + added]},
    )
    return added


# Offers from member organisations -----------------------------------------------------------------------


def provider_for(organisation: Organisation) -> Provider:
    provider = Provider.objects.filter(organisation=organisation).first()
    if provider:
        return provider
    slug = base = slugify(organisation.name)[:200] or "provider"
    suffix = 2
    while Provider.objects.filter(slug=slug).exists():
        slug, suffix = f"{base}-{suffix}", suffix + 1
    return Provider.objects.create(
        name=organisation.name, slug=slug, organisation=organisation, website=organisation.website
    )


def _unique_perk_slug(title: str) -> str:
    slug = base = slugify(title)[:120] or "perk"
    suffix = 2
    while Perk.objects.filter(slug=slug).exists():
        slug, suffix = f"{base}-{suffix}", suffix + 1
    return slug


def _require_org_admin(organisation: Organisation, actor: User) -> None:
    membership = membership_of(organisation, actor)
    if membership is None or not membership.is_admin:
        raise MembershipError("Only an admin of the organisation can offer perks on its behalf.")


@transaction.atomic
def submit_offer(organisation: Organisation, actor: User, form) -> Perk:
    """An org admin offers a perk from their organisation; it waits for the membership team's approval.

    ``form`` is a validated ModelForm for a new perk or one of the organisation's draft or rejected offers.
    An offer is checked as it stands in the database, under its row lock: one the membership team approved
    since the member opened it is refused, not sent back for approval with the member's changes.
    """
    _require_org_admin(organisation, actor)
    if form.instance.pk:
        stored = _locked_offer(form.instance)
        if stored.status not in (Perk.Status.DRAFT, Perk.Status.REJECTED, Perk.Status.PENDING):
            raise MembershipError("A published offer can only be changed by the membership team.")
    perk = form.save(commit=False)
    perk.provider = provider_for(organisation)
    if not perk.slug:
        perk.slug = _unique_perk_slug(perk.title)
    perk.status = Perk.Status.PENDING
    perk.submitted_by = actor
    perk.rejection_reason = ""
    perk.save()
    form.save_m2m()
    record_audit(
        "benefits.offer.submitted",
        f"{actor} offered the perk {perk} from {organisation}",
        actor=actor,
        organisation=organisation,
        changes={"status": [None, Perk.Status.PENDING]},
    )
    from benefits import tasks

    queue_on_commit(tasks.send_offer_submitted_email, perk.pk)
    return perk


def _locked_offer(perk: Perk) -> Perk:
    return Perk.objects.select_for_update(of=("self",)).select_related("provider__organisation").get(pk=perk.pk)


@transaction.atomic
def approve_offer(perk: Perk, actor: User) -> Perk:
    perk = _locked_offer(perk)
    if perk.status != Perk.Status.PENDING:
        raise MembershipError(f"{perk} is {perk.get_status_display().lower()}, not waiting for approval.")
    perk.status = Perk.Status.PUBLISHED
    perk.published_at = timezone.now()
    perk.save(update_fields=["status", "published_at"])
    record_audit(
        "benefits.offer.approved",
        f"{actor} approved and published the perk {perk}",
        actor=actor,
        organisation=perk.provider.organisation,
        changes={"status": [Perk.Status.PENDING, Perk.Status.PUBLISHED]},
    )
    from benefits import tasks

    queue_on_commit(tasks.send_offer_decision_email, perk.pk)
    return perk


@transaction.atomic
def reject_offer(perk: Perk, actor: User, reason: str) -> Perk:
    if not reason.strip():
        raise MembershipError("Give a reason: the organisation is told it, so they can change their offer.")
    perk = _locked_offer(perk)
    if perk.status != Perk.Status.PENDING:
        raise MembershipError(f"{perk} is {perk.get_status_display().lower()}, not waiting for approval.")
    perk.status = Perk.Status.REJECTED
    perk.rejection_reason = reason.strip()
    perk.save(update_fields=["status", "rejection_reason"])
    record_audit(
        "benefits.offer.rejected",
        f"{actor} rejected the perk {perk}: {perk.rejection_reason}",
        actor=actor,
        organisation=perk.provider.organisation,
        changes={"status": [Perk.Status.PENDING, Perk.Status.REJECTED]},
    )
    from benefits import tasks

    queue_on_commit(tasks.send_offer_decision_email, perk.pk)
    return perk


@transaction.atomic
def withdraw_offer(perk: Perk, actor: User) -> Perk:
    """The offering organisation takes its offer back: a pending one returns to draft, a live one ends today.

    Codes and links already given out stay with the members who redeemed them.
    """
    perk = _locked_offer(perk)
    organisation = perk.provider.organisation
    _require_org_admin(organisation, actor)
    before = perk.status
    if before == Perk.Status.PENDING:
        perk.status = Perk.Status.DRAFT
    elif before == Perk.Status.PUBLISHED:
        perk.status = Perk.Status.EXPIRED
        perk.ends_on = timezone.localdate()
    else:
        raise MembershipError(f"{perk} is {perk.get_status_display().lower()}; there is nothing to withdraw.")
    perk.save(update_fields=["status", "ends_on"])
    record_audit(
        "benefits.offer.withdrawn",
        f"{actor} withdrew the perk {perk}",
        actor=actor,
        organisation=organisation,
        changes={"status": [before, perk.status]},
    )
    return perk


def expire_perks() -> int:
    """Published perks whose end date has passed become expired; returns how many. Safe to run twice."""
    expired = Perk.objects.published().filter(ends_on__lt=timezone.localdate()).update(status=Perk.Status.EXPIRED)
    if expired:
        catalogue_cache.bump()
    return expired
