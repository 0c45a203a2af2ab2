"""Tickets: the code a QR carries, and reading it back at the door.

The QR encodes the registration's reference signed with the site's key (``REFERENCE:signature``), so a code
cannot be made up from a guessed reference. Staff may also type the bare reference printed under the QR.
"""

import base64
import io

import qrcode
from django.core import signing

from cms.events.models import TICKET_ALPHABET, TICKET_LENGTH, EventRegistration

TICKET_SALT = "cms.events.ticket"


def ticket_code(registration: EventRegistration) -> str:
    return signing.Signer(salt=TICKET_SALT).sign(registration.reference)


def reference_from_code(code: str) -> str | None:
    """The reference a scanned code or a typed reference names; None when it is neither (or is forged)."""
    code = code.strip()
    if ":" in code:
        try:
            return signing.Signer(salt=TICKET_SALT).unsign(code)
        except signing.BadSignature:
            return None
    reference = code.upper().replace(" ", "").replace("-", "")
    if len(reference) == TICKET_LENGTH and all(character in TICKET_ALPHABET for character in reference):
        return reference
    return None


def qr_png(registration: EventRegistration) -> bytes:
    """The ticket's QR code as a PNG image."""
    image = qrcode.make(ticket_code(registration), box_size=8, border=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def qr_data_uri(registration: EventRegistration) -> str:
    """The QR code inline, for the ticket page (the site's CSP allows ``data:`` images)."""
    return "data:image/png;base64," + base64.b64encode(qr_png(registration)).decode()
