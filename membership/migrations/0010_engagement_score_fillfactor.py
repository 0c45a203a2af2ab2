"""Room on each page of the engagement scores for a row's next version: every activity rewrites its
organisation's score row, and with free space on the page PostgreSQL updates it in place (a "HOT" update),
without touching the index. PostgreSQL only; other databases have no such setting."""

from django.db import migrations


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE membership_engagementscore SET (fillfactor = 50)")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE membership_engagementscore RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("membership", "0009_engagement")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
