"""Importing organisations and their contacts from a spreadsheet (CSV or XLSX), one row per contact.

What an import guarantees:

- Columns are found by name, in any order (``MemberImportResource`` lists them); each must be present, once. Other
  columns are reported and ignored, repeated or not. A CSV may be UTF-8, Windows' code page or UTF-16 (with its
  byte order mark), separated by commas, semicolons or tabs, its lines ending in any way; a workbook cell holding a
  formula's error (#N/A) is a row error, and control characters are left out of every text. In a workbook, a
  renewal date may be a date cell or a date's serial number (a whole number, counted from the workbook's 1900 or
  1904 date system, from 1990 to 2100); in a CSV it is written out, like 2026-03-31 or 31/03/2026.
- Every row is checked before anything is kept: if any row has an error, nothing is written. Rows are numbered as
  the spreadsheet numbers them (the header is row 1).
- Contacts are matched by e-mail address ignoring case; organisations by company number (1234567 is 01234567),
  then website domain, then name ignoring case and spacing: stored values are read the way the file's are. A
  weaker key never matches an organisation a stronger key contradicts (a different company number, say), and one
  that matches several is an error. Rows without a company number join, in the file, the one organisation with a
  company number (or website) that has their website (or name); if several have it, that is an error too.
- The same key (e-mail address, company number, website domain or name) repeated with different values is an
  error on the later row. A blank cell says nothing: it neither conflicts nor clears what is stored.
- People's names are filled in only where empty (what someone typed in their account stands). Job titles and
  roles are the organisation's and are updated; an import cannot take away an organisation's last admin (it can
  hand the role over: whoever the file makes admin counts, in any row).
- Marketing consent follows ``accounts.services.consents_from_import``: a "no" withdraws; a "yes" is recorded
  only for channels the person has never decided on, and never for someone who has logged in (they choose for
  themselves). A contact who withdrew stays withdrawn.
- New contacts get an account with no password (they set one through "Forgot password") and an unverified
  address. Being imported is not engagement activity.
- One audit entry for each organisation created or changed, and one for the import as a whole.
- The file is read twice, as a stream: once to check it and collect its keys, once to write in batches of
  ``BATCH`` rows. Only the keys stay in memory, so a 100,000-row file needs a few times its own size.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import os
import secrets
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta

from allauth.account.models import EmailAddress
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User
from accounts.services import consents_from_import, latest_consents, record_consents_in_bulk
from config.celery import queue_on_commit
from membership.models import (
    MemberImport,
    MemberImportRow,
    Organisation,
    OrganisationMember,
    OrganisationType,
    Subscription,
    Tier,
    TierPrice,
)
from membership.resources import IMPORT_COLUMNS, CellError, MemberImportResource, company_number_key, domain_of
from membership.services import MembershipError, record_audits

BATCH = 2000
logger = logging.getLogger(__name__)
Role = OrganisationMember.Role
Status = Subscription.Status
LIVE = {Status.PENDING, Status.ACTIVE, Status.PAST_DUE, Status.GRACE}
ENDED = {Status.LAPSED, Status.CANCELLED}
ENTITLED = set(Subscription.ENTITLED_STATUSES)
# The organisation's columns (the file's columns before the contact's), in the order a group keeps their values.
ORG_FIELDS = tuple(IMPORT_COLUMNS[: IMPORT_COLUMNS.index("contact_email")])
NAME, NUMBER, WEBSITE, TYPE, SIZE, TOWN, POSTCODE, TIER, STATUS, RENEWAL = range(len(ORG_FIELDS))
# What changes on an existing organisation, and the model field each column fills.
ORG_MODEL_FIELDS = {
    NAME: "name",
    NUMBER: "company_number",
    WEBSITE: "website",
    TYPE: "organisation_type",
    SIZE: "size_band",
    TOWN: "town",
    POSTCODE: "postcode",
}
_IMPORT_LOCK = 7_350_001  # a PostgreSQL advisory lock: one import writes at a time


class ImportFileError(Exception):
    """The file as a whole cannot be imported (not a spreadsheet, columns missing); the message says why."""


_NOT_TEXT = "This CSV file could not be read as text: save it again as “CSV UTF-8”, or as .xlsx."


@dataclass
class RowResult:
    row_number: int
    outcome: str  # new, update, unchanged or error
    organisation: str = ""
    email: str = ""
    summary: str = ""
    messages: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ImportReport:
    filename: str
    dry_run: bool
    rows: int = 0
    counts: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    errors: list[RowResult] = field(default_factory=list)  # the first MAX_ERRORS_KEPT rows with errors
    written: bool = False

    MAX_ERRORS_KEPT = 1000

    @property
    def ok(self) -> bool:
        return not self.problems and not self.counts["error"]


# Reading the file -----------------------------------------------------------------------------------------------


def _normalise_heading(heading) -> str:
    return str(heading or "").strip().lower().replace(" ", "_").replace("-", "_")


class Sheet:
    """The rows of a CSV or XLSX file, streamed: ``header`` and then ``(row number, cells)``."""

    def __init__(self, path: str, filename: str = "") -> None:
        self.path, self.filename = path, filename or os.path.basename(path)
        self.size = os.path.getsize(path)
        extension = os.path.splitext(self.filename)[1].lower()
        if extension not in (".csv", ".xlsx"):
            raise ImportFileError("Upload a spreadsheet saved as CSV (.csv) or Excel (.xlsx).")
        self.kind = extension[1:]
        if self.kind == "xlsx" and not zipfile.is_zipfile(path):
            raise ImportFileError("This file is not an Excel workbook: save it again as .xlsx, or as CSV.")
        self._done = 0.0
        self._file = None
        self._workbook = None
        self.epoch: datetime | None = None  # a workbook's date system: where its dates' serial numbers count from

    def __enter__(self) -> Sheet:
        return self

    def __exit__(self, *exc) -> None:
        if self._file:
            self._file.close()
        if self._workbook:
            self._workbook.close()

    @property
    def fraction(self) -> float:
        return self._done

    def rows(self) -> Iterator[tuple[int, list]]:
        """Yields the header as row 1, then every row with its number."""
        return self._csv_rows() if self.kind == "csv" else self._xlsx_rows()

    def _csv_rows(self) -> Iterator[tuple[int, list]]:
        self._file = open(self.path, "rb")  # noqa: SIM115 (closed by __exit__)
        read = 0

        def lines() -> Iterator[str]:
            nonlocal read
            first = True
            for raw in self._file:
                read += len(raw)
                if first:
                    raw, first = raw.removeprefix(codecs.BOM_UTF8), False
                # Lines may end in a bare carriage return (Excel for Mac's "CSV (Macintosh)").
                for line in raw.splitlines(keepends=True):
                    try:
                        yield line.decode("utf-8")
                    except UnicodeDecodeError:  # Excel on Windows saves CSV in its own code page
                        yield line.decode("cp1252", errors="replace")

        def utf16_lines() -> Iterator[str]:
            nonlocal read
            text = io.TextIOWrapper(self._file, encoding="utf-16", newline="")
            for line in text:
                read = self._file.tell()
                yield line

        start = self._file.read(2)
        self._file.seek(0)
        source = utf16_lines() if start in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else lines()
        try:
            first_line = next(source)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise ImportFileError(_NOT_TEXT) from None
        if "\0" in first_line:  # UTF-16 or UTF-32 without a byte order mark, or not text at all
            raise ImportFileError(_NOT_TEXT)
        delimiter = max((",", ";", "\t"), key=first_line.count)  # Excel's "Unicode Text" is tab-separated

        def chained() -> Iterator[str]:
            yield first_line
            yield from source

        number = 0
        try:
            for number, cells in enumerate(csv.reader(chained(), delimiter=delimiter), start=1):
                self._done = read / self.size if self.size else 1.0
                yield number, cells
        except (csv.Error, UnicodeDecodeError) as error:
            raise ImportFileError(
                f"Row {number + 1} of this CSV file could not be read ({error}): save it again as “CSV UTF-8”, "
                "or as .xlsx."
            ) from None

    def _xlsx_rows(self) -> Iterator[tuple[int, list]]:
        from openpyxl import load_workbook

        try:
            self._workbook = load_workbook(self.path, read_only=True, data_only=True)
        except Exception as error:  # openpyxl raises many kinds for a damaged file
            raise ImportFileError("This Excel file could not be read: save it again as .xlsx, or as CSV.") from error
        self.epoch = self._workbook.epoch
        sheet = self._workbook.worksheets[0]
        total = sheet.max_row or 0  # as saved: only for the progress bar
        # The saved dimensions may be stale (some programs write A1): believing them would lose rows and columns.
        sheet.reset_dimensions()
        for number, cells in enumerate(sheet.iter_rows(), start=1):
            self._done = min(1.0, number / total) if total > 1 else 0.0
            yield number, [CellError(cell.value) if cell.data_type == "e" else cell.value for cell in cells]


def _blank(cells: list) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


# Keys and groups ------------------------------------------------------------------------------------------------


def _name_key(name: str) -> str:
    return " ".join(name.lower().split())


def _unchanged(index: int, stored, value) -> bool:
    """Whether a stored organisation's value already says what the file says (a website written another way is
    updated to the file's way, though it is no conflict between rows)."""
    if index == WEBSITE:
        return stored.lower().rstrip("/") == value.lower().rstrip("/")
    return _same(index, stored, value)


