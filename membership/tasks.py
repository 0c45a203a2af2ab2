"""Membership e-mails, sent in the background once the change that causes them has committed."""

import stripe
from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from config.emails import send_email
from membership.models import Invitation, JoinRequest, OrganisationMember
from membership.services import invitation_key

# Each e-mail goes once however often its job runs (a relay publishing again, a broker redelivering): the job marks
# the row in the transaction that sends, with a conditional update that only one worker can make; a second worker
# waits on the row and then finds it marked. A send that fails rolls the mark back, so a retry sends. As with the
# billing e-mails, a worker killed after the SMTP server took the message but before the commit sends it again.


def _first_to_mark(row: QuerySet, **mark) -> bool:
    """Mark the one row ``row`` names, unless it is marked already; whether this caller marked it."""
    return row.update(**mark) == 1


# A send that failed (SMTP down: smtplib's errors are OSErrors) is retried; nothing was marked, so it sends once.
@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
@transaction.atomic
def send_invitation_email(invitation_id: int) -> None:
    """Send the invitation's current link, once: a resend makes a new link, which is sent in turn."""
    invitation = Invitation.objects.select_related("organisation", "invited_by").filter(pk=invitation_id).first()
    if invitation is None or invitation.status != "pending":
        return  # revoked or accepted before the e-mail went: nothing to send
    nonce = invitation.nonce
    if not _first_to_mark(
        Invitation.objects.pending().filter(pk=invitation.pk, nonce=nonce).exclude(emailed_nonce=nonce),
        emailed_nonce=nonce,
    ):
        return  # this link has been e-mailed already, or replaced since (its resend sends the new one)
    link = settings.SITE_URL + reverse("membership:invitation", args=[invitation_key(invitation)])
    send_email(
        "membership/emails/invitation",
        [invitation.email],
        {"invitation": invitation, "link": link, "organisation": invitation.organisation},
    )


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
@transaction.atomic
def send_join_request_email(join_request_id: int) -> None:
    """Tell the organisation's admins of a pending request, once."""
    join_request = JoinRequest.objects.select_related("organisation", "user").filter(pk=join_request_id).first()
    if join_request is None or join_request.status != JoinRequest.Status.PENDING:
        return
    if not _first_to_mark(
        JoinRequest.objects.filter(pk=join_request.pk, status=JoinRequest.Status.PENDING, request_emailed_at=None),
        request_emailed_at=timezone.now(),
    ):
        return
    admins = OrganisationMember.objects.admins().filter(organisation=join_request.organisation)
    recipients = list(admins.values_list("user__email", flat=True))
    if not recipients:
        return
    link = settings.SITE_URL + reverse("membership:colleagues", args=[join_request.organisation.slug])
    send_email(
        "membership/emails/join-request",
        recipients,
        {"join_request": join_request, "organisation": join_request.organisation, "link": link},
    )


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
@transaction.atomic
def send_join_decision_email(join_request_id: int) -> None:
    """Tell the requester the admins' decision, once."""
    join_request = JoinRequest.objects.select_related("organisation", "user").filter(pk=join_request_id).first()
    if join_request is None or join_request.status == JoinRequest.Status.PENDING or not join_request.email:
        return  # undecided, or the requester's personal data has been erased since
    if not _first_to_mark(
        JoinRequest.objects.filter(pk=join_request.pk, decision_emailed_at=None),
        decision_emailed_at=timezone.now(),
    ):
        return
    send_email(
        "membership/emails/join-decision",
        [join_request.email],
        {
            "join_request": join_request,
            "organisation": join_request.organisation,
            "approved": join_request.status == JoinRequest.Status.APPROVED,
            "link": settings.SITE_URL + reverse("membership:portal"),
        },
    )


# Renewals and lapses: the daily job and the billing e-mails it queues (see membership.renewals).


@shared_task(acks_late=True)
def run_renewal_jobs() -> dict[str, int]:
    """The daily billing round: unpaid renewals into grace, expired grace to lapsed, then the e-mails ahead of
    renewals, then e-mails recorded earlier but never delivered. Safe to run twice; returns how many
    subscriptions (or notices) each step acted on."""
    from membership import renewals

    now = timezone.now()
    return {
        "grace_started": renewals.start_grace_periods(now),
        "lapsed": renewals.lapse_expired(now),
        "renewal_reminders": renewals.send_renewal_reminders(now),
        "charge_notices": renewals.send_charge_notices(now),
        "notices_redelivered": renewals.redeliver_notices(now),
    }


# A send that failed (SMTP down: smtplib's errors are OSErrors) is retried; nothing was sent, so nothing doubles.
@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_billing_email(subscription_id: int, kind: str) -> None:
    from membership import renewals

    renewals.send_billing_email(subscription_id, kind)


@shared_task(acks_late=True)
def send_payment_failed_notice(subscription_id: int) -> None:
    """Queued on commit by the Stripe webhook once it has recorded a failed payment."""
    from membership import renewals

    renewals.send_payment_failed_notice(subscription_id)


# Stripe unreachable, failing or busy: try again later. A request Stripe refuses (4xx) would be refused again.
@shared_task(
    acks_late=True,
    autoretry_for=(stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError),
    retry_backoff=True,
    max_retries=8,
)
def stop_renewing_after_lapse(subscription_id: int) -> None:
    """Queued on commit by the renewals job when it lapses a membership for want of payment."""
    from membership import billing_changes

    billing_changes.stop_renewing_after_lapse(subscription_id)


# Engagement: the nightly full recomputation and the weekly digest (see membership.engagement).


@shared_task(acks_late=True)
def recompute_engagement_scores() -> int:
    """Sum every organisation's activity again; the result equals the incremental updates made since."""
    from membership.engagement import recompute_scores

    return recompute_scores()


@shared_task(acks_late=True)
def queue_engagement_digest() -> bool:
    """Beat asks every Monday morning (and may ask twice): the week's digest is queued once."""
    from membership.engagement_dashboard import queue_weekly_digest

    return queue_weekly_digest()


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_engagement_digest(digest_id: int) -> bool:
    from membership.engagement_dashboard import send_digest

    return send_digest(digest_id)


# Imports staff start in the back office (see membership.importing): large files are checked and imported here.


@shared_task(acks_late=True)
def check_member_import(import_id: int) -> None:
    from membership.importing import check_upload

    check_upload(import_id)


@shared_task(acks_late=True)
def run_member_import(import_id: int) -> None:
    from membership.importing import import_upload

    import_upload(import_id)
