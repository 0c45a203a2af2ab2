"""Event activity recorded before a person's place at an event became one occasion, however often they cancel and
register again (``cms.events.services.activity_key``): its keys are rewritten to the new form, and a place counted
more than once keeps its earliest row. The nightly recomputation then brings the engagement scores in line with
the ledger."""

from django.db import migrations

OLD = ("event_registered:registration:", "event_attended:registration:")


def rewrite_keys(apps, schema_editor):
    ActivityEvent = apps.get_model("membership", "ActivityEvent")
    EventRegistration = apps.get_model("cms", "EventRegistration")
    rows = ActivityEvent.objects.filter(key__startswith=OLD[0]) | ActivityEvent.objects.filter(key__startswith=OLD[1])
    rows = list(rows.order_by("occurred_at", "pk").values_list("pk", "key"))
    ids = {int(key.rsplit(":", 1)[1]) for _, key in rows if key.rsplit(":", 1)[1].isdigit()}
    places = {
        pk: f"event:{event_id}:{user_id}:{organisation_id}"
        for pk, event_id, user_id, organisation_id in EventRegistration.objects.filter(pk__in=ids).values_list(
            "pk", "event_id", "user_id", "organisation_id"
        )
    }
    # Keys recorded in the new form already.
    taken = set(ActivityEvent.objects.filter(key__contains=":event:").values_list("key", flat=True))
    duplicates = []
    for pk, key in rows:
        kind, _, number = key.split(":", 2)
        place = places.get(int(number)) if number.isdigit() else None
        if place is None:
            continue  # its registration is gone: the key stays as it was
        new_key = f"{kind}:{place}"
        if new_key in taken:
            duplicates.append(pk)
        else:
            taken.add(new_key)
            ActivityEvent.objects.filter(pk=pk).update(key=new_key)
    ActivityEvent.objects.filter(pk__in=duplicates).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("cms", "0005_optional_page_chooser"),
        ("membership", "0014_subscription_started_at"),
    ]

    operations = [migrations.RunPython(rewrite_keys, migrations.RunPython.noop)]
