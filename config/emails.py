"""E-mail from templates: every message has a subject, a plain-text body and an HTML body.

Templates live at ``<app>/emails/<name>-subject.txt``, ``<name>-body.txt`` and ``<name>-body.html``.
"""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def send_email(template: str, to: list[str], context: dict, *, attachments: list | None = None) -> None:
    context = {"site_name": settings.WAGTAIL_SITE_NAME, "site_url": settings.SITE_URL, **context}
    subject = " ".join(render_to_string(f"{template}-subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{template}-body.txt", context),
        to=to,
        attachments=attachments,
    )
    message.attach_alternative(render_to_string(f"{template}-body.html", context), "text/html")
    message.send()
