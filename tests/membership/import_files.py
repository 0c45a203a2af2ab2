"""Spreadsheets for the import tests, written the way staff would save them."""

import csv
from pathlib import Path

COLUMNS = [
    "organisation_name",
    "company_number",
    "website",
    "organisation_type",
    "size_band",
    "town",
    "postcode",
    "tier",
    "subscription_status",
    "renewal_date",
    "contact_email",
    "contact_first_name",
    "contact_last_name",
    "job_title",
    "role",
    "marketing_consent",
]

ACME = {
    "organisation_name": "Acme Robotics Ltd",
    "company_number": "01234567",
    "website": "https://www.acme-robotics.example",
    "organisation_type": "SME",
    "size_band": "10-49",
    "town": "Sunderland",
    "postcode": "SR1 1AA",
    "tier": "Growth",
    "subscription_status": "active",
    "renewal_date": "2027-03-31",
}
BEDE = {
    "organisation_name": "Bede Data",
    "website": "bede-data.example",
    "organisation_type": "Start-up",
    "size_band": "1-9",
    "town": "Jarrow",
}


def contact(organisation: dict, email: str, first: str, last: str, **fields) -> dict:
    return {**organisation, "contact_email": email, "contact_first_name": first, "contact_last_name": last, **fields}


STANDARD_ROWS = [
    contact(
        ACME, "ann.lee@acme-robotics.example", "Ann", "Lee", job_title="CEO", role="admin", marketing_consent="yes"
    ),
    contact(ACME, "bob.kay@acme-robotics.example", "Bob", "Kay", job_title="Engineer", marketing_consent="no"),
    contact(BEDE, "cat.ng@bede-data.example", "Cat", "Ng", job_title="Founder"),
]


def write_csv(path: Path, rows: list[dict], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: row.get(column, "") for column in columns})
    return path


def write_xlsx(path: Path, rows: list[dict], columns: list[str] = COLUMNS, epoch=None) -> Path:
    """``epoch``: the workbook's date system (openpyxl's ``CALENDAR_MAC_1904`` for 1904), else 1900's."""
    from openpyxl import Workbook

    workbook = Workbook()
    if epoch is not None:
        workbook.epoch = epoch
    sheet = workbook.active
    sheet.append(columns)
    for row in rows:
        sheet.append([row.get(column, None) for column in columns])
    workbook.save(path)
    return path
