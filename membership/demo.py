"""Fictional demo data for a North East England tech membership body.

Everything is generated from a fixed seed, so running it again finds what it made before and adds
nothing; large runs (``--orgs 20000``) use bulk inserts so benchmarks get their data in seconds.
"""

import random
from dataclasses import dataclass, field
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User
from membership.models import (
    DEFAULT_PUBLIC_FIELDS,
    FollowUp,
    Invoice,
    Note,
    Organisation,
    OrganisationMember,
    OrganisationType,
    SizeBand,
    Specialism,
    Subscription,
    Tier,
    TierPrice,
)

# Towns across the region: (town, local authority area, postcode district).
TOWNS = [
    ("Newcastle upon Tyne", "Newcastle upon Tyne", "NE1"),
    ("Newcastle upon Tyne", "Newcastle upon Tyne", "NE4"),
    ("Gateshead", "Gateshead", "NE8"),
    ("Sunderland", "Sunderland", "SR1"),
    ("Washington", "Sunderland", "NE37"),
    ("Durham", "County Durham", "DH1"),
    ("Consett", "County Durham", "DH8"),
    ("Bishop Auckland", "County Durham", "DL14"),
    ("Newton Aycliffe", "County Durham", "DL5"),
    ("Darlington", "Darlington", "DL1"),
    ("Middlesbrough", "Middlesbrough", "TS1"),
    ("Stockton-on-Tees", "Stockton-on-Tees", "TS18"),
    ("Hartlepool", "Hartlepool", "TS24"),
    ("Redcar", "Redcar and Cleveland", "TS10"),
    ("North Shields", "North Tyneside", "NE29"),
    ("Wallsend", "North Tyneside", "NE28"),
    ("South Shields", "South Tyneside", "NE33"),
    ("Hexham", "Northumberland", "NE46"),
    ("Morpeth", "Northumberland", "NE61"),
    ("Blyth", "Northumberland", "NE24"),
    ("Cramlington", "Northumberland", "NE23"),
]

# Organisations a visitor of the demo will recognise by kind: every type and size is here.
SHOWCASE = [
    ("Tyne Analytics", OrganisationType.SME, SizeBand.SMALL, "AI and data consultancy for manufacturers."),
    ("Wearside Robotics", OrganisationType.STARTUP, SizeBand.MICRO, "Autonomous inspection robots."),
    ("Northern Ledger Bank", OrganisationType.CORPORATE, SizeBand.LARGE, "Regional bank with a digital hub."),
    ("Cheviot Cyber", OrganisationType.SME, SizeBand.SMALL, "Penetration testing and SOC services."),
    ("Angel Games Studio", OrganisationType.SME, SizeBand.MEDIUM, "Console and mobile games."),
    ("Quayside Digital Consulting", OrganisationType.CONSULTANCY, SizeBand.MICRO, "Digital strategy."),
    ("Teesside Institute of Technology", OrganisationType.EDUCATION, SizeBand.LARGE, "Degrees in computing."),
    ("Northumbria Coast Council", OrganisationType.PUBLIC_SECTOR, SizeBand.LARGE, "Local authority."),
    ("Code Club North East", OrganisationType.CHARITY, SizeBand.MICRO, "Coding clubs for young people."),
    ("Durham Health Informatics", OrganisationType.STARTUP, SizeBand.SMALL, "Healthtech for GP practices."),
    ("Tees Valley Industry 4.0 Lab", OrganisationType.CORPORATE, SizeBand.MEDIUM, "Smart factory pilots."),
    ("Lindisfarne Fintech", OrganisationType.STARTUP, SizeBand.MICRO, "Open-banking tools for charities."),
]

