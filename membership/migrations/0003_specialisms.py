from django.db import migrations
from django.utils.text import slugify

SPECIALISMS = [
    "AI and data",
    "Immersive and games",
    "Industry 4.0",
    "Fintech",
    "Healthtech",
    "Cyber security",
    "Software services",
    "Cloud and infrastructure",
    "Digital marketing and media",
    "Edtech",
    "Energy and cleantech",
    "Hardware and IoT",
    "Space and satellite",
    "Skills and training",
]


def add_specialisms(apps, schema_editor):
    """The list the membership team starts from; they edit it in the back office."""
    Specialism = apps.get_model("membership", "Specialism")
    for name in SPECIALISMS:
        Specialism.objects.get_or_create(slug=slugify(name), defaults={"name": name})


class Migration(migrations.Migration):
    dependencies = [("membership", "0002_people_crm_and_audit")]

    operations = [migrations.RunPython(add_specialisms, migrations.RunPython.noop)]
