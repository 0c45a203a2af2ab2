from django import template

from membership.billing import billed_online as _billed_online

register = template.Library()


@register.filter
def pounds(pence: int | None) -> str:
    """Integer pence as pounds for people: 123456 -> "£1,234.56"; whole pounds drop the pence."""
    if pence is None:
        return ""
    pounds_part, pence_part = divmod(int(pence), 100)
    return f"£{pounds_part:,}" if pence_part == 0 else f"£{pounds_part:,}.{pence_part:02d}"


@register.filter
def billed_online(subscription) -> bool:
    """Whether Stripe (or the demo) bills the membership; if not, the membership team arranges its payment."""
    return _billed_online(subscription)
