"""Demo perks from fictional partners and member organisations, with code pools and some redemptions.

Idempotent: perks are found by slug, codes by (perk, code), and redemptions are made only once per person.
"""

import logging
import random
from contextlib import contextmanager
from datetime import timedelta

from django.contrib.auth.models import Group
from django.test import override_settings
from django.utils import timezone
from django.utils.text import slugify

from benefits import services
from benefits.models import Category, Perk, PerkCode, Provider, Redemption
from benefits.permissions import grant_perks_team_permissions
from membership.models import ActivityEvent, Organisation, OrganisationMember, Subscription, Tier

C = Category
M = Perk.Method

# name, website, contact e-mail
PARTNERS = {
    "Cloudforge": ("https://cloudforge.example", "partners@cloudforge.example"),
    "Quayside Works": ("https://quaysideworks.example", "hello@quaysideworks.example"),
    "Ledgerline Accountants": ("https://ledgerline.example", "newclients@ledgerline.example"),
    "Tyne & Wear Legal": ("https://twlegal.example", "enquiries@twlegal.example"),
    "TalentNorth": ("https://talentnorth.example", "hiring@talentnorth.example"),
    "Hadrian Cover": ("https://hadriancover.example", "business@hadriancover.example"),
    "Northlight Design": ("https://northlight.example", "studio@northlight.example"),
    "Pennine Cyber": ("https://penninecyber.example", "sales@penninecyber.example"),
    "Castle Learning": ("https://castlelearning.example", "courses@castlelearning.example"),
    "Angel Seed Network": ("https://angelseed.example", "pitch@angelseed.example"),
    "Stackdesk": ("https://stackdesk.example", "team@stackdesk.example"),
    "Millennium Bridge Coffee": ("https://mbcoffee.example", "orders@mbcoffee.example"),
}

