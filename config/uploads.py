"""Uploaded files are judged by what they contain, not by their names.

A browser (or an attacker) chooses a file's name and declared type freely, and the site serves uploads back by
their extension: an HTML page or an SVG with a script, renamed ``logo.png`` or ``codes.csv``, must never be
stored. Each check here reads the first bytes of the file, compares what it finds with the extension, and raises
a ``ValidationError`` in words for the form to show. The file's position is left where it was.
"""

import os
import zipfile

from django.core.exceptions import ValidationError

# Pillow's name for each image format, by the extensions that claim it.
IMAGE_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF"}

# What a text file (CSV, plain text) must not start with: markup a browser would run, or a binary format.
_MARKUP = (b"<!doctype", b"<html", b"<head", b"<body", b"<script", b"<svg", b"<?xml", b"<!--", b"<iframe", b"<a ")
_BINARY = (b"%PDF-", b"PK\x03\x04", b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"\x7fELF", b"\xd0\xcf\x11\xe0")
_SNIFF_BYTES = 8192

# The part every OOXML package of each kind holds, and the OpenDocument mimetype entry.
_OOXML_PARTS = {"xlsx": "xl/workbook.xml", "docx": "word/document.xml", "pptx": "ppt/presentation.xml"}
_OPENDOCUMENT_TYPES = {"odt": b"application/vnd.oasis.opendocument.text"}


def extension_of(upload) -> str:
    return os.path.splitext(upload.name or "")[1].lower().lstrip(".")


def _head(upload, size: int = _SNIFF_BYTES) -> bytes:
    position = upload.tell()
    upload.seek(0)
    try:
        return upload.read(size)
    finally:
        upload.seek(position)


def megabytes(size: int) -> str:
    mb = size / (1024 * 1024)
    return f"{mb:.0f} MB" if mb == int(mb) else f"{mb:.1f} MB"


def check_size(upload, max_bytes: int, label: str = "The file") -> None:
    if upload.size > max_bytes:
        raise ValidationError(f"{label} must be {megabytes(max_bytes)} or smaller (it is {megabytes(upload.size)}).")


def check_image(
    upload, *, max_bytes: int, max_side: int, extensions: list[str], kinds: str, label: str = "The image"
) -> None:
    """A real image of one of ``extensions`` whose content is the format its extension claims, of at most
    ``max_bytes`` and ``max_side`` pixels wide and high. Pillow reads only the header to learn the size, so an
    image declaring enormous dimensions is refused without being decoded."""
    from PIL import Image

    check_size(upload, max_bytes, label)
    extension = extension_of(upload)
    if extension not in extensions:
        raise ValidationError(f"{label} must be a {kinds} image (a file ending .{', .'.join(extensions)}).")
    position = upload.tell()
    upload.seek(0)
    try:
        with Image.open(upload) as image:
            kind, (width, height) = image.format, image.size
            image.verify()
    except Exception as error:  # Pillow raises many kinds (and DecompressionBombError) for what is not an image
        raise ValidationError(f"{label} must be a {kinds} image; this file is not an image.") from error
    finally:
        upload.seek(position)
    if kind != IMAGE_FORMATS.get(extension):
        raise ValidationError(f"{label} must be a {kinds} image; this file is named .{extension} but holds {kind}.")
    if width > max_side or height > max_side:
        raise ValidationError(f"{label} must be at most {max_side} pixels wide and high (it is {width} by {height}).")


def check_text(upload, *, label: str = "The file") -> None:
    """Plain text (CSV or TXT): no NUL bytes, no binary format's signature and no markup at the start."""
    head = _head(upload)
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if b"\x00" in head or start.startswith(_BINARY):
        raise ValidationError(f"{label} is not UTF-8 text. Save it as CSV (UTF-8) and try again.")
    if start.lower().startswith(_MARKUP):
        raise ValidationError(f"{label} holds a web page or SVG markup, not a spreadsheet or text.")


# A package unpacking to more than this many times its own size, and to over 100 MB, is refused: an office file
# compresses its XML perhaps ten to thirty times, a "zip bomb" thousands of times, to swamp whatever reads it.
MAX_UNPACKED_RATIO = 100
_UNPACKED_FLOOR = 100 * 1024 * 1024


def _zip_entries(upload) -> list[zipfile.ZipInfo] | None:
    position = upload.tell()
    upload.seek(0)
    try:
        with zipfile.ZipFile(upload) as archive:
            return archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    finally:
        upload.seek(position)


def check_office_file(upload, extension: str, *, label: str = "The file") -> None:
    """An OOXML (.xlsx, .docx, .pptx) or OpenDocument (.odt) package, or any ZIP archive (.zip, .key), that does not
    unpack to far more than any real one (``MAX_UNPACKED_RATIO``)."""
    entries = _zip_entries(upload)
    if entries is None:
        raise ValidationError(f"{label} is named .{extension} but is not a .{extension} file.")
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > _UNPACKED_FLOOR and unpacked > MAX_UNPACKED_RATIO * max(upload.size or 0, 1):
        raise ValidationError(
            f"{label} unpacks to {unpacked // (1024 * 1024):,} MB, far more than a real .{extension} file: it was not "
            "read. Save it again from the program that made it, or split it."
        )
    names = [entry.filename for entry in entries]
    part = _OOXML_PARTS.get(extension)
    if part and (part not in names or "[Content_Types].xml" not in names):
        raise ValidationError(f"{label} is named .{extension} but is not a .{extension} file.")
    mimetype = _OPENDOCUMENT_TYPES.get(extension)
    if mimetype and not _head(upload, 100)[30:].startswith(b"mimetype" + mimetype):
        raise ValidationError(f"{label} is named .{extension} but is not a .{extension} file.")


def check_spreadsheet(upload, *, max_bytes: int, label: str = "The file") -> None:
    """A CSV (text) or an Excel workbook (.xlsx), by content as well as by name."""
    check_size(upload, max_bytes, label)
    extension = extension_of(upload)
    if extension == "csv":
        check_text(upload, label=label)
    elif extension == "xlsx":
        check_office_file(upload, extension, label=label)
    else:
        raise ValidationError("Choose a .csv or .xlsx file.")


def check_document(upload, *, max_bytes: int, extensions: list[str], label: str = "The document") -> None:
    """A document whose content is what its extension claims: PDF, RTF, text, an office package or a ZIP."""
    check_size(upload, max_bytes, label)
    extension = extension_of(upload)
    if extension not in extensions:
        raise ValidationError(f"{label} must be one of: {', '.join(e.upper() for e in extensions)}.")
    if extension in ("csv", "txt"):
        check_text(upload, label=label)
    elif extension == "pdf" and _head(upload, 5) != b"%PDF-":
        raise ValidationError(f"{label} is named .pdf but is not a PDF.")
    elif extension == "rtf" and _head(upload, 5) != b"{\\rtf":
        raise ValidationError(f"{label} is named .rtf but is not an RTF document.")
    elif extension in ("docx", "xlsx", "pptx", "odt", "key", "zip"):
        check_office_file(upload, extension, label=label)
