"""The perks catalogue: Perk, its codes, Redemption and member-submitted offers (see the issue tracker)."""
