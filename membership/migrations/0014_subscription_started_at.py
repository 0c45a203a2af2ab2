from datetime import timedelta

from django.db import migrations, models
from django.db.models import Min, Q

ENTITLED = ["active", "past_due", "grace"]


def set_started_at(apps, schema_editor):
    """When each existing membership first had its benefits, as well as its rows tell.

    A membership started if it has its benefits now, had an invoice paid, went through grace (which only a paying
    member reaches), or ended having never been to Stripe at all: a membership imported from the spreadsheets the
    platform replaces, as lapsed or cancelled (a request to join always has a Stripe checkout or subscription).

    A row made four weeks or more before its current period began had an earlier period (a first period begins
    within a day of the checkout, or when the invoiced subscription is made): it started when it was made.
    Otherwise its current period is its first, and it started with the first payment, or with that period if no
    payment is recorded (an imported membership). An ended membership with none of these never started: an
    abandoned checkout, or an unpaid first invoice."""
    Subscription = apps.get_model("membership", "Subscription")
    rows = Subscription.objects.filter(started_at__isnull=True).annotate(
        first_paid=Min("invoices__paid_at", filter=Q(invoices__status="paid"))
    )
    for subscription in rows.iterator(chunk_size=2000):
        imported = subscription.status in ("lapsed", "cancelled") and not (
            subscription.stripe_subscription_id or subscription.stripe_checkout_session_id
        )
        if not (subscription.status in ENTITLED or subscription.first_paid or subscription.grace_ends_at or imported):
            continue
        period_start, made = subscription.current_period_start, subscription.created_at
        if period_start and made <= period_start - timedelta(days=28):
            started = made
        else:
            started = max(filter(None, [subscription.first_paid, period_start])) if period_start else made
        Subscription.objects.filter(pk=subscription.pk).update(started_at=started)


class Migration(migrations.Migration):
    dependencies = [
        ("membership", "0013_stripe_creation_failures"),
    ]

    operations = [
        migrations.AddField(
            model_name="subscription",
            name="started_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(set_started_at, migrations.RunPython.noop),
    ]
