"""The perks catalogue at /perks/ with 200 published perks, as a logged-in member of an active organisation
sees it (the heavier case: their organisation, tier and redemptions are looked up too).

Target: throughput at least 0.15 of a trivial view on the same server in the same run. The trivial view is
the site's empty page (bench/urls.py): the same session, user, middleware and page frame with no content, so
the figure is what the catalogue itself costs. Against robots.txt, which does nothing at all, the ratio is
printed too, for information, as are the figures for an anonymous visitor.
"""

from bench.harness import EMPTY_PUBLIC_PAGE, TRIVIAL, Bench, Figure, report

CATALOGUE = "/perks/"

# Clone the seeded perks until the catalogue holds 200 published ones, each with its tiers.
GROW_TO_200 = """
from benefits.models import Perk
from membership.models import Tier
tiers = list(Tier.objects.filter(slug__in=["growth", "enterprise"]))
seeded = list(Perk.objects.published())
n = 0
while Perk.objects.published().count() < 200:
    base = seeded[n % len(seeded)]
    perk = Perk.objects.create(
        title=f"{base.title} {n}", slug=f"{base.slug}-{n}", provider_id=base.provider_id, category=base.category,
        summary=base.summary, value_line=base.value_line, method=base.method, shared_code=base.shared_code,
        redemption_url=base.redemption_url, status=Perk.Status.PUBLISHED, featured=n % 9 == 0,
    )
    if n % 3 == 0:
        perk.eligible_tiers.set(tiers)
    n += 1
print(Perk.objects.published().count())
"""

# A member whose organisation is active and has redeemed something, so every part of the page has work to do.
MEMBER = """
from benefits.models import Redemption
print(Redemption.objects.select_related("person").order_by("pk").first().person.email)
"""


def run() -> list[Figure]:
    with Bench("perks") as bench:
        bench.create_database()
        bench.seed(60)
        published = bench.manage("shell", "-c", GROW_TO_200).strip().splitlines()[-1]
        assert published == "200", f"expected 200 published perks, found {published}"
        bench.login_staff(bench.manage("shell", "-c", MEMBER).strip().splitlines()[-1])
        bench.start()
        status, body = bench.get(CATALOGUE)
        assert status == 200 and b"200 perks" in body, f"the catalogue did not render 200 perks ({status})"
        assert bench.get(EMPTY_PUBLIC_PAGE)[0] == 200, "the empty site page did not render"
        member = bench.compare(CATALOGUE, against=EMPTY_PUBLIC_PAGE)
        bare = bench.compare(CATALOGUE, against=TRIVIAL, rounds=3)
        bench.cookie = ""
        anonymous = bench.compare(CATALOGUE, against=EMPTY_PUBLIC_PAGE, rounds=3)
    return [
        Figure("perks (200) / empty site page, member", member["ratio"], ">= 0.15", member["ratio"] >= 0.15, member),
        Figure("perks (200) / empty site page, anonymous (information)", anonymous["ratio"], "none", True, anonymous),
        Figure("perks (200) / robots.txt, member (information)", bare["ratio"], "none", True, bare),
    ]


if __name__ == "__main__":
    report("Perks catalogue", run())