_PREFIXES = [
    "Tyne",
    "Wear",
    "Tees",
    "Cheviot",
    "Kielder",
    "Bamburgh",
    "Quayside",
    "Ouseburn",
    "Angel",
    "Pennine",
    "Northumbria",
    "Durham",
    "Coquet",
    "Derwent",
    "Tanfield",
    "Hadrian",
    "Farne",
    "Blyth",
    "Roker",
    "Saltwell",
    "Jesmond",
    "Heaton",
    "Byker",
    "Seaham",
    "Whitley",
    "Tynemouth",
    "Alnwick",
    "Lumley",
    "Penshaw",
    "Sage",
    "Baltic",
    "Grainger",
    "Collingwood",
    "Stephenson",
    "Armstrong",
    "Swan",
    "Bede",
]
_CORES = [
    "Analytics",
    "Robotics",
    "Software",
    "Data",
    "Cloud",
    "Cyber",
    "Digital",
    "Labs",
    "Systems",
    "Studio",
    "Games",
    "Health",
    "Energy",
    "Fintech",
    "Networks",
    "AI",
    "Apps",
    "Devices",
    "Logic",
    "Code",
    "Automation",
    "Insight",
    "Platforms",
    "Sensors",
    "Media",
    "Learning",
    "Security",
    "Connect",
]
_SUFFIXES = {
    OrganisationType.CORPORATE: ["Group", "plc", "Holdings"],
    OrganisationType.SME: ["Ltd", "Limited", ""],
    OrganisationType.STARTUP: ["", "Ltd", "io"],
    OrganisationType.CONSULTANCY: ["Consulting", "Partners", "Advisory"],
    OrganisationType.EDUCATION: ["College", "Academy", "Institute"],
    OrganisationType.PUBLIC_SECTOR: ["Council", "Authority", "Trust"],
    OrganisationType.CHARITY: ["Foundation", "Trust", "CIC"],
}
_TYPE_WEIGHTS = [
    (OrganisationType.SME, 35),
    (OrganisationType.STARTUP, 20),
    (OrganisationType.CONSULTANCY, 15),
    (OrganisationType.CORPORATE, 10),
    (OrganisationType.EDUCATION, 7),
    (OrganisationType.PUBLIC_SECTOR, 6),
    (OrganisationType.CHARITY, 7),
]
_SIZES_BY_TYPE = {
    OrganisationType.CORPORATE: [SizeBand.MEDIUM, SizeBand.LARGE, SizeBand.LARGE],
    OrganisationType.SME: [SizeBand.SMALL, SizeBand.MEDIUM, SizeBand.MICRO],
    OrganisationType.STARTUP: [SizeBand.MICRO, SizeBand.MICRO, SizeBand.SMALL],
    OrganisationType.CONSULTANCY: [SizeBand.MICRO, SizeBand.SMALL],
    OrganisationType.EDUCATION: [SizeBand.MEDIUM, SizeBand.LARGE],
    OrganisationType.PUBLIC_SECTOR: [SizeBand.LARGE, SizeBand.MEDIUM],
    OrganisationType.CHARITY: [SizeBand.MICRO, SizeBand.SMALL],
}
_CONTACTS_BY_SIZE = {SizeBand.MICRO: 2, SizeBand.SMALL: 3, SizeBand.MEDIUM: 4, SizeBand.LARGE: 5}
FIRST_NAMES = [
    "Olivia",
    "Jack",
    "Amelia",
    "Harry",
    "Isla",
    "George",
    "Ava",
    "Noah",
    "Mia",
    "Leo",
    "Grace",
    "Oscar",
    "Sophie",
    "Callum",
    "Freya",
    "Liam",
    "Priya",
    "Arjun",
    "Aisha",
    "Omar",
    "Chloe",
    "Ryan",
    "Megan",
    "Daniel",
    "Hannah",
    "Adam",
    "Zara",
    "Ethan",
    "Lucy",
    "Sam",
    "Niamh",
    "Connor",
    "Ellie",
    "Kieran",
]
LAST_NAMES = [
    "Robson",
    "Charlton",
    "Armstrong",
    "Milburn",
    "Dodds",
    "Elliott",
    "Bell",
    "Hall",
    "Scott",
    "Wilson",
    "Patel",
    "Khan",
    "Young",
    "Walker",
    "Taylor",
    "Brown",
    "Thompson",
    "Smith",
    "Kaur",
    "Nguyen",
    "Stephenson",
    "Heslop",
    "Forster",
    "Ridley",
    "Marshall",
    "Turnbull",
    "Hedley",
    "Lambton",
    "Reed",
]
_JOB_TITLES = {
    OrganisationMember.Role.ADMIN: [
        "Managing Director",
        "Operations Director",
        "Head of Partnerships",
        "CEO",
    ],
    OrganisationMember.Role.MEMBER: [
        "Software Engineer",
        "Data Scientist",
        "Marketing Manager",
        "Product Manager",
        "Office Manager",
        "Head of Talent",
        "UX Designer",
        "DevOps Engineer",
        "Account Director",
        "Research Fellow",
    ],
}
# Demo contacts and staff share one password, hashed once: hashing per user would make
# `--orgs 20000` take hours.
DEMO_PASSWORD = "northeast-demo-2026"  # noqa: S105 (demo data only)


