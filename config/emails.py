"""E-mail from templates: every message has a subject, a plain-text body and an HTML body.

Templates live at ``<app>/emails/<name>-subject.txt``, ``<name>-body.txt`` and ``<name>-body.html``.
"""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import Context
from django.template.loader import get_template, render_to_string


def _render_text(name: str, context: dict) -> str:
    """A plain-text template, rendered without HTML escaping: "Smith & Jones" stays as it is."""
    return get_template(name).template.render(Context(context, autoescape=False))


def send_email(
    template: str, to: list[str], context: dict, *, attachments: list | None = None, reply_to: list | None = None
) -> None:
    context = {"site_name": settings.WAGTAIL_SITE_NAME, "site_url": settings.SITE_URL, **context}
    subject = " ".join(_render_text(f"{template}-subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=_render_text(f"{template}-body.txt", context),
        to=to,
        attachments=attachments,
        reply_to=reply_to,
    )
    message.attach_alternative(render_to_string(f"{template}-body.html", context), "text/html")
    message.send()
