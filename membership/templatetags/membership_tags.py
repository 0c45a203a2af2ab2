from django import template

from membership.billing import paid_offline as _paid_offline

register = template.Library()


@register.filter
def pounds(pence: int | None) -> str:
    """Integer pence as pounds for people: 123456 -> "£1,234.56"; whole pounds drop the pence."""
    if pence is None:
        return ""
    pounds_part, pence_part = divmod(int(pence), 100)
    return f"£{pounds_part:,}" if pence_part == 0 else f"£{pounds_part:,}.{pence_part:02d}"


@register.filter
def paid_offline(subscription) -> bool:
    """Whether the membership team arranges the membership's payment: it has its benefits and Stripe (or the
    demo) does not bill it."""
    return _paid_offline(subscription)