@dataclass
class OrganisationSpec:
    name: str
    organisation_type: str
    size_band: str
    description: str
    town: tuple[str, str, str]
    contacts: list[tuple[str, str, str, str]] = field(default_factory=list)  # first, last, role, title

    @property
    def slug(self) -> str:
        return slugify(self.name)

    @property
    def domain(self) -> str:
        return f"{self.slug}.example"


def _generate(count: int) -> list[OrganisationSpec]:
    rng = random.Random(2026)
    types, weights = zip(*_TYPE_WEIGHTS, strict=True)
    specs: list[OrganisationSpec] = []
    seen: set[str] = set()
    for index in range(count):
        if index < len(SHOWCASE):
            name, org_type, size, description = SHOWCASE[index]
        else:
            org_type = rng.choices(types, weights)[0]
            size = rng.choice(_SIZES_BY_TYPE[org_type])
            name = " ".join(
                part for part in (rng.choice(_PREFIXES), rng.choice(_CORES), rng.choice(_SUFFIXES[org_type])) if part
            )
            description = f"{OrganisationType(org_type).label} working in {name.split()[1].lower()}."
        town = TOWNS[index % len(TOWNS)] if index < len(SHOWCASE) else rng.choice(TOWNS)
        base, number = name, 2
        while slugify(name) in seen:
            name = f"{base} ({town[0]})" if number == 2 else f"{base} {number}"
            number += 1
        seen.add(slugify(name))
        spec = OrganisationSpec(name, org_type, size, description, town)
        for position in range(_CONTACTS_BY_SIZE[SizeBand(size)]):
            role = OrganisationMember.Role.ADMIN if position == 0 else OrganisationMember.Role.MEMBER
            spec.contacts.append((rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), role, rng.choice(_JOB_TITLES[role])))
        specs.append(spec)
    return specs


def _postcode(index: int, spec: OrganisationSpec) -> str:
    letters = "ABDEFGHJLNPQRSTUWXYZ"  # the letters UK postcodes use in the inward code
    return f"{spec.town[2]} {1 + index % 9}{letters[index % 20]}{letters[(index // 20) % 20]}"


def _company_number(index: int, spec: OrganisationSpec) -> str:
    # Councils, colleges and some charities have no company number; companies do.
    if spec.organisation_type in (OrganisationType.PUBLIC_SECTOR, OrganisationType.EDUCATION):
        return ""
    return f"{14_000_000 + index:08d}"


