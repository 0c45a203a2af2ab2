"""Importing 100,000 contact rows across 20,000 organisations from a CSV file.

Figures, measured side by side in one run on PostgreSQL, round by round:
- rows a second, as a ratio to a bare ``bulk_create`` of the same database rows (organisations, people, their
  addresses and memberships, subscriptions, consent records and audit entries), built in memory beforehand with
  no reading, checking or matching: at least 0.35 (django-import-export's own import, saving row by row, manages
  about 0.03);
- peak memory of the import (the process's resident set, in a fresh process) at most six times the file's size;
- for information, importing the same file a second time (every row unchanged) against the first.

Each round runs in a transaction that is rolled back, so every round starts from the same empty database.
"""

import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import PYTHON, ROOT, Bench, Figure, report

ORGANISATIONS = 20_000
CONTACTS_EACH = 5
ROUNDS = 3
COLUMNS = [
    "organisation_name",
    "company_number",
    "website",
    "organisation_type",
    "size_band",
    "town",
    "postcode",
    "tier",
    "subscription_status",
    "renewal_date",
    "contact_email",
    "contact_first_name",
    "contact_last_name",
    "job_title",
    "role",
    "marketing_consent",
]
TYPES = [("SME", "10-49"), ("Start-up", "1-9"), ("Consultancy", "1-9"), ("Corporate", "250+"), ("Charity", "1-9")]
FIRST = ["Olivia", "Jack", "Amelia", "Harry", "Isla", "George", "Priya", "Arjun", "Aisha", "Omar", "Zoë", "Niamh"]
LAST = ["Robson", "Charlton", "Milburn", "Patel", "Khan", "Nguyen", "Stephenson", "Heslop", "Turnbull", "Brontë"]
TOWNS = ["Newcastle upon Tyne", "Sunderland", "Durham", "Gateshead", "Middlesbrough", "Hexham", "Darlington"]


def write_file(path: Path) -> int:
    """The spreadsheet an old CRM would export: one row per contact, the organisation repeated on each."""
    from django.utils.text import slugify

    rng = random.Random(2026)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for org in range(ORGANISATIONS):
            kind, size = TYPES[org % len(TYPES)]
            name = f"Bench Organisation {org:05d} Ltd"
            organisation = [
                name,
                f"{20_000_000 + org:08d}",
                f"https://www.bench-{org:05d}.example",
                kind,
                size,
                TOWNS[org % len(TOWNS)],
                f"NE{1 + org % 60} {1 + org % 9}AB",
                "Growth" if org % 3 else "Community",
                "active",
                f"2027-{1 + org % 12:02d}-{1 + org % 28:02d}",
            ]
            for person in range(CONTACTS_EACH):
                first, last = rng.choice(FIRST), rng.choice(LAST)
                writer.writerow(
                    [
                        *organisation,
                        f"{slugify(first)}.{slugify(last)}.{person}@bench-{org:05d}.example",
                        first,
                        last,
                        "Managing Director" if person == 0 else "Engineer",
                        "admin" if person == 0 else "member",
                        ["yes", "no", ""][(org + person) % 3],
                    ]
                )
    return path.stat().st_size