def _same(index: int, a, b) -> bool:
    """Whether two non-blank values of an organisation's column say the same thing."""
    if index == NAME:
        return _name_key(a) == _name_key(b)
    if index == WEBSITE:  # by the domain organisations are matched by: www., scheme and a final / say nothing
        return domain_of(a) == domain_of(b)
    if index in (TIER, TOWN, POSTCODE):
        return str(a).lower().replace(" ", "") == str(b).lower().replace(" ", "")
    return a == b


class _Group:
    """One organisation as the file describes it: its strongest key and its columns, merged over its rows."""

    __slots__ = ("error", "first_row", "into", "key", "sources", "target", "values")

    def __init__(self, key: tuple, row_number: int, values: list) -> None:
        self.key = key
        self.first_row = row_number
        self.values = values
        self.sources = [row_number if value not in ("", None) else 0 for value in values]
        self.target: int | None = None  # the existing organisation it matches
        self.into: int | None = None  # the group it turned out to be the same organisation as
        self.error: tuple[str, str] | None = None  # (column, message) for every row of the group

    @property
    def domain(self) -> str:
        return domain_of(self.values[WEBSITE]) if self.values[WEBSITE] else ""

    @property
    def name(self) -> str:
        return _name_key(self.values[NAME])

    def merge(self, values: list, row_number: int) -> tuple[str, str] | None:
        """Take in another row's values; returns (column, message) if they contradict the group's."""
        for index, value in enumerate(values):
            if value in ("", None):
                continue
            current = self.values[index]
            if current in ("", None):
                self.values[index], self.sources[index] = value, row_number
            elif not _same(index, current, value):
                return ORG_FIELDS[index], (
                    f"“{_show(value)}” here, but “{_show(current)}” on row {self.sources[index]} for the same "
                    f"organisation ({_describe(self.key)})."
                )
        return None


def _show(value) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _describe(key: tuple) -> str:
    kind, value = key
    return {"number": "company number", "domain": "website", "name": "name"}[kind] + f" {value}"


def _key(values: dict) -> tuple:
    if values["company_number"]:
        return ("number", values["company_number"])
    if values["website"]:
        return ("domain", domain_of(values["website"]))
    return ("name", _name_key(values["organisation_name"]))


def _hash(*parts) -> int:
    return hash(tuple(part.casefold() if isinstance(part, str) else part for part in parts)) & 0xFFFF_FFFF


_CONSENT_CODE = {None: 0, True: 1, False: 2}


def _pack_person(row_number: int, values: dict) -> int:
    first, last = values["contact_first_name"], values["contact_last_name"]
    return (
        row_number
        | (_hash(first) | 1 if first else 0) << 32
        | (_hash(last) | 1 if last else 0) << 64
        | _CONSENT_CODE[values["marketing_consent"]] << 96
    )


def _unpack_person(packed: int) -> tuple[int, int, int, int]:
    mask = 0xFFFF_FFFF
    return packed & mask, (packed >> 32) & mask, (packed >> 64) & mask, packed >> 96


def _person_conflict(stored: int, new: int) -> tuple[int | None, str | None, int]:
    """Compare a contact's row with what earlier rows said: (earlier row, what differs, merged packing)."""
    row, *old = _unpack_person(stored)
    _, *fresh = _unpack_person(new)
    merged = []
    for label, before, after in zip(("name", "name", "marketing consent"), old, fresh, strict=True):
        if before and after and before != after:
            return row, label, stored
        merged.append(before or after)
    return None, None, row | merged[0] << 32 | merged[1] << 64 | merged[2] << 96


