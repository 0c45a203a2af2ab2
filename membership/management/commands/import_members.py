"""Import organisations and contacts from a CSV or XLSX file: ``manage.py import_members FILE [--dry-run]``."""

import os

from django.core.management.base import BaseCommand, CommandError, CommandParser

from membership.importing import import_members


class Command(BaseCommand):
    help = (
        "Import organisations and their contacts from a CSV or XLSX file, one row per contact. Every row is checked "
        "first; any error means nothing is written and the command exits with status 1."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the .csv or .xlsx file")
        parser.add_argument("--dry-run", action="store_true", help="check every row and report, writing nothing")

    def handle(self, *args, file: str, dry_run: bool, **options) -> None:
        if not os.path.isfile(file):
            raise CommandError(f"No such file: {file}")
        report = import_members(file, os.path.basename(file), dry_run=dry_run)
        for problem in report.problems:
            raise CommandError(problem)
        counts = report.counts
        self.stdout.write(
            f"{report.rows} rows: {counts['new']} new, {counts['update']} updated, {counts['unchanged']} unchanged, "
            f"{counts['error']} with errors"
        )
        if report.extra_columns:
            self.stdout.write(f"Ignored columns that are not part of the import: {', '.join(report.extra_columns)}")
        for error in report.errors:
            for column, messages in error.messages.items():
                for message in messages:
                    self.stdout.write(f"row {error.row_number}, {column}: {message}")
        if counts["error"] > len(report.errors):
            self.stdout.write(f"...and more: {counts['error']} rows have errors.")
        if not report.ok:
            raise CommandError("Nothing was imported: fix the rows above and run it again.")
        self.stdout.write(self.style.SUCCESS("Dry run: nothing was written." if dry_run else "Imported."))
