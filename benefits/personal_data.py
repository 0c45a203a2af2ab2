"""What benefits holds about a person: their redemptions, for the personal-data export and account deletion."""

from accounts.models import User
from accounts.personal_data import Section, register
from benefits.models import Redemption


def _export(user: User) -> list[dict]:
    return [
        {
            "perk": r.perk.title,
            "provider": r.perk.provider.name,
            "organisation": r.organisation.name,
            "redeemed": r.created_at.isoformat(),
            "code": r.code,
            "message": r.message,
        }
        for r in Redemption.objects.filter(person=user).select_related("perk__provider", "organisation")
    ]


def _erase(user: User) -> None:
    # The redemption stays, so caps and the provider's figures still add up; who redeemed it and what they
    # wrote to the provider go.
    Redemption.objects.filter(person=user).update(person=None, message="")


def register_sections() -> None:
    register(Section("perk_redemptions", _export, _erase))