@transaction.atomic
def seed_organisations(count: int, account_managers: list[User] | None = None, *, contacts: bool = True) -> dict:
    """Create ``count`` organisations with their contacts, specialisms and the team's notes.

    Whatever already exists is left as it is, so running it again adds nothing.
    """
    specs = _generate(count)
    now = timezone.now()
    managers = [m.pk for m in account_managers or []]

    existing_slugs = set(Organisation.objects.values_list("slug", flat=True))
    Organisation.objects.bulk_create(
        [
            Organisation(
                name=spec.name,
                slug=spec.slug,
                organisation_type=spec.organisation_type,
                size_band=spec.size_band,
                town=spec.town[0],
                local_authority=spec.town[1],
                postcode=_postcode(index, spec),
                website=f"https://www.{spec.domain}",
                company_number=_company_number(index, spec),
                description=spec.description,
                email_domains=spec.domain,
                directory_opt_in=index % 5 != 4,
                public_fields=list(DEFAULT_PUBLIC_FIELDS),
                billing_email=f"accounts@{spec.domain}",
                needs_purchase_order=spec.organisation_type in PO_TYPES,
                account_manager_id=managers[index % len(managers)] if managers else None,
                created_at=now,
            )
            for index, spec in enumerate(specs)
            if spec.slug not in existing_slugs
        ],
        batch_size=2000,
    )
    org_ids = dict(Organisation.objects.values_list("slug", "id"))

    password = make_password(DEMO_PASSWORD)
    people = []  # (email, first, last, org slug, role, title)
    for spec in specs if contacts else []:
        used: set[str] = set()
        for first, last, role, title in spec.contacts:
            local = f"{first}.{last}".lower()
            while local in used:
                local += "1"
            used.add(local)
            people.append((f"{local}@{spec.domain}", first, last, spec.slug, role, title))

    existing_emails = set(User.objects.values_list("email", flat=True))
    User.objects.bulk_create(
        [
            User(email=email, first_name=first, last_name=last, password=password, date_joined=now)
            for email, first, last, *_ in people
            if email not in existing_emails
        ],
        batch_size=2000,
    )
    user_ids = dict(User.objects.values_list("email", "id"))
    _verify_addresses([(user_ids[email], email) for email, *_ in people])

    existing_links = set(OrganisationMember.objects.values_list("organisation_id", "user_id"))
    OrganisationMember.objects.bulk_create(
        [
            OrganisationMember(
                organisation_id=org_ids[slug],
                user_id=user_ids[email],
                role=role,
                job_title=title,
                joined_at=now,
            )
            for email, _first, _last, slug, role, title in people
            if (org_ids[slug], user_ids[email]) not in existing_links
        ],
        batch_size=2000,
    )
    _seed_specialisms(specs, org_ids)
    _seed_notes(specs, org_ids, people, managers)
    return {"organisations": len(specs), "contacts": len(people), "sample_admin": people[0][0] if people else ""}


PO_TYPES = {OrganisationType.PUBLIC_SECTOR, OrganisationType.EDUCATION}
# What an organisation is likely to work in, by a word in its name.
_SPECIALISM_BY_WORD = {
    "Analytics": "ai-and-data", "Data": "ai-and-data", "AI": "ai-and-data", "Insight": "ai-and-data",
    "Robotics": "industry-40", "Automation": "industry-40",
    "Sensors": "hardware-and-iot", "Devices": "hardware-and-iot",
    "Games": "immersive-and-games", "Studio": "immersive-and-games", "Media": "digital-marketing-and-media",
    "Cyber": "cyber-security", "Security": "cyber-security", "Fintech": "fintech", "Health": "healthtech",
    "Energy": "energy-and-cleantech", "Cloud": "cloud-and-infrastructure", "Networks": "cloud-and-infrastructure",
    "Learning": "edtech", "Software": "software-services", "Apps": "software-services", "Code": "software-services",
}  # fmt: skip


def _seed_specialisms(specs: list[OrganisationSpec], org_ids: dict[str, int]) -> None:
    specialisms = dict(Specialism.objects.values_list("slug", "pk"))
    if not specialisms:
        return
    through = Organisation.specialisms.through
    done = set(through.objects.values_list("organisation_id", flat=True).distinct())
    ordered = sorted(specialisms)
    rows = []
    for index, spec in enumerate(specs):
        org_id = org_ids[spec.slug]
        if org_id in done:
            continue
        slugs = {_SPECIALISM_BY_WORD.get(word) for word in spec.name.split()} - {None}
        slugs.add(ordered[index % len(ordered)])
        rows += [through(organisation_id=org_id, specialism_id=specialisms[s]) for s in slugs if s in specialisms]
    through.objects.bulk_create(rows, batch_size=5000)


_NOTES = [
    (Note.Kind.CALL, "Called {first} about their renewal. Happy with the network; wants more AI and data events."),
    (Note.Kind.MEETING, "Met {first} at the Quayside breakfast. Interested in speaking at a members' showcase."),
    (Note.Kind.EMAIL, "{first} asked how colleagues can join. Sent the invitation guide."),
    (Note.Kind.CALL, "Introductory call with {first}. Hiring graduates this year; pointed them at the talent perks."),
    (Note.Kind.MEETING, "Site visit with {first}. New office opening in the spring; possible success story."),
    (Note.Kind.OTHER, "{first} mentioned a funding win in passing: follow up for the news page."),
]
_FOLLOW_UPS = [
    "Check in before renewal",
    "Invite to the next members' showcase",
    "Ask for a success story",
    "Introduce to the skills partnership",
]


