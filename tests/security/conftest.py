"""Shared pieces of the security suite: hostile payloads, files that lie about their type, and a back-office
client for staff who have passed their second factor."""

import io
import zipfile

import pytest
from PIL import Image

from tests import factories
from tests.membership.conftest import fake_stripe  # noqa: F401  (the local fake Stripe, for forms that reach it)

# Stored XSS: whatever a person types is shown back as text, never run.
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"

HTML_PAGE = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG_WITH_SCRIPT = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(document.domain)</script></svg>"
)


def image_bytes(width: int = 32, height: int = 32, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 0).save(buffer, fmt)
    return buffer.getvalue()


def zip_bytes(names: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in names.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def xlsx_bytes(rows: list[list]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def padded(content: bytes, size: int) -> bytes:
    """``content`` followed by zeros up to ``size`` bytes: still the same kind of file, only too big."""
    return content + b"\0" * max(0, size - len(content))


@pytest.fixture
def back_office(client, db):
    """A superuser of the back office with an authenticator app, logged in (the second factor is passed)."""
    user = factories.make_staff("security@netech.example", superuser=True, first_name="Sam", last_name="Ward")
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture(autouse=True)
def _page_tree(db):
    """The home page, default site and root collection, even in a database a committing test has flushed."""
    from tests.conftest import _ensure_page_tree

    _ensure_page_tree()
