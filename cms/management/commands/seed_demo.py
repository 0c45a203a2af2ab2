"""Load realistic fictional demo data; running it again adds nothing new."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser

from accounts.demo import DEMO_TOTP_SECRET, TEAM_GROUP, seed_staff
from benefits.demo import seed_perks
from cms.demo import seed_site
from cms.events.demo import seed_events
from membership.demo import DEMO_PASSWORD, seed_invoices, seed_organisations, seed_subscriptions, seed_tiers
from membership.engagement_demo import seed_engagement
from membership.permissions import grant_membership_team_permissions


class Command(BaseCommand):
    help = "Create demo organisations, their contacts and the membership team. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--orgs", type=int, default=60, help="how many organisations (default 60)")
        parser.add_argument("--quiet-login", action="store_true", help="do not print the staff login")
        parser.add_argument(
            "--without-contacts",
            action="store_true",
            help="organisations only, no contacts: for benchmarks at hundreds of thousands of organisations",
        )

    def handle(self, *args, orgs: int, quiet_login: bool, without_contacts: bool, **options) -> None:
        lead, codes, team = seed_staff(DEMO_PASSWORD)
        grant_membership_team_permissions(Group.objects.get(name=TEAM_GROUP))
        # The first two on the team look after member organisations as their account managers.
        counts = seed_organisations(orgs, account_managers=team[:2], contacts=not without_contacts)
        seed_subscriptions(seed_tiers())
        seed_invoices()
        perks = seed_perks(Group.objects.get(name=TEAM_GROUP))
        seed_events()
        pages = seed_site()
        seed_engagement(team)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {counts['organisations']} organisations, {counts['contacts']} contacts, "
                f"{perks['perks']} perks, {pages['news']} news stories, {pages['board_updates']} board updates, "
                f"{pages['stories']} success stories."
            )
        )
        if quiet_login:
            return
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"Staff login for the back office at {settings.SITE_URL}/admin/",
                    f"  e-mail:    {lead.email}",
                    f"  password:  {DEMO_PASSWORD}",
                    "  two-factor step: an unused recovery code below, or the code of an authenticator app",
                    f"                   set up with the secret {DEMO_TOTP_SECRET}",
                    f"  recovery codes: {' '.join(codes)}",
                    f"Member login (an organisation admin): {counts['sample_admin']}",
                    f"  password:  {DEMO_PASSWORD}",
                    "",
                ]
            )
        )
