"""Perk e-mails and the daily expiry, run in the background after the change that causes them commits."""

from celery import shared_task
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db.models import Q
from django.urls import reverse

from accounts.models import User
from benefits import services
from benefits.models import Perk, Redemption
from config.emails import send_email
from membership.models import OrganisationMember


def _staff_with(permission: str) -> list[str]:
    """Active staff who hold ``app_label.codename``, directly, through a group or as superusers."""
    app_label, codename = permission.split(".")
    perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
    holders = Q(is_superuser=True)
    if perm:
        holders |= Q(groups__permissions=perm) | Q(user_permissions=perm)
    users = User.objects.filter(holders, is_active=True, is_staff=True).distinct()
    return sorted(users.values_list("email", flat=True))


def _admin_emails(organisation) -> list[str]:
    admins = OrganisationMember.objects.admins().filter(organisation=organisation)
    return list(admins.values_list("user__email", flat=True))


def _link(name: str, *args) -> str:
    return settings.SITE_URL + reverse(name, args=args)


def _redemption(redemption_id: int) -> Redemption | None:
    return (
        Redemption.objects.select_related("perk__provider__organisation", "organisation", "person")
        .filter(pk=redemption_id)
        .first()
    )


@shared_task(acks_late=True)
def send_redemption_email(redemption_id: int) -> None:
    """The person who redeemed gets what they redeemed (the code, the link or what happens next)."""
    redemption = _redemption(redemption_id)
    if redemption is None or redemption.person is None:
        return
    send_email(
        "benefits/emails/redeemed",
        [redemption.person.email],
        {
            "redemption": redemption,
            "perk": redemption.perk,
            "link": _link("benefits:perk", redemption.perk.slug),
            "redemptions_link": _link("benefits:my_redemptions"),
        },
    )


@shared_task(acks_late=True)
def send_contact_request(redemption_id: int) -> None:
    """A perk redeemed by contact request: the provider hears who asked and what for."""
    redemption = _redemption(redemption_id)
    if redemption is None or redemption.person is None:
        return
    provider = redemption.perk.provider
    recipients = [provider.contact_email] if provider.contact_email else []
    if not recipients and provider.organisation_id:
        recipients = _admin_emails(provider.organisation)
    if not recipients:
        recipients = _staff_with("benefits.change_perk")
    send_email(
        "benefits/emails/contact-request",
        recipients,
        {"redemption": redemption, "perk": redemption.perk, "person": redemption.person},
        reply_to=[redemption.person.email],
    )


@shared_task(acks_late=True)
def send_low_codes_alert(perk_id: int) -> None:
    perk = Perk.objects.with_codes_left().filter(pk=perk_id).first()
    if perk is None:
        return
    send_email(
        "benefits/emails/low-codes",
        _staff_with("benefits.change_perk"),
        {"perk": perk, "link": _link("benefits_perks:codes", perk.pk)},
    )


@shared_task(acks_late=True)
def send_offer_submitted_email(perk_id: int) -> None:
    perk = Perk.objects.select_related("provider__organisation").filter(pk=perk_id).first()
    if perk is None or perk.status != Perk.Status.PENDING:
        return
    send_email(
        "benefits/emails/offer-submitted",
        _staff_with("benefits.approve_perk"),
        {"perk": perk, "link": _link("benefits_perks:review", perk.pk)},
    )


@shared_task(acks_late=True)
def send_offer_decision_email(perk_id: int) -> None:
    """The offering organisation's admins hear that their offer is live, or why it was not accepted."""
    perk = Perk.objects.select_related("provider__organisation").filter(pk=perk_id).first()
    if perk is None or perk.provider.organisation is None:
        return
    if perk.status not in (Perk.Status.PUBLISHED, Perk.Status.REJECTED):
        return
    organisation = perk.provider.organisation
    send_email(
        "benefits/emails/offer-decision",
        _admin_emails(organisation),
        {"perk": perk, "organisation": organisation, "link": _link("benefits:offers", organisation.slug)},
    )


@shared_task
def expire_perks() -> int:
    return services.expire_perks()
