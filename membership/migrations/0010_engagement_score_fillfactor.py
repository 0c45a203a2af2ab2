"""Room on each page of the engagement scores for a row's next version: every activity rewrites its
organisation's score row, and with free space on the page PostgreSQL updates it in place (a "HOT" update),
without touching the index. PostgreSQL only; other databases have no such setting."""

from django.db import migrations, models


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE membership_engagementscore SET (fillfactor = 50)")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE membership_engagementscore RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("membership", "0009_engagement")]

    operations = [
        migrations.RunPython(set_fillfactor, reset_fillfactor),
        migrations.AlterField(
            model_name="engagementscore",
            name="recomputed_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When a full recomputation last stored it (it writes only scores that differ).",
                null=True,
            ),
        ),
    ]