# The import -----------------------------------------------------------------------------------------------------


@dataclass
class _Org:
    """What pass two knows about one organisation of the file."""

    pk: int | None
    name: str
    created: bool = False
    changes: dict = field(default_factory=dict)
    contacts_added: int = 0
    contacts_updated: int = 0
    admins: int | None = None  # known once a row asks to demote someone: admins after the file's promotions


class SpreadsheetImport:
    def __init__(
        self,
        path: str,
        filename: str = "",
        *,
        actor: User | None = None,
        dry_run: bool = False,
        on_row: Callable[[RowResult], None] | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        self.path, self.filename = path, filename or os.path.basename(path)
        self.actor, self.dry_run = actor, dry_run
        self.on_row, self.progress = on_row, progress
        self.resource = MemberImportResource()
        self.report = ImportReport(self.filename, dry_run)
        self.groups: list[_Group] = []
        self.group_index: dict[tuple, int] = {}
        self.conflicts: dict[int, dict[str, list[str]]] = {}  # row -> messages found by comparing rows
        self.file_admins: dict[int, tuple] = {}  # group -> hash(e-mail) of each contact the file makes admin
        self.tiers = self._tiers()

    # Pass one: check every row and collect the keys -----------------------------------------------------------

    @staticmethod
    def _tiers() -> dict[str, Tier]:
        tiers = {}
        for tier in Tier.objects.all():
            tiers[tier.name.lower()] = tiers[tier.slug.lower()] = tier
        return tiers

    def _columns(self, header: list) -> dict[str, int]:
        headings = [_normalise_heading(cell) for cell in header]
        wanted = self.resource.columns
        positions: dict[str, int] = {}
        for position, heading in enumerate(headings):
            if not heading:
                continue
            if heading in positions:
                if heading in wanted:  # which of the two to believe? (an extra column is ignored either way)
                    raise ImportFileError(f"The column {heading} appears twice; keep one.")
                continue
            positions[heading] = position
        missing = [column for column in wanted if column not in positions]
        if missing:
            raise ImportFileError(
                f"The file has no column for: {', '.join(missing)}. The columns are: {', '.join(wanted)} "
                "(in any order, named in the first row)."
            )
        self.report.extra_columns = [heading for heading in positions if heading not in wanted]
        return {column: positions[column] for column in wanted}

    def _cells(self, sheet: Sheet) -> Iterator[tuple[int, dict]]:
        rows = sheet.rows()
        try:
            _, header = next(rows)
        except StopIteration:
            raise ImportFileError("The file is empty.") from None
        positions = self._columns(header)
        self.resource.read_numbers_as_dates(sheet.epoch)
        for number, cells in rows:
            if _blank(cells):
                continue
            yield (
                number,
                {column: cells[position] if position < len(cells) else None for column, position in positions.items()},
            )

    def _clean(self, row: dict) -> tuple[dict, dict[str, list[str]]]:
        values, errors = self.resource.clean_row(row)
        if values["tier"]:
            tier = self.tiers.get(values["tier"].lower())
            if tier is None:
                known = ", ".join(sorted({t.name for t in self.tiers.values()})) or "none yet: add them first"
                errors["tier"] = [f"There is no tier called “{values['tier']}”: the tiers are {known}."]
            else:
                values["tier"] = tier.name
        return values, errors

    def check(self) -> None:
        people: dict[int, int] = {}
        with Sheet(self.path, self.filename) as sheet:
            for done, (number, row) in enumerate(self._cells(sheet), start=1):
                self.report.rows += 1
                if done % 500 == 0 and self.progress:
                    self.progress(sheet.fraction / 2)
                values, errors = self._clean(row)
                if errors:
                    continue  # found again, and reported, in pass two
                org_values = [values[column] for column in ORG_FIELDS]
                key = _key(values)
                index = self.group_index.get(key)
                if index is None:
                    self.group_index[key] = len(self.groups)
                    self.groups.append(_Group(key, number, org_values))
                else:
                    conflict = self.groups[index].merge(org_values, number)
                    if conflict:
                        self.conflicts.setdefault(number, {}).setdefault(conflict[0], []).append(conflict[1])
                        continue
                email_key = hash(values["contact_email"])
                packed = _pack_person(number, values)
                if email_key in people:
                    earlier, what, merged = _person_conflict(people[email_key], packed)
                    if earlier:
                        self.conflicts.setdefault(number, {}).setdefault("contact_email", []).append(
                            f"{values['contact_email']} is on row {earlier} too, with a different {what}."
                        )
                        continue
                    people[email_key] = merged
                else:
                    people[email_key] = packed
                if values["role"] == Role.ADMIN:  # tuples: most organisations have one admin, and sets are large
                    group = self.group_index[key]
                    self.file_admins[group] = (*self.file_admins.get(group, ()), email_key)
        self._resolve()
        # By organisation, once groups that are one organisation are known.
        admins: dict[int, tuple] = {}
        for group, emails in self.file_admins.items():
            canonical = self._canonical(group)
            admins[canonical] = (*admins.get(canonical, ()), *emails)
        self.file_admins = admins

    # Between the passes: match the file's organisations to those stored -----------------------------------------

    def _resolve(self) -> None:
        numbers = {g.values[NUMBER] for g in self.groups if g.values[NUMBER]}
        domains = {g.domain for g in self.groups if g.domain}
        names = {g.name for g in self.groups}
        by_number: dict[str, list[tuple]] = {}
        by_domain: dict[str, list[tuple]] = {}
        by_name: dict[str, list[tuple]] = {}
        # Every stored organisation, read once and keyed as the file's are: a number typed without its leading
        # zero, a website with www. or a name with a double space still match. (A few thousand rows: one query.)
        stored = Organisation.objects.order_by().values_list("pk", "name", "company_number", "website")
        for pk, name, stored_number, website in stored.iterator(chunk_size=5000):
            row = (pk, name, company_number_key(stored_number), domain_of(website) if website else "")
            if row[2] in numbers:
                by_number.setdefault(row[2], []).append(row)
            if row[3] in domains:
                by_domain.setdefault(row[3], []).append(row)
            if (key := _name_key(name)) in names:
                by_name.setdefault(key, []).append(row)

        for group in self.groups:
            number, domain = group.values[NUMBER], group.domain
            # A weaker key matches only organisations the stronger keys do not contradict.
            how, column, fits = f"company number {number}", "company_number", by_number.get(number, [])
            if domain and not fits:
                how, column = f"website {domain}", "website"
                fits = [row for row in by_domain.get(domain, []) if not (number and row[2] and row[2] != number)]
            if not fits:
                how, column = f"name {group.values[NAME]}", "organisation_name"
                fits = [
                    row
                    for row in by_name.get(group.name, [])
                    if not (number and row[2] and row[2] != number) and not (domain and row[3] and row[3] != domain)
                ]
            if len(fits) == 1:
                group.target = fits[0][0]
            elif len(fits) > 1:
                names_found = ", ".join(sorted(row[1] for row in fits)[:5])
                group.error = (
                    column,
                    f"The {how} matches several organisations ({names_found}): add the company number.",
                )
        self._merge_groups()

    def _merge_groups(self) -> None:
        """Groups that are one organisation: the same stored one, or (new) one with a stronger key in the file."""
        first_for_target: dict[int, int] = {}
        with_number_by_domain: dict[str, list[int]] = {}
        with_stronger_by_name: dict[str, list[int]] = {}
        for index, group in enumerate(self.groups):
            if group.error:
                continue
            if group.target is not None:
                first_for_target.setdefault(group.target, index)
            elif group.key[0] == "number":
                if group.domain:
                    with_number_by_domain.setdefault(group.domain, []).append(index)
                with_stronger_by_name.setdefault(group.name, []).append(index)
            elif group.key[0] == "domain":
                with_stronger_by_name.setdefault(group.name, []).append(index)
        # Names last: a name may be shared by groups found above to be one organisation.
        for index in sorted(range(len(self.groups)), key=lambda index: self.groups[index].key[0] == "name"):
            group = self.groups[index]
            if group.error:
                continue
            if group.target is not None:
                into = first_for_target[group.target]
            elif group.key[0] == "number":
                continue
            else:
                # Like a stored organisation, one of the file is matched only if it is the only one that matches.
                if group.key[0] == "domain":
                    how, column, found = f"website {group.domain}", "website", with_number_by_domain.get(group.domain)
                else:
                    how, column, found = (
                        f"name {group.values[NAME]}",
                        "organisation_name",
                        with_stronger_by_name.get(group.name),
                    )
                candidates = sorted({self._canonical(other) for other in found or [] if not self.groups[other].error})
                if not candidates:
                    continue
                if len(candidates) > 1:
                    rows = ", ".join(str(self.groups[other].first_row) for other in candidates[:5])
                    group.error = (
                        column,
                        f"The {how} matches several organisations in this file (rows {rows}): add the company number.",
                    )
                    continue
                into = candidates[0]
            if into == index:
                continue
            canonical = self.groups[into]
            conflict = canonical.merge(group.values, group.first_row)
            if conflict:
                group.error = conflict
            else:
                group.into = into

    def _canonical(self, index: int) -> int:
        while self.groups[index].into is not None:
            index = self.groups[index].into
        return index

    # Pass two: write, batch by batch, in one transaction ------------------------------------------------------

    def run(self) -> ImportReport:
        try:
            self.check()
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_IMPORT_LOCK])
                self._write()
                if not self.report.ok or self.dry_run:
                    transaction.set_rollback(True)
                else:
                    self.report.written = True
        except ImportFileError as error:
            self.report.problems.append(str(error))
        return self.report

    def _write(self) -> None:
        self.orgs: dict[int, _Org] = {}  # canonical group -> what is known and done
        self.memberships: dict[int, int] = {}  # hash(org, e-mail) -> packed (row, job title, role)
        self.audit_entries: list[dict] = []
        self.prices = {
            (price.tier_id, price.organisation_type, price.size_band): price.annual_pence
            for price in TierPrice.objects.all()
        }
        self.slugs: set[str] | None = None
        batch: list[tuple[int, dict]] = []
        done = 0
        with Sheet(self.path, self.filename) as sheet:
            for number, row in self._cells(sheet):
                batch.append((number, row))
                if len(batch) == BATCH:
                    self._write_batch(batch)
                    done += len(batch)
                    batch = []
                    if self.progress:
                        self.progress(0.5 + sheet.fraction / 2)
            if batch:
                self._write_batch(batch)
        self._audit()

    def _emit(self, result: RowResult) -> None:
        self.report.counts[result.outcome] += 1
        if result.outcome == "error" and len(self.report.errors) < ImportReport.MAX_ERRORS_KEPT:
            self.report.errors.append(result)
        if self.on_row:
            self.on_row(result)

    def _write_batch(self, batch: list[tuple[int, dict]]) -> None:
        rows: list = []  # a RowResult for a row with errors, else (number, values, canonical group)
        for number, row in batch:
            values, errors = self._clean(row)
            for column, messages in self.conflicts.get(number, {}).items():
                errors.setdefault(column, []).extend(messages)
            group = None
            if not errors:
                group = self.group_index[_key(values)]
                if self.groups[group].error:
                    column, message = self.groups[group].error
                    errors[column] = [message]
            if errors:
                name, email = _text(row.get("organisation_name")), _text(row.get("contact_email"))
                rows.append(RowResult(number, "error", name, email, messages=errors))
            else:
                rows.append((number, values, self._canonical(group)))
        results = iter(_BatchWriter(self, [row for row in rows if isinstance(row, tuple)]).write())
        for row in rows:  # in the file's order
            self._emit(row if isinstance(row, RowResult) else next(results))

    def _audit(self) -> None:
        who = str(self.actor) if self.actor and self.actor.is_authenticated else "An import"
        for org in self.orgs.values():
            if org.pk is None or not (org.created or org.changes or org.contacts_added or org.contacts_updated):
                continue
            people = []
            if org.contacts_added:
                people.append(f"{org.contacts_added} contact{'s' if org.contacts_added != 1 else ''} added")
            if org.contacts_updated:
                people.append(f"{org.contacts_updated} updated")
            changes = dict(org.changes)
            if org.contacts_added:
                changes["contacts added"] = [None, org.contacts_added]
            if org.contacts_updated:
                changes["contacts updated"] = [None, org.contacts_updated]
            what = "created" if org.created else "updated"
            detail = f": {', '.join(people)}" if people else ""
            self.audit_entries.append(
                {
                    "action": f"membership.organisation.import_{what}",
                    "summary": f"{who} {what} {org.name} by importing {self.filename}{detail}",
                    "actor": self.actor,
                    "organisation_id": org.pk,
                    "changes": changes,
                }
            )
        counts = self.report.counts
        self.audit_entries.append(
            {
                "action": "membership.import.completed",
                "summary": (
                    f"{who} imported {self.filename}: {counts['new']} new, {counts['update']} updated, "
                    f"{counts['unchanged']} unchanged"
                ),
                "actor": self.actor,
                "changes": {"file": [None, self.filename], "rows": [None, self.report.rows]},
            }
        )
        record_audits(self.audit_entries)


