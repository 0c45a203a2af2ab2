from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """What the platform's running needs beyond any one app: the background jobs' outbox, and every back-office
    download made safe to open in a spreadsheet."""

    name = "config"
    verbose_name = "Platform"

    def ready(self) -> None:
        _neutralise_every_back_office_download()


def _neutralise_every_back_office_download() -> None:
    """Wagtail's own listings and reports (site history, say, which names the organisations members edit) offer
    CSV and XLSX downloads too: each of their cells goes through ``config.text.spreadsheet_cell``, as the
    platform's own exports' do."""
    from wagtail.admin.views.mixins import SpreadsheetExportMixin

    from config.text import spreadsheet_cell

    original = SpreadsheetExportMixin.preprocess_field_value
    if getattr(original, "neutralises", False):
        return

    def preprocess_field_value(self, field, value, export_format):
        return spreadsheet_cell(original(self, field, value, export_format))

    preprocess_field_value.neutralises = True
    SpreadsheetExportMixin.preprocess_field_value = preprocess_field_value