def _seed_notes(specs: list[OrganisationSpec], org_ids: dict[str, int], people: list, managers: list[int]) -> None:
    """One or two notes per organisation, and a follow-up for every seventh, from the account managers."""
    if not managers:
        return
    admins = {slug: first for _email, first, _last, slug, role, _title in people if role == "admin"}
    with_notes = set(Note.objects.values_list("organisation_id", flat=True).distinct())
    today = timezone.localdate()
    notes, follow_ups = [], []
    for index, spec in enumerate(specs):
        org_id = org_ids[spec.slug]
        if org_id in with_notes:
            continue
        manager = managers[index % len(managers)]
        first = admins.get(spec.slug, "the team")
        for offset in range(1 + index % 2):
            kind, text = _NOTES[(index + offset * 3) % len(_NOTES)]
            date = today - timedelta(days=7 + (index * 13 + offset * 41) % 300)
            notes.append(
                Note(organisation_id=org_id, kind=kind, date=date, body=text.format(first=first), author_id=manager)
            )
        if index % 7 == 0:
            follow_ups.append(
                FollowUp(
                    organisation_id=org_id,
                    title=_FOLLOW_UPS[index % len(_FOLLOW_UPS)],
                    due_date=today + timedelta(days=(index % 21) - 7),
                    assignee_id=manager,
                    created_by_id=manager,
                )
            )
    Note.objects.bulk_create(notes, batch_size=5000)
    FollowUp.objects.bulk_create(follow_ups, batch_size=5000)


def _verify_addresses(pairs: list[tuple[int, str]]) -> None:
    """Demo people have verified e-mail addresses, so they can log in straight away."""
    existing = set(EmailAddress.objects.values_list("user_id", flat=True))
    EmailAddress.objects.bulk_create(
        [
            EmailAddress(user_id=user_id, email=email, verified=True, primary=True)
            for user_id, email in pairs
            if user_id not in existing
        ],
        batch_size=2000,
    )


# (name, seats, public, monthly, annual price in pounds for a 1-9 SME, benefits)
TIERS = [
    (
        "Community",
        3,
        True,
        True,
        300,
        "Member rate at every event\nThe members' directory listing\n"
        "The monthly members' briefing\nPerks for all members",
    ),
    (
        "Growth",
        10,
        True,
        True,
        900,
        "Everything in Community\nTwo free places at flagship events\nGrowth-tier perks\nA success story on the site",
    ),
    (
        "Enterprise",
        None,
        True,
        False,
        2400,
        "Everything in Growth\nUnlimited colleagues\nSix free flagship places\n"
        "A seat at the advisory board's open sessions",
    ),
    ("Patron", None, False, False, 6000, "Everything in Enterprise\nHeadline partner at two events a year"),
]
_SIZE_FACTOR = {SizeBand.MICRO: 1.0, SizeBand.SMALL: 1.6, SizeBand.MEDIUM: 2.5, SizeBand.LARGE: 4.0}
# Charities, colleges and councils pay less; start-ups pay less in their first years.
_TYPE_FACTOR = {OrganisationType.CHARITY: 0.5, OrganisationType.EDUCATION: 0.8, OrganisationType.STARTUP: 0.7}


def seed_tiers() -> list[Tier]:
    tiers = []
    for order, (name, seats, public, monthly, base, benefits) in enumerate(TIERS, start=1):
        tier, _ = Tier.objects.get_or_create(
            slug=slugify(name),
            defaults={
                "name": name,
                "seat_limit": seats,
                "is_public": public,
                "monthly_billing": monthly,
                "sort_order": order,
                "benefits": benefits,
                "description": f"{name} membership of the North East Tech Network.",
            },
        )
        existing = set(tier.prices.values_list("organisation_type", "size_band"))
        TierPrice.objects.bulk_create(
            [
                TierPrice(
                    tier=tier,
                    organisation_type=org_type,
                    size_band=size,
                    # Whole pounds, in pence; monthly is a twelfth plus 10%, rounded to the pound.
                    annual_pence=round(base * _SIZE_FACTOR[size] * _TYPE_FACTOR.get(org_type, 1.0)) * 100,
                    monthly_pence=(
                        round(base * _SIZE_FACTOR[size] * _TYPE_FACTOR.get(org_type, 1.0) * 1.1 / 12) * 100
                        if monthly
                        else None
                    ),
                )
                for org_type in OrganisationType.values
                for size in SizeBand.values
                if (org_type, size) not in existing
            ]
        )
        tiers.append(tier)
    return tiers