# title, provider, category, value line, summary, method, tiers ("" = all), featured, extras
PERKS = [
    (
        "Cloud credits for start-ups",
        "Cloudforge",
        C.SOFTWARE,
        "£2,000 in cloud credits",
        "Credits for compute, storage and managed databases, valid for 12 months.",
        M.UNIQUE_CODE,
        "",
        True,
        {},
    ),
    (
        "Managed Kubernetes, half price",
        "Cloudforge",
        C.SOFTWARE,
        "50% off for 6 months",
        "Half-price managed clusters for six months, with migration help.",
        M.LINK,
        "growth enterprise patron",
        False,
        {"url": "https://cloudforge.example/members/k8s"},
    ),
    (
        "Hot desks on the Quayside",
        "Quayside Works",
        C.WORKSPACE,
        "10 free day passes",
        "Ten free hot-desk days a year at Quayside Works, Newcastle.",
        M.UNIQUE_CODE,
        "",
        True,
        {"cap": 2},
    ),
    (
        "Meeting rooms at member rates",
        "Quayside Works",
        C.WORKSPACE,
        "25% off meeting rooms",
        "A quarter off meeting and event rooms for up to 40 people.",
        M.SHARED_CODE,
        "",
        False,
        {"code": "NETN25"},
    ),
    (
        "Free R&D tax credit review",
        "Ledgerline Accountants",
        C.FINANCE,
        "Free review worth £750",
        "A qualified adviser reviews your R&D tax credit claim before you file.",
        M.CONTACT,
        "",
        True,
        {},
    ),
    (
        "Year-end accounts, fixed fee",
        "Ledgerline Accountants",
        C.FINANCE,
        "15% off year-end accounts",
        "Fixed-fee year-end accounts and corporation tax returns for small companies.",
        M.CONTACT,
        "",
        False,
        {},
    ),
    (
        "Contract health check",
        "Tyne & Wear Legal",
        C.PROFESSIONAL,
        "Free one-hour review",
        "An hour with a commercial lawyer on your standard terms or a customer contract.",
        M.CONTACT,
        "",
        False,
        {"cap": 1},
    ),
    (
        "IP and licensing clinic",
        "Tyne & Wear Legal",
        C.PROFESSIONAL,
        "20% off IP advice",
        "Software licensing, trade marks and open-source compliance at member rates.",
        M.CONTACT,
        "growth enterprise patron",
        False,
        {},
    ),
    (
        "Graduate recruitment, no placement fee",
        "TalentNorth",
        C.TALENT,
        "First graduate hire fee-free",
        "Hire your first graduate from the region's universities with no placement fee.",
        M.CONTACT,
        "",
        True,
        {},
    ),
    (
        "Job adverts on TalentNorth",
        "TalentNorth",
        C.TALENT,
        "3 free job adverts",
        "Three free 30-day adverts on the North East's tech jobs board.",
        M.UNIQUE_CODE,
        "",
        False,
        {"cap": 1},
    ),
    (
        "Cyber insurance for tech firms",
        "Hadrian Cover",
        C.FINANCE,
        "10% off the first year",
        "Cyber and professional indemnity cover written for software and data businesses.",
        M.LINK,
        "",
        False,
        {"url": "https://hadriancover.example/netn"},
    ),
    (
        "Brand sprint",
        "Northlight Design",
        C.MARKETING,
        "20% off a two-day brand sprint",
        "A two-day workshop that leaves you with a name, a logo direction and a message.",
        M.CONTACT,
        "",
        False,
        {},
    ),
    (
        "Cyber Essentials, fast track",
        "Pennine Cyber",
        C.PROFESSIONAL,
        "£300 off certification",
        "Guided Cyber Essentials certification, usually done within two weeks.",
        M.SHARED_CODE,
        "",
        True,
        {"code": "NETN-CE300"},
    ),
    (
        "Penetration test discount",
        "Pennine Cyber",
        C.PROFESSIONAL,
        "15% off a web app test",
        "A CREST-accredited test of one web application, with a re-test included.",
        M.CONTACT,
        "enterprise patron",
        False,
        {},
    ),
    (
        "Leadership for tech managers",
        "Castle Learning",
        C.TRAINING,
        "2 places at 30% off",
        "A six-week evening course for first-time engineering managers, in Durham or online.",
        M.UNIQUE_CODE,
        "",
        False,
        {"cap": 2},
    ),
    (
        "Data skills bootcamp seats",
        "Castle Learning",
        C.TRAINING,
        "Funded places for staff",
        "Fully funded data-analysis bootcamp places for employees of member organisations.",
        M.LINK,
        "",
        False,
        {"url": "https://castlelearning.example/bootcamp"},
    ),
    (
        "Pitch to the angel network",
        "Angel Seed Network",
        C.FINANCE,
        "A guaranteed pitch slot",
        "A slot at a monthly pitch evening in front of North East angel investors.",
        M.CONTACT,
        "growth enterprise patron",
        True,
        {"total": 12},
    ),
    (
        "Helpdesk software",
        "Stackdesk",
        C.SOFTWARE,
        "3 months free",
        "Three months of Stackdesk's helpdesk for up to ten agents.",
        M.UNIQUE_CODE,
        "",
        False,
        {"low": True},
    ),
    (
        "Coffee for your office",
        "Millennium Bridge Coffee",
        C.WELLBEING,
        "20% off office coffee",
        "Locally roasted beans delivered to your office every month.",
        M.SHARED_CODE,
        "",
        False,
        {"code": "BRIDGE20"},
    ),
    (
        "Design system starter kit",
        "Northlight Design",
        C.MARKETING,
        "Free starter kit",
        "A component library and brand tokens for your product team, set up in a day.",
        M.LINK,
        "",
        False,
        {"url": "https://northlight.example/kit"},
    ),
    (
        "Incident response retainer",
        "Pennine Cyber",
        C.PROFESSIONAL,
        "First month free",
        "A 24/7 incident response retainer, with the first month free.",
        M.CONTACT,
        "enterprise patron",
        False,
        {},
    ),
    (
        "Apprenticeship levy advice",
        "Castle Learning",
        C.TALENT,
        "Free levy planning session",
        "Plan how to spend your apprenticeship levy on digital and data apprenticeships.",
        M.CONTACT,
        "",
        False,
        {},
    ),
    (
        "Grant application review",
        "Angel Seed Network",
        C.FINANCE,
        "A free review of one bid",
        "An experienced reviewer reads your Innovate UK or regional grant bid before you submit it.",
        M.CONTACT,
        "",
        False,
        {"cap": 1},
    ),
    (
        "Team coffee tasting",
        "Millennium Bridge Coffee",
        C.WELLBEING,
        "Free tasting for 10",
        "A roaster brings a tasting session to your office.",
        M.CONTACT,
        "",
        False,
        {"cap": 1},
    ),
]

# Offers from member organisations: title, category, value, summary, method, extras.
MEMBER_OFFERS = [
    (
        "Data strategy workshop",
        C.PROFESSIONAL,
        "Half-day workshop free",
        "A half-day workshop to find the quick wins in your organisation's data.",
        M.CONTACT,
        {},
    ),
    (
        "Accessibility audit",
        C.PROFESSIONAL,
        "25% off a WCAG audit",
        "A full WCAG 2.2 AA audit of one website or app, with a prioritised fix list.",
        M.CONTACT,
        {},
    ),
    (
        "Product analytics trial",
        C.SOFTWARE,
        "6 months free",
        "Six months of our product analytics platform for teams up to 20.",
        M.LINK,
        {"url": "https://example.com/trial"},
    ),
    (
        "Robotics lab day",
        C.TRAINING,
        "A free day in our lab",
        "Bring a team to try industrial robot arms and cobots for a day.",
        M.CONTACT,
        {},
    ),
    (
        "Office space sublet",
        C.WORKSPACE,
        "Desks at cost price",
        "Spare desks in our office, at cost, for members who need a base.",
        M.CONTACT,
        {},
    ),
    (
        "Machine learning mentoring",
        C.TRAINING,
        "3 free mentoring sessions",
        "Three one-hour sessions with a senior ML engineer.",
        M.SHARED_CODE,
        {"code": "MENTOR3"},
    ),
]

