"""Fictional demo data for a North East England tech membership body.

Everything is generated from a fixed seed, so running it again finds what it made before and adds
nothing; large runs (``--orgs 20000``) use bulk inserts so benchmarks get their data in seconds.
"""

import random
from dataclasses import dataclass, field

from allauth.account.models import EmailAddress
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User
from membership.models import Organisation, OrganisationMember, OrganisationType, SizeBand

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
def seed_organisations(count: int) -> dict:
    """Create ``count`` organisations with their contacts; whatever already exists is left as it is."""
    specs = _generate(count)
    now = timezone.now()

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
    for spec in specs:
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
    return {
        "organisations": len(specs),
        "contacts": len(people),
        "sample_admin": people[0][0] if people else "",
    }


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