def _text(value) -> str:
    return "" if value is None else str(value).strip()[:200]


def _period_end(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _year_before(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day - timedelta(days=365)


class _BatchWriter:
    """Works out and writes what one batch of valid rows changes; returns each row's result in order."""

    def __init__(self, job: SpreadsheetImport, rows: list[tuple[int, dict, int]]) -> None:
        self.job, self.rows = job, rows
        self.now = timezone.now()

    def write(self) -> list[RowResult]:
        job = self.job
        if not self.rows:
            return []
        self._load()
        results: list[RowResult] = []
        self.new_orgs: list[tuple[int, Organisation]] = []  # (canonical group, unsaved organisation)
        self.updated_orgs: dict[int, Organisation] = {}
        self.new_users: dict[str, User] = {}
        self.new_members: list[tuple[int, str, OrganisationMember]] = []  # (group, email, unsaved)
        self.updated_members: dict[int, OrganisationMember] = {}
        self.new_subscriptions: list[tuple[int, Subscription]] = []
        self.updated_subscriptions: dict[int, Subscription] = {}

        for number, values, group in self.rows:
            messages: dict[str, list[str]] = {}
            parts: list[str] = []
            outcome = "unchanged"
            org = job.orgs.get(group)
            if org is None:
                org, org_outcome, org_parts = self._organisation(group, number, messages)
                outcome = _worse(outcome, org_outcome)
                parts += org_parts
            if not messages and org is not None:
                contact_outcome, contact_parts = self._contact(org, group, number, values, messages)
                outcome = _worse(outcome, contact_outcome)
                parts += contact_parts
            if messages:
                results.append(
                    RowResult(number, "error", values["organisation_name"], values["contact_email"], "", messages)
                )
                continue
            summary = "; ".join(parts) or "No changes"
            results.append(RowResult(number, outcome, org.name, values["contact_email"], summary[:500]))
        self._save()
        return results

    # Reading what is stored ---------------------------------------------------------------------------------

    def _load(self) -> None:
        job = self.job
        emails = sorted({values["contact_email"] for _, values, _ in self.rows})
        self.users = {}
        self.logged_in = set()  # people who have logged in make their own consent choices
        for pk, email, first, last, last_login in User.objects.filter(email__in=emails).values_list(
            "pk", "email", "first_name", "last_name", "last_login"
        ):
            self.users[email] = (pk, first, last)
            if last_login:
                self.logged_in.add(email)
        pending = {group for _, _, group in self.rows if group not in job.orgs}
        self.targets = {job.groups[group].target for group in pending if job.groups[group].target is not None}
        self.stored_orgs = {
            row["pk"]: row
            for row in Organisation.objects.filter(pk__in=self.targets).values("pk", *ORG_MODEL_FIELDS.values())
        }
        self.subscriptions: dict[int, list[Subscription]] = {}
        for subscription in Subscription.objects.filter(organisation_id__in=self.targets).select_related("tier"):
            self.subscriptions.setdefault(subscription.organisation_id, []).append(subscription)
        user_ids = [pk for pk, _, _ in self.users.values()]
        self.members = {
            (member.organisation_id, member.user_id): member
            for member in OrganisationMember.objects.active().filter(user_id__in=user_ids)
        }
        recorded = latest_consents(user_ids)
        # What each person has decided, as this import goes on: stored choices, then this batch's.
        self.consent_state = {email: recorded.get(pk, {}) for email, (pk, _, _) in self.users.items()}
        self.consent_choices: dict[str, dict[str, bool]] = {}

    # The organisation, at the first row that names it ---------------------------------------------------------

    def _organisation(self, group: int, number: int, messages: dict) -> tuple[_Org | None, str, list[str]]:
        job = self.job
        values = job.groups[group].values
        target = job.groups[group].target
        if target is None:
            return self._new_organisation(group, values, messages)
        stored = self.stored_orgs[target]
        org = _Org(target, values[NAME] or stored["name"])
        changes = {}
        instance = Organisation(pk=target, **{name: stored[name] for name in ORG_MODEL_FIELDS.values()})
        for index, model_field in ORG_MODEL_FIELDS.items():
            value = values[index]
            if value in ("", None) or (stored[model_field] and _unchanged(index, stored[model_field], value)):
                continue
            changes[model_field] = [stored[model_field], value]
            setattr(instance, model_field, value)
        parts = []
        if changes:
            self.updated_orgs[group] = instance
            org.changes |= changes
            parts.append(f"updates {org.name}: {', '.join(name.replace('_', ' ') for name in changes)}")
        org_type, size = values[TYPE] or stored["organisation_type"], values[SIZE] or stored["size_band"]
        sub_outcome, sub_parts = self._subscription(group, org, values, org_type, size, messages)
        if messages:
            return None, "error", []
        job.orgs[group] = org
        outcome = "update" if changes or sub_outcome != "unchanged" else "unchanged"
        return org, _worse(outcome, sub_outcome), parts + sub_parts

    def _new_organisation(self, group: int, values: list, messages: dict) -> tuple[_Org | None, str, list[str]]:
        job = self.job
        for index, column in ((TYPE, "organisation_type"), (SIZE, "size_band")):
            if not values[index]:
                messages[column] = [f"Needed for a new organisation ({values[NAME]} is not on record yet)."]
        if messages:
            return None, "error", []
        org = _Org(None, values[NAME], created=True)
        org.changes = {
            ORG_MODEL_FIELDS[index]: [None, values[index]]
            for index in ORG_MODEL_FIELDS
            if values[index] not in ("", None)
        }
        _, sub_parts = self._subscription(group, org, values, values[TYPE], values[SIZE], messages)
        if messages:
            return None, "error", []
        organisation = Organisation(
            name=values[NAME],
            slug=self._slug(values[NAME]),
            company_number=values[NUMBER],
            website=values[WEBSITE],
            organisation_type=values[TYPE],
            size_band=values[SIZE],
            town=values[TOWN],
            postcode=values[POSTCODE].upper(),
            needs_purchase_order=values[TYPE] in (OrganisationType.PUBLIC_SECTOR, OrganisationType.EDUCATION),
            created_at=self.now,
        )
        self.new_orgs.append((group, organisation))
        job.orgs[group] = org
        return org, "new", [f"new organisation {values[NAME]}", *sub_parts]

    def _slug(self, name: str) -> str:
        job = self.job
        if job.slugs is None:
            job.slugs = set(Organisation.objects.values_list("slug", flat=True).iterator(chunk_size=10_000))
        base = slugify(name)[:200] or "organisation"
        slug, number = base, 2
        while slug in job.slugs:
            slug, number = f"{base}-{number}", number + 1
        job.slugs.add(slug)
        return slug

    def _subscription(
        self, group: int, org: _Org, values: list, org_type: str, size: str, messages: dict
    ) -> tuple[str, list[str]]:
        if not values[TIER]:
            return "unchanged", []
        job = self.job
        tier = job.tiers[values[TIER].lower()]
        renewal = values[RENEWAL]
        existing = self.subscriptions.get(org.pk, []) if org.pk else []
        live = next((s for s in existing if s.status in LIVE), None)
        # A blank status says nothing about a live subscription; a new one is active.
        status = values[STATUS] or (live.status if live else Status.ACTIVE)
        price = job.prices.get((tier.pk, org_type, size))
        needs_price = (live is None and status in LIVE) or (live is not None and live.tier_id != tier.pk)
        if needs_price and price is None:
            messages["tier"] = [
                f"{tier.name} has no price for a {OrganisationType(org_type).label} of {size} staff: add one "
                "under Tiers and prices, or choose another tier."
            ]
            return "error", []
        already_ended = any(s.tier_id == tier.pk and s.status == status for s in existing)
        if live is None and status in ENDED and already_ended:
            return "unchanged", []
        if live is None:
            subscription = Subscription(
                tier=tier,
                status=status,
                amount_pence=price or 0,
                payment_method=(
                    Subscription.PaymentMethod.INVOICE
                    if org_type in (OrganisationType.PUBLIC_SECTOR, OrganisationType.EDUCATION)
                    else Subscription.PaymentMethod.CARD
                ),
                current_period_start=_period_end(_year_before(renewal)) if renewal else None,
                current_period_end=_period_end(renewal) if renewal else None,
                ended_at=(_period_end(renewal) if renewal else self.now) if status in ENDED else None,
                created_at=self.now,
            )
            if status != Status.PENDING:  # a membership the file says has (or had) its benefits
                subscription.started_at = subscription.current_period_start or self.now
            self.new_subscriptions.append((group, subscription))
            org.changes["subscription"] = [None, f"{tier.name}, {Status(status).label.lower()}"]
            return "update" if org.pk else "new", [f"new {tier.name} subscription ({Status(status).label.lower()})"]
        moved = renewal and (live.current_period_end is None or timezone.localdate(live.current_period_end) != renewal)
        moving_online = live.stripe_checkout_session_id is not None and live.stripe_subscription_id is None
        if (live.stripe_subscription_id or live.status == Status.PENDING or moving_online) and (
            live.tier_id != tier.pk or live.status != status or moved
        ):
            # Stripe bills it (or a payment is awaited): a change made here alone would leave Stripe charging for
            # the old terms, or make a member of an organisation that has not paid.
            column = (
                "tier"
                if live.tier_id != tier.pk
                else "subscription_status"
                if live.status != status
                else "renewal_date"
            )
            if moving_online and live.status != Status.PENDING:
                # Its admin has a card checkout open to pay online from the renewal, with the renewal date fixed in
                # it: a new date or tier here would be undone, or charged twice, when the checkout completes.
                messages[column] = [
                    f"{org.name}'s admin is setting up online payment for its {live.tier.name} membership (a card "
                    "checkout is open, and closes within 24 hours if not completed): its tier, status or renewal "
                    "cannot change by import until then. Leave these columns blank, or as they are, for now."
                ]
                return "error", []
            messages[column] = [
                f"{org.name}'s {live.tier.name} membership is {Status(live.status).label.lower()} and "
                f"{'billed through Stripe' if live.stripe_subscription_id else 'waiting for its payment'}: its tier, "
                "status or renewal change on its billing page (or in Stripe's dashboard, which tells the platform), "
                "not by import. Leave these columns blank, or as they are, for this organisation."
            ]
            return "error", []
        changes = {}
        if live.tier_id != tier.pk:
            changes["tier"] = [live.tier.name, tier.name]
            live.tier, live.amount_pence = tier, price
        if live.status != status:
            changes["status"] = [live.status, status]
            live.status = status
            if status in ENTITLED and live.started_at is None:
                live.started_at = live.current_period_start or self.now
            if status in ENDED:
                live.ended_at = _period_end(renewal) if renewal else self.now
        if moved:
            before = timezone.localdate(live.current_period_end).isoformat() if live.current_period_end else None
            changes["renewal date"] = [before, renewal.isoformat()]
            live.current_period_end = _period_end(renewal)
            live.current_period_start = _period_end(_year_before(renewal))
        if not changes:
            return "unchanged", []
        self.updated_subscriptions[live.pk] = live
        org.changes |= {f"subscription {name}": change for name, change in changes.items()}
        return "update", [f"subscription: {', '.join(changes)}"]

    # The contact ------------------------------------------------------------------------------------------------

    def _contact(self, org: _Org, group: int, number: int, values: dict, messages: dict) -> tuple[str, list[str]]:
        job = self.job
        email = values["contact_email"]
        outcome, parts = "unchanged", []
        # The same person twice for one organisation must say the same about their job and role.
        member_key = hash((group, email))
        packed = number | (_hash(values["job_title"]) | 1 if values["job_title"] else 0) << 32
        packed |= {"": 0, Role.ADMIN: 1, Role.MEMBER: 2}[values["role"]] << 64
        earlier = job.memberships.get(member_key)
        if earlier is not None:
            first_row, job_hash, role_code = earlier & 0xFFFF_FFFF, (earlier >> 32) & 0xFFFF_FFFF, earlier >> 64
            new_job, new_role = (packed >> 32) & 0xFFFF_FFFF, packed >> 64
            other_job = job_hash and new_job and job_hash != new_job
            if other_job or (role_code and new_role and role_code != new_role):
                messages["contact_email"] = [
                    f"{email} is on row {first_row} too, for the same organisation, with a different job title or role."
                ]
                return "error", []
            return "unchanged", [f"{email} as on row {first_row}"]
        job.memberships[member_key] = packed

        user = self.users.get(email)
        if user is None and email not in self.new_users:
            self.new_users[email] = User(
                email=email,
                first_name=values["contact_first_name"],
                last_name=values["contact_last_name"],
                password=UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30),  # no log-in until they set one
                date_joined=self.now,
            )
            outcome = "new"
            parts.append(f"new contact {email}")
        elif user is not None:
            pk, first, last = user
            filled = {}
            if values["contact_first_name"] and not first:
                filled["first_name"] = values["contact_first_name"]
            if values["contact_last_name"] and not last:
                filled["last_name"] = values["contact_last_name"]
            if filled:
                User.objects.filter(pk=pk).update(**filled)  # rare: only names that were empty
                self.users[email] = (pk, filled.get("first_name", first), filled.get("last_name", last))
                outcome = "update"
                parts.append(f"{email}: name filled in")

        member_outcome, member_parts = self._membership(org, group, email, values, messages)
        if messages:
            return "error", []
        outcome, parts = _worse(outcome, member_outcome), parts + member_parts
        consent_outcome, consent_parts = self._consent(email, values["marketing_consent"])
        return _worse(outcome, consent_outcome), parts + consent_parts

    def _membership(self, org: _Org, group: int, email: str, values: dict, messages: dict) -> tuple[str, list[str]]:
        user = self.users.get(email)
        existing = self.members.get((org.pk, user[0])) if user and org.pk else None
        role = values["role"]
        if existing is None:
            if not role:
                # Blank: the first contact of a new organisation becomes its admin; anyone else a member.
                first_contact = org.created and not org.contacts_added
                role = Role.ADMIN if first_contact else Role.MEMBER
            member = OrganisationMember(role=role, job_title=values["job_title"], joined_at=self.now)
            self.new_members.append((group, email, member))
            org.contacts_added += 1
            return "new", [f"{email} joins {org.name} as {Role(role).label.lower()}"]
        changes = []
        if values["job_title"] and values["job_title"] != existing.job_title:
            existing.job_title = values["job_title"]
            changes.append("job title")
        if role and role != existing.role:
            if existing.role == Role.ADMIN:
                if org.admins is None:
                    org.admins = self._admins_after_promotions(org, group)
                if org.admins <= 1:
                    messages["role"] = [f"{email} is the only admin of {org.name}: make someone else admin first."]
                    return "error", []
                org.admins -= 1
            existing.role = role
            changes.append("role")
        if not changes:
            return "unchanged", []
        self.updated_members[existing.pk] = existing
        org.contacts_updated += 1
        return "update", [f"{email}: {', '.join(changes)}"]

    def _admins_after_promotions(self, org: _Org, group: int) -> int:
        """The organisation's admins once everyone the file makes admin is (in any row, before or after this one):
        demoting one of them is refused only if that would leave none."""
        stored = set(OrganisationMember.objects.admins().filter(organisation_id=org.pk).values_list("user__email"))
        return len(stored) + len(set(self.job.file_admins.get(group, ())) - {hash(email) for (email,) in stored})

    def _consent(self, email: str, wanted: bool | None) -> tuple[str, list[str]]:
        if wanted is None:
            return "unchanged", []
        recorded = self.consent_state.setdefault(email, {})
        choices = consents_from_import(recorded, wanted, chooses_own=email in self.logged_in)
        if wanted and not choices and not any(recorded.values()):
            return "unchanged", [f"{email}: marketing consent left as they chose it"]
        if not choices:
            return "unchanged", []
        recorded.update(choices)  # a later row for the same person finds the choice made
        self.consent_choices.setdefault(email, {}).update(choices)
        return "update", [f"{email}: marketing consent " + ("recorded" if wanted else "withdrawn")]

    # Writing ----------------------------------------------------------------------------------------------------

    def _save(self) -> None:
        job = self.job
        if self.new_orgs:
            Organisation.objects.bulk_create([organisation for _, organisation in self.new_orgs], batch_size=BATCH)
            for group, organisation in self.new_orgs:
                job.orgs[group].pk = organisation.pk
        if self.updated_orgs:
            Organisation.objects.bulk_update(
                self.updated_orgs.values(), list(ORG_MODEL_FIELDS.values()), batch_size=500
            )
        if self.new_users:
            User.objects.bulk_create(self.new_users.values(), batch_size=BATCH)
            EmailAddress.objects.bulk_create(
                [
                    EmailAddress(user=user, email=user.email, verified=False, primary=True)
                    for user in self.new_users.values()
                ],
                batch_size=BATCH,
            )
            for email, user in self.new_users.items():
                self.users[email] = (user.pk, user.first_name, user.last_name)
        members = []
        for group, email, member in self.new_members:
            member.organisation_id = job.orgs[group].pk
            member.user_id = self.users[email][0]
            members.append(member)
        OrganisationMember.objects.bulk_create(members, batch_size=BATCH)
        if self.updated_members:
            OrganisationMember.objects.bulk_update(self.updated_members.values(), ["role", "job_title"], batch_size=500)
        for group, subscription in self.new_subscriptions:
            subscription.organisation_id = job.orgs[group].pk
        Subscription.objects.bulk_create([s for _, s in self.new_subscriptions], batch_size=BATCH)
        if self.updated_subscriptions:
            self._refuse_if_moved_online_meanwhile([s.pk for s in self.updated_subscriptions.values()])
            Subscription.objects.bulk_update(
                self.updated_subscriptions.values(),
                [
                    "tier",
                    "amount_pence",
                    "status",
                    "started_at",
                    "ended_at",
                    "current_period_start",
                    "current_period_end",
                ],
                batch_size=500,
            )
        choices = {self.users[email][0]: channels for email, channels in self.consent_choices.items()}
        record_consents_in_bulk(choices, source=f"import of {job.filename}"[:100])

    @staticmethod
    def _refuse_if_moved_online_meanwhile(subscription_ids: list[int]) -> None:
        """The rows were checked unlocked, in the first pass; an admin may have started paying online since (a
        checkout opened, or a Stripe subscription linked), which the import must then leave alone. Locked now,
        until the import commits, and checked again: any such row stops the whole import."""
        moved = (
            Subscription.objects.select_for_update(of=("self",))
            .filter(pk__in=subscription_ids)
            .filter(Q(stripe_subscription_id__isnull=False) | Q(stripe_checkout_session_id__isnull=False))
            .values_list("organisation__name", flat=True)
        )
        if names := list(moved[:5]):
            raise ImportFileError(
                f"{', '.join(names)} started paying online while this file was being imported, so nothing was "
                "imported. Import the file again: those rows will say what to change."
            )


_SEVERITY = {"unchanged": 0, "update": 1, "new": 2, "error": 3}


def _worse(a: str, b: str) -> str:
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


def import_members(path: str, filename: str = "", **options) -> ImportReport:
    """Check and import a spreadsheet; with ``dry_run`` (or any error) nothing is kept. See the module's notes."""
    return SpreadsheetImport(path, filename, **options).run()


# Imports staff start in the back office: checked (a dry run) for the preview, then imported on confirmation ------

INLINE_MAX_BYTES = 256 * 1024  # larger files are checked and imported by a Celery worker, with a progress bar


def progress_key(import_id: int) -> str:
    return f"membership:import:{import_id}:progress"


def start_import(upload, actor: User) -> tuple[MemberImport, bool]:
    """Keep an uploaded file and have it checked; returns ``(import, checked_already)``.

    A small file is checked at once; a large one is queued for a worker and the page shows its progress.
    """
    content = b"".join(upload.chunks())
    with transaction.atomic():
        record = MemberImport.objects.create(
            content=content, size=len(content), filename=os.path.basename(upload.name)[:200], uploaded_by=actor
        )
        large = record.size > INLINE_MAX_BYTES
        if large:
            from membership import tasks

            queue_on_commit(tasks.check_member_import, record.pk)
    if not large:
        check_upload(record.pk)
    return record, not large


def confirm_import(record: MemberImport, actor: User) -> bool:
    """Import a checked file; returns whether it ran at once (a large file is queued)."""
    with transaction.atomic():
        record = MemberImport.objects.select_for_update().defer("content").get(pk=record.pk)
        if record.status != MemberImport.Status.CHECKED:
            raise MembershipError("Only a file that has been checked and has no errors can be imported.")
        record.status = MemberImport.Status.IMPORTING
        record.save(update_fields=["status"])
        large = record.size > INLINE_MAX_BYTES
        if large:
            from membership import tasks

            queue_on_commit(tasks.run_member_import, record.pk)
    if not large:
        import_upload(record.pk)
    return not large


def check_upload(import_id: int) -> None:
    """The preview: every row's outcome, nothing kept. Safe to run twice."""
    record = MemberImport.objects.defer("content").filter(pk=import_id, status=MemberImport.Status.CHECKING).first()
    if record is None:
        return
    report = _run_recorded(record, dry_run=True)
    if report is not None:
        record.status = MemberImport.Status.CHECKED if report.ok else MemberImport.Status.INVALID
        record.save(update_fields=["status"])
        if not report.ok:
            _forget_file(record)


def import_upload(import_id: int) -> None:
    """The import itself, once confirmed. Rows are checked again: if anything changed meanwhile and a row now has
    an error, nothing is written and the preview shows why."""
    record = MemberImport.objects.defer("content").filter(pk=import_id, status=MemberImport.Status.IMPORTING).first()
    if record is None:
        return
    report = _run_recorded(record, dry_run=False)
    if report is not None:
        record.status = MemberImport.Status.DONE if report.written else MemberImport.Status.INVALID
        record.save(update_fields=["status"])
    _forget_file(record)


def _forget_file(record: MemberImport) -> None:
    """The uploaded file is not kept once it cannot be imported any more: only its rows' outcomes are."""
    MemberImport.objects.filter(pk=record.pk).update(content=b"")


def _run_recorded(record: MemberImport, *, dry_run: bool) -> ImportReport | None:
    """Run the import on the stored file, keeping each row's outcome for the preview; None if it broke down."""
    try:
        return _run_and_keep_rows(record, dry_run=dry_run)
    except Exception:
        # Nothing was written (the import is one transaction); say so rather than show progress for ever.
        logger.exception("Import %s of %s failed", record.pk, record.filename)
        record.status = MemberImport.Status.FAILED
        record.problems = [
            "The import stopped with an unexpected error, and nothing was written. The error has been logged."
        ]
        record.finished_at = timezone.now()
        record.save(update_fields=["status", "problems", "finished_at"])
        _forget_file(record)
        return None


def _run_and_keep_rows(record: MemberImport, *, dry_run: bool) -> ImportReport:
    key = progress_key(record.pk)
    cache.set(key, 0.0, 3600)
    with tempfile.TemporaryDirectory() as folder:
        outcomes_path = os.path.join(folder, "rows.jsonl")
        path = os.path.join(folder, "upload" + os.path.splitext(record.filename)[1].lower())
        with open(path, "wb") as copy:
            copy.write(MemberImport.objects.filter(pk=record.pk).values_list("content", flat=True).get())
        with open(outcomes_path, "w", encoding="utf-8") as outcomes:
            report = import_members(
                path,
                record.filename,
                actor=record.uploaded_by,
                dry_run=dry_run,
                on_row=lambda result: outcomes.write(json.dumps(asdict(result)) + "\n"),
                progress=lambda fraction: cache.set(key, fraction, 3600),
            )
        with transaction.atomic():
            record.row_results.all().delete()
            with open(outcomes_path, encoding="utf-8") as outcomes:
                batch = []
                for line in outcomes:
                    batch.append(MemberImportRow(member_import=record, **json.loads(line)))
                    if len(batch) == BATCH:
                        MemberImportRow.objects.bulk_create(batch)
                        batch = []
                MemberImportRow.objects.bulk_create(batch)
            record.rows = report.rows
            record.counts = dict(report.counts)
            record.problems = report.problems
            record.extra_columns = report.extra_columns
            record.finished_at = timezone.now()
            record.save(update_fields=["rows", "counts", "problems", "extra_columns", "finished_at"])
    cache.set(key, 1.0, 3600)
    return report