DESCRIPTION = (
    "<p>{summary}</p><p>Redeem it here to get what you need, then follow the provider's instructions. "
    "Questions about the offer go to the provider; questions about membership go to the membership team.</p>"
)
TERMS = "For staff of member organisations while the membership is active. Not exchangeable for cash."


def _provider(name: str, website: str = "", email: str = "", organisation: Organisation | None = None) -> Provider:
    provider, _ = Provider.objects.get_or_create(
        slug=slugify(name),
        defaults={"name": name, "website": website, "contact_email": email, "organisation": organisation},
    )
    return provider


def _perk(provider: Provider, spec: tuple, tiers: dict[str, Tier], *, status=Perk.Status.PUBLISHED, offset=0) -> Perk:
    title, category, value, summary, method, tier_slugs, featured, extras = spec
    perk, created = Perk.objects.get_or_create(
        slug=slugify(title),
        defaults={
            "title": title,
            "provider": provider,
            "category": category,
            "value_line": value,
            "summary": summary,
            "description": DESCRIPTION.format(summary=summary),
            "terms": TERMS,
            "method": method,
            "shared_code": extras.get("code", ""),
            "redemption_url": extras.get("url", ""),
            "featured": featured,
            "status": status,
            "cap_per_organisation": extras.get("cap"),
            "total_cap": extras.get("total"),
            "low_codes_threshold": 5,
            "published_at": timezone.now() - timedelta(days=offset) if status == Perk.Status.PUBLISHED else None,
            "ends_on": timezone.localdate() + timedelta(days=120 + offset * 7),
        },
    )
    if created:
        perk.eligible_tiers.set([tiers[slug] for slug in tier_slugs.split() if slug in tiers])
        if method == M.UNIQUE_CODE:
            size = 6 if extras.get("low") else 40
            prefix = "".join(word[0] for word in title.split()).upper()
            PerkCode.objects.bulk_create(
                [PerkCode(perk=perk, code=f"{prefix}-{perk.pk:03d}-{n:04d}") for n in range(1, size + 1)],
                ignore_conflicts=True,
            )
    return perk


def seed_perks(team_group: Group | None = None) -> dict:
    """Partner perks, offers from member organisations (live, waiting and rejected) and some redemptions."""
    if team_group:
        grant_perks_team_permissions(team_group)
    tiers = {tier.slug: tier for tier in Tier.objects.all()}
    perks = []
    for offset, (title, provider_name, *rest) in enumerate(PERKS):
        website, email = PARTNERS[provider_name]
        perks.append(_perk(_provider(provider_name, website, email), (title, *rest), tiers, offset=offset * 3))
    members = list(
        Organisation.objects.filter(directory_opt_in=True, subscriptions__status=Subscription.Status.ACTIVE)
        .order_by("pk")
        .distinct()[: len(MEMBER_OFFERS)]
    )
    for index, (organisation, (title, category, value, summary, method, extras)) in enumerate(
        zip(members, MEMBER_OFFERS, strict=False)
    ):
        status = {4: Perk.Status.PENDING, 5: Perk.Status.REJECTED}.get(index, Perk.Status.PUBLISHED)
        provider = services.provider_for(organisation)
        perk = _perk(provider, (title, category, value, summary, method, "", index == 0, extras), tiers, status=status,
                     offset=index * 5)  # fmt: skip
        if status == Perk.Status.REJECTED and not perk.rejection_reason:
            perk.rejection_reason = "Please say how many desks and for how long, and add the terms."
            perk.save(update_fields=["rejection_reason"])
        perks.append(perk)
    redemptions = _seed_redemptions([p for p in perks if p.status == Perk.Status.PUBLISHED])
    return {"perks": len(perks), "redemptions": redemptions}


@contextmanager
def _quiet(logger_name: str):
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _seed_redemptions(perks: list[Perk]) -> int:
    """Members of active organisations redeem perks through the service, so caps, codes and activity hold."""
    if Redemption.objects.exists():
        return Redemption.objects.count()
    rng = random.Random(2026)
    people = list(
        OrganisationMember.objects.active()
        .filter(organisation__subscriptions__status=Subscription.Status.ACTIVE)
        .select_related("organisation", "user")
        .order_by("pk")[:150]
    )
    made = 0
    # The demo e-mails and task logs would flood the terminal running the server: keep them quiet.
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"), _quiet("celery"):
        for membership in people:
            for perk in rng.sample(perks, k=min(len(perks), rng.randint(0, 3))):
                try:
                    result = services.redeem_perk(perk, membership.user, membership.organisation, "Interested.")
                except services.RedemptionRefused:
                    continue
                when = timezone.now() - timedelta(days=rng.randint(0, 300), hours=rng.randint(0, 23))
                Redemption.objects.filter(pk=result.redemption.pk).update(created_at=when)
                ActivityEvent.objects.filter(key=f"perk_redeemed:redemption:{result.redemption.pk}").update(
                    occurred_at=when
                )
                made += 1
    return made