def bulk_objects(path: Path) -> dict:
    """The database rows the import writes for the file, built directly: what a bare bulk_create is given."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
    from django.utils import timezone
    from django.utils.text import slugify

    from accounts.models import ConsentRecord, User
    from membership.models import AuditEntry, Organisation, OrganisationMember, Subscription, Tier, TierPrice

    now = timezone.now()
    tiers = {tier.name: tier for tier in Tier.objects.all()}
    prices = {(p.tier_id, p.organisation_type, p.size_band): p.annual_pence for p in TierPrice.objects.all()}
    kinds = {
        "SME": "sme",
        "Start-up": "startup",
        "Consultancy": "consultancy",
        "Corporate": "corporate",
        "Charity": "charity",
    }
    organisations, subscriptions, users, members = {}, [], [], []
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            number = row["company_number"]
            if number not in organisations:
                kind = kinds[row["organisation_type"]]
                organisations[number] = Organisation(
                    name=row["organisation_name"],
                    slug=slugify(row["organisation_name"]),
                    company_number=number,
                    website=row["website"],
                    organisation_type=kind,
                    size_band=row["size_band"],
                    town=row["town"],
                    postcode=row["postcode"],
                    created_at=now,
                )
                tier = tiers[row["tier"]]
                subscriptions.append(
                    (
                        number,
                        Subscription(
                            tier=tier,
                            status="active",
                            amount_pence=prices[(tier.pk, kind, row["size_band"])],
                            current_period_end=now,
                            current_period_start=now,
                            started_at=now,
                            created_at=now,
                        ),
                    )
                )
            user = User(
                email=row["contact_email"],
                first_name=row["contact_first_name"],
                last_name=row["contact_last_name"],
                password=UNUSABLE_PASSWORD_PREFIX + "x" * 40,
                date_joined=now,
            )
            users.append((user, row["marketing_consent"]))
            members.append((number, OrganisationMember(role=row["role"], job_title=row["job_title"], joined_at=now)))
    return {
        "organisations": organisations,
        "subscriptions": subscriptions,
        "users": users,
        "members": members,
        "models": (EmailAddress, ConsentRecord, AuditEntry, Organisation, OrganisationMember, Subscription, User),
    }


def bare_bulk_create(objects: dict) -> float:
    """Writes the same rows with bulk_create alone, in a transaction that is rolled back; returns the seconds."""
    from django.db import transaction

    EmailAddress, ConsentRecord, AuditEntry, Organisation, OrganisationMember, Subscription, User = objects["models"]
    started = time.perf_counter()
    with transaction.atomic():
        Organisation.objects.bulk_create(objects["organisations"].values(), batch_size=2000)
        users = [user for user, _ in objects["users"]]
        User.objects.bulk_create(users, batch_size=2000)
        EmailAddress.objects.bulk_create(
            [EmailAddress(user=user, email=user.email, verified=False, primary=True) for user in users], batch_size=2000
        )
        for number, member in objects["members"]:
            member.organisation = objects["organisations"][number]
        for (user, _), (_, member) in zip(objects["users"], objects["members"], strict=True):
            member.user = user
        OrganisationMember.objects.bulk_create([member for _, member in objects["members"]], batch_size=2000)
        for number, subscription in objects["subscriptions"]:
            subscription.organisation = objects["organisations"][number]
        Subscription.objects.bulk_create([s for _, s in objects["subscriptions"]], batch_size=2000)
        ConsentRecord.objects.bulk_create(
            [
                # A yes or a no, as the import records either for someone new.
                ConsentRecord(user=user, channel=channel, granted=consent == "yes", source="bench")
                for user, consent in objects["users"]
                if consent
                for channel in ("newsletter", "events", "offers")
            ],
            batch_size=2000,
        )
        AuditEntry.objects.bulk_create(
            [
                AuditEntry(action="membership.organisation.import_created", summary="bench", organisation=organisation)
                for organisation in objects["organisations"].values()
            ],
            batch_size=2000,
        )
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    for organisation in objects["organisations"].values():  # so that the next round inserts them afresh
        organisation.pk = None
    for user, _ in objects["users"]:
        user.pk = None
    for _, member in objects["members"]:
        member.pk = None
    for _, subscription in objects["subscriptions"]:
        subscription.pk = None
    return elapsed


def timed_import(path: Path) -> tuple[float, dict]:
    from django.db import transaction

    from membership.importing import import_members

    started = time.perf_counter()
    with transaction.atomic():
        result = import_members(str(path))
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    assert result.written and result.ok, (result.problems, result.errors[:3])
    return elapsed, dict(result.counts)


def peak_memory(bench: Bench, path: Path) -> dict:
    """The import's peak memory in a fresh process: the growth of its resident set, and (in a second process) the
    peak of Python's own allocations while it runs. The larger counts."""
    setup = (
        "import json, tracemalloc, django\n"
        "django.setup()\n"
        "from django.db import connection, transaction\n"
        "from membership.importing import import_members\n"
        "import openpyxl, allauth.account.models\n"
        "connection.ensure_connection()\n"
    )
    run_import = (
        "with transaction.atomic():\n"
        f"    report = import_members({str(path)!r})\n"
        "    transaction.set_rollback(True)\n"
        "assert report.ok\n"
    )
    resident = (
        setup
        + "def high_water():\n"
        + "    return int(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1])\n"
        + "before = high_water()\n"
        + run_import
        + "print(json.dumps({'resident_growth': (high_water() - before) * 1024}))\n"
    )
    traced = (
        setup
        + "tracemalloc.start()\n"
        + run_import
        + "print(json.dumps({'python_peak': tracemalloc.get_traced_memory()[1]}))\n"
    )
    figures = {}
    for code in (resident, traced):
        result = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=bench.env, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(result.stderr)
        figures |= json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def run() -> list[Figure]:
    with Bench("member_import") as bench, tempfile.TemporaryDirectory() as folder:
        bench.create_database()
        bench.manage("seed_demo", "--orgs", "0", "--quiet-login")  # the staff and the tiers, nothing else
        bench.use_here()
        from django.db import connection

        with connection.cursor() as cursor:  # a previous run's rows, if any
            cursor.execute("SELECT count(*) FROM membership_organisation")
            assert cursor.fetchone()[0] == 0, "the benchmark database must start without organisations"

        path = Path(folder) / "members.csv"
        size = write_file(path)
        objects = bulk_objects(path)
        timed_import(path)  # warm up: caches, the planner, the file in the page cache
        bare_bulk_create(objects)

        ratios, imports, bulks = [], [], []
        for _ in range(ROUNDS):
            bulk = bare_bulk_create(objects)
            seconds, counts = timed_import(path)
            bulks.append(bulk)
            imports.append(seconds)
            ratios.append(bulk / seconds)
        rows = ORGANISATIONS * CONTACTS_EACH

        # A second import of the same file: everything matches and nothing changes.
        from django.db import transaction

        from membership.importing import import_members

        with transaction.atomic():
            import_members(str(path))
            started = time.perf_counter()
            again = import_members(str(path))
            reimport = time.perf_counter() - started
            transaction.set_rollback(True)
        memory = peak_memory(bench, path)

    ratio = statistics.median(ratios)
    used = max(memory.values()) / size
    detail = {
        "rows": rows,
        "file_bytes": size,
        "import_seconds": [round(s, 2) for s in imports],
        "bulk_create_seconds": [round(s, 2) for s in bulks],
        "ratios": [round(r, 3) for r in ratios],
        "import_rows_per_second": round(rows / statistics.median(imports)),
        "bulk_rows_per_second": round(rows / statistics.median(bulks)),
        "counts": counts,
    }
    return [
        Figure("import rows/s / bare bulk_create rows/s", ratio, ">= 0.35", ratio >= 0.35, detail),
        Figure("import peak memory / file size", used, "<= 6", used <= 6, memory | {"file_bytes": size}),
        Figure(
            "re-import (all unchanged) rows/s / first import (information)",
            statistics.median(imports) / reimport,
            "none",
            True,
            {"seconds": round(reimport, 2), "counts": dict(again.counts)},
        ),
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    report("Member import", run())