def seed_subscriptions(tiers: list[Tier]) -> None:
    """Give most organisations a subscription, in every state a real membership body sees."""
    by_slug = {tier.slug: tier for tier in tiers}
    prices = {
        (p.tier_id, p.organisation_type, p.size_band): p.annual_pence for p in TierPrice.objects.filter(tier__in=tiers)
    }
    subscribed = set(Subscription.objects.values_list("organisation_id", flat=True).distinct())
    now = timezone.now()
    Status = Subscription.Status
    # One organisation in twenty of each: mostly active, and every other state represented.
    cycle = [Status.ACTIVE] * 13 + [
        Status.PAST_DUE, Status.GRACE, Status.PENDING, Status.LAPSED, Status.CANCELLED, Status.ACTIVE, None,
    ]  # fmt: skip
    rows = []
    organisations = Organisation.objects.exclude(pk__in=subscribed).values_list(
        "pk", "organisation_type", "size_band", "needs_purchase_order"
    )
    for pk, org_type, size, needs_po in organisations.order_by("pk").iterator(chunk_size=5000):
        status = cycle[pk % len(cycle)]
        if status is None:
            continue
        tier = by_slug[
            {SizeBand.MICRO: "community", SizeBand.SMALL: "growth", SizeBand.MEDIUM: "growth"}.get(size, "enterprise")
        ]
        if org_type == OrganisationType.CORPORATE and pk % 9 == 0:
            tier = by_slug["patron"]
        ends = now + timedelta(days=(pk * 37) % 365 + 1)
        if status in (Status.LAPSED, Status.CANCELLED):
            ends = now - timedelta(days=30 + pk % 200)
        elif status in (Status.PAST_DUE, Status.GRACE):
            ends = now - timedelta(days=1 + pk % 20)
        rows.append(
            Subscription(
                organisation_id=pk,
                tier=tier,
                status=status,
                payment_method="invoice" if needs_po else "card",
                po_number=f"PO-{pk:06d}" if needs_po else "",
                amount_pence=prices[(tier.pk, org_type, size)],
                current_period_start=ends - timedelta(days=365),
                current_period_end=ends,
                grace_ends_at=ends + timedelta(days=30) if status == Status.GRACE else None,
                ended_at=ends if status in (Status.LAPSED, Status.CANCELLED) else None,
                # Two in three have renewed at least once, so the renewal rate has something to count.
                created_at=ends - timedelta(days=365 * (2 if pk % 3 else 1)),
            )
        )
        rows[-1].started_at = None if status == Status.PENDING else rows[-1].created_at
    Subscription.objects.bulk_create(rows, batch_size=5000)


def seed_invoices() -> None:
    """An invoice for every subscription's current period: paid for members, open for those awaiting payment."""
    invoiced = set(Invoice.objects.values_list("subscription_id", flat=True))
    rows = []
    subscriptions = Subscription.objects.exclude(pk__in=invoiced).values_list(
        "pk", "organisation_id", "status", "amount_pence", "po_number", "current_period_start"
    )
    for pk, organisation_id, status, amount, po_number, start in subscriptions.iterator(chunk_size=5000):
        paid = status not in (Subscription.Status.PENDING, Subscription.Status.PAST_DUE)
        with_vat = amount * 6 // 5  # 20% VAT, added at payment
        rows.append(
            Invoice(
                organisation_id=organisation_id,
                subscription_id=pk,
                number=f"NETN-{pk:06d}",
                status=Invoice.Status.PAID if paid else Invoice.Status.OPEN,
                amount_due_pence=with_vat,
                amount_paid_pence=with_vat if paid else 0,
                po_number=po_number,
                created_at=start or timezone.now(),
                due_date=(start or timezone.now()) + timedelta(days=30),
                paid_at=(start or timezone.now()) + timedelta(days=5) if paid else None,
            )
        )
    Invoice.objects.bulk_create(rows, batch_size=5000)
