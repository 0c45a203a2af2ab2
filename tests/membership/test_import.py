"""Importing organisations and contacts from a spreadsheet, and the import_members command."""

import codecs
import re
import zipfile
from datetime import UTC, date, datetime, timedelta

import pytest
from allauth.account.models import EmailAddress
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts.models import ConsentRecord, User
from accounts.services import current_consents, purge_unverified_accounts, record_consents
from membership.importing import import_members
from membership.models import (
    AuditEntry,
    Organisation,
    OrganisationMember,
    Subscription,
    Tier,
    TierPrice,
)
from tests import factories
from tests.membership.import_files import ACME, BEDE, COLUMNS, STANDARD_ROWS, contact, write_csv, write_xlsx

pytestmark = pytest.mark.django_db

ACME_PROFILE = {**ACME, "tier": "", "subscription_status": "", "renewal_date": ""}  # no subscription columns
MODELS = (Organisation, User, OrganisationMember, Subscription, ConsentRecord, EmailAddress)


@pytest.fixture
def growth(db) -> Tier:
    tier = Tier.objects.create(name="Growth", slug="growth")
    for org_type, size, pence in (("sme", "10-49", 144_000), ("startup", "1-9", 63_000)):
        TierPrice.objects.create(tier=tier, organisation_type=org_type, size_band=size, annual_pence=pence)
    return tier


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def run(path, **options):
    return import_members(str(path), **options)


def test_it_imports_organisations_their_contacts_and_subscriptions(tmp_path, growth):
    report = run(write_csv(tmp_path / "members.csv", STANDARD_ROWS))

    assert report.ok and report.written
    assert report.counts == {"new": 3}
    acme = Organisation.objects.get(company_number="01234567")
    assert (acme.name, acme.website, acme.organisation_type, acme.size_band, acme.town, acme.postcode) == (
        "Acme Robotics Ltd",
        "https://www.acme-robotics.example",
        "sme",
        "10-49",
        "Sunderland",
        "SR1 1AA",
    )
    people = {(m.user.email, m.role, m.job_title) for m in OrganisationMember.objects.select_related("user")}
    assert people == {
        ("ann.lee@acme-robotics.example", "admin", "CEO"),
        ("bob.kay@acme-robotics.example", "member", "Engineer"),
        ("cat.ng@bede-data.example", "admin", "Founder"),  # a new organisation's first contact leads it
    }
    subscription = Subscription.objects.get(organisation=acme)
    assert (subscription.tier, subscription.status, subscription.amount_pence) == (growth, "active", 144_000)
    assert subscription.current_period_end.astimezone().date() == date(2027, 3, 31)
    assert subscription.started_at == subscription.current_period_start  # a member, not yet known to have renewed
    ann = User.objects.get(email="ann.lee@acme-robotics.example")
    assert not ann.has_usable_password()  # they set one through "Forgot password"
    assert EmailAddress.objects.get(user=ann).verified is False
    assert current_consents(ann) == {"newsletter": True, "events": True, "offers": True}
    # One audit entry for each organisation created, and one for the import.
    actions = sorted(AuditEntry.objects.values_list("action", flat=True))
    assert actions == ["membership.import.completed"] + ["membership.organisation.import_created"] * 2


def test_importing_the_same_file_twice_creates_no_duplicates(tmp_path, growth):
    path = write_csv(tmp_path / "members.csv", STANDARD_ROWS)
    run(path)
    before = counts()

    again = run(path)

    assert again.ok and again.counts == {"unchanged": 3}
    assert counts() == before
    assert (
        not AuditEntry.objects.filter(action__startswith="membership.organisation.import")
        .exclude(action="membership.organisation.import_created")
        .exists()
    )


def test_a_file_with_one_bad_date_is_rejected_with_its_row_number_and_writes_nothing(tmp_path, growth):
    rows = [*STANDARD_ROWS, contact({**ACME, "renewal_date": "31/02/2027"}, "dee@acme-robotics.example", "Dee", "Ray")]
    before = counts()

    report = run(write_csv(tmp_path / "members.csv", rows))

    assert not report.ok and not report.written
    assert counts() == before
    assert not AuditEntry.objects.exists()
    [error] = report.errors
    assert error.row_number == 5  # the header is row 1
    assert error.messages == {"renewal_date": ["“31/02/2027” is not a date: write it like 2026-03-31 or 31/03/2026."]}
    assert report.counts == {"new": 3, "error": 1}  # the other rows' outcomes are still shown


def test_a_contact_who_withdrew_marketing_consent_stays_withdrawn_after_a_reimport(tmp_path, growth):
    path = write_csv(tmp_path / "members.csv", STANDARD_ROWS)  # Ann: marketing_consent "yes"
    run(path)
    ann = User.objects.get(email="ann.lee@acme-robotics.example")
    record_consents(ann, {"newsletter": False, "events": False, "offers": False}, source="my account")

    report = run(path)

    assert current_consents(ann) == {"newsletter": False, "events": False, "offers": False}
    assert report.counts == {"unchanged": 3}
    assert ConsentRecord.objects.filter(user=ann).latest("recorded_at").source == "my account"


def test_a_yes_fills_in_only_the_channels_a_person_never_chose(tmp_path, growth):
    ann = factories.make_user("ann.lee@acme-robotics.example", first_name="Ann", last_name="Lee")
    record_consents(ann, {"offers": True}, source="an event sign-up sheet")
    record_consents(ann, {"offers": False}, source="unsubscribe link")

    run(write_csv(tmp_path / "members.csv", STANDARD_ROWS[:1]))

    assert current_consents(ann) == {"newsletter": True, "events": True, "offers": False}


def test_a_yes_never_opts_in_someone_who_makes_their_own_choices(tmp_path, growth):
    # Having logged in, Ann chooses under My account, where an unticked box records nothing.
    ann = factories.make_user("ann.lee@acme-robotics.example", last_login=datetime(2026, 1, 5, tzinfo=UTC))

    seen = []
    run(write_csv(tmp_path / "members.csv", STANDARD_ROWS[:1]), on_row=seen.append)

    assert current_consents(ann) == {"newsletter": False, "events": False, "offers": False}
    assert "ann.lee@acme-robotics.example: marketing consent left as they chose it" in seen[0].summary


def test_a_no_withdraws_consent_given_before(tmp_path, growth):
    bob = factories.make_user("bob.kay@acme-robotics.example")
    record_consents(bob, {"newsletter": True}, source="sign-up")

    run(write_csv(tmp_path / "members.csv", STANDARD_ROWS[:2]))  # Bob: marketing_consent "no"

    assert current_consents(bob) == {"newsletter": False, "events": False, "offers": False}


def test_a_no_for_someone_new_is_a_decision_a_later_yes_does_not_overturn(tmp_path, growth):
    run(write_csv(tmp_path / "members.csv", STANDARD_ROWS[:2]))  # Bob, new: marketing_consent "no"
    bob = User.objects.get(email="bob.kay@acme-robotics.example")
    assert set(ConsentRecord.objects.filter(user=bob).values_list("channel", "granted")) == {
        ("newsletter", False),
        ("events", False),
        ("offers", False),
    }
    older = [contact({**ACME, "marketing_consent": "yes"}, "bob.kay@acme-robotics.example", "Bob", "Kay")]

    run(write_csv(tmp_path / "older-list.csv", older))

    assert current_consents(bob) == {"newsletter": False, "events": False, "offers": False}
    assert ConsentRecord.objects.filter(user=bob).count() == 3


def test_imported_contacts_survive_the_nightly_purge_of_unverified_sign_ups(tmp_path, growth):
    # Imported contacts have no password and an unverified address until they take up their account.
    assert run(write_csv(tmp_path / "members.csv", STANDARD_ROWS)).ok
    User.objects.update(date_joined=timezone.now() - timedelta(days=15))

    purge_unverified_accounts()

    assert OrganisationMember.objects.count() == 3


def test_a_withdrawal_outlives_the_purge_and_a_reimport(tmp_path, growth):
    path = write_csv(tmp_path / "members.csv", STANDARD_ROWS)  # Ann: marketing_consent "yes"
    run(path)
    ann = User.objects.get(email="ann.lee@acme-robotics.example")
    record_consents(ann, {"newsletter": False, "events": False, "offers": False}, source="unsubscribe link")
    User.objects.update(date_joined=timezone.now() - timedelta(days=15))
    purge_unverified_accounts()

    run(path)

    assert current_consents(User.objects.get(pk=ann.pk)) == {"newsletter": False, "events": False, "offers": False}


def test_one_key_repeated_with_conflicting_values_is_an_error(tmp_path, growth):
    rows = [
        *STANDARD_ROWS,
        # The same company number with another town, and the same person under another name.
        contact({**ACME, "town": "Durham"}, "eve@acme-robotics.example", "Eve", "Hart"),
        contact(BEDE, "CAT.NG@bede-data.example", "Catherine", "Ng"),
    ]

    report = run(write_csv(tmp_path / "members.csv", rows))

    assert not report.written and Organisation.objects.count() == 0
    errors = {error.row_number: error.messages for error in report.errors}
    assert errors == {
        5: {"town": ["“Durham” here, but “Sunderland” on row 2 for the same organisation (company number 01234567)."]},
        6: {"contact_email": ["cat.ng@bede-data.example is on row 4 too, with a different name."]},
    }


def test_a_row_repeated_exactly_is_no_conflict(tmp_path, growth):
    report = run(write_csv(tmp_path / "members.csv", [*STANDARD_ROWS, STANDARD_ROWS[1]]))

    assert report.ok and report.counts == {"new": 3, "unchanged": 1}
    assert OrganisationMember.objects.count() == 3


def test_one_website_written_differently_is_no_conflict(tmp_path, growth):
    rows = [
        contact(ACME, "ann@acme-robotics.example", "Ann", "Lee"),  # https://www.acme-robotics.example
        contact({**ACME, "website": "acme-robotics.example"}, "bob@acme-robotics.example", "Bob", "Kay"),
        contact({**BEDE, "website": "http://bede-data.example"}, "cat@bede-data.example", "Cat", "Ng"),
        contact({**BEDE, "website": "https://bede-data.example/"}, "dan@bede-data.example", "Dan", "Ng"),
    ]

    report = run(write_csv(tmp_path / "members.csv", rows))

    assert report.ok, [error.messages for error in report.errors]
    assert Organisation.objects.count() == 2


def test_extra_columns_are_reported_and_ignored(tmp_path, growth):
    rows = [dict(row, notes="met at the summit", source="old CRM") for row in STANDARD_ROWS]

    report = run(write_csv(tmp_path / "members.csv", rows, [*COLUMNS, "notes", "source"]))

    assert report.ok and report.extra_columns == ["notes", "source"]
    assert Organisation.objects.count() == 2


def test_an_extra_column_named_twice_is_ignored_but_a_known_one_named_twice_is_refused(tmp_path, growth):
    rows = [dict(row, notes="met at the summit") for row in STANDARD_ROWS]

    report = run(write_csv(tmp_path / "members.csv", rows, [*COLUMNS, "notes", "Notes"]))

    assert report.ok and report.problems == [] and report.extra_columns == ["notes"]

    report = run(write_csv(tmp_path / "twice.csv", STANDARD_ROWS, [*COLUMNS, "town"]))

    assert report.problems == ["The column town appears twice; keep one."]


def test_columns_may_come_in_any_order_and_any_case(tmp_path, growth):
    path = tmp_path / "members.csv"
    write_csv(path, STANDARD_ROWS, list(reversed(COLUMNS)))
    text = path.read_text().replace("contact_email", "Contact Email").replace("organisation_name", "ORGANISATION NAME")
    path.write_text(text)

    report = run(path)

    assert report.ok and report.counts == {"new": 3}


def test_a_missing_column_is_named(tmp_path, growth):
    report = run(write_csv(tmp_path / "members.csv", STANDARD_ROWS, [c for c in COLUMNS if c != "role"]))

    assert not report.ok and report.problems[0].startswith("The file has no column for: role.")


def test_only_spreadsheets_are_read(tmp_path):
    path = tmp_path / "members.txt"
    path.write_text("hello")
    fake = tmp_path / "members.xlsx"
    fake.write_text("not a workbook")

    assert run(path).problems == ["Upload a spreadsheet saved as CSV (.csv) or Excel (.xlsx)."]
    assert run(fake).problems == ["This file is not an Excel workbook: save it again as .xlsx, or as CSV."]


def test_cells_are_checked_with_clear_messages(tmp_path, growth):
    rows = [
        contact({**BEDE, "organisation_type": "Club"}, "not-an-address", "X", "Y", role="owner"),
        contact({**ACME, "tier": "Platinum", "company_number": "ABC"}, "ok@acme-robotics.example", "O", "K"),
        contact({**BEDE, "tier": "Growth", "subscription_status": "active"}, "z@bede-data.example", "Z", "Z"),
    ]

    report = run(write_csv(tmp_path / "members.csv", rows))

    errors = {error.row_number: error.messages for error in report.errors}
    assert errors[2] == {
        "organisation_type": [
            "“Club” is not a type of organisation: use one of Corporate, SME, Start-up, Consultancy, Education, "
            "Public sector, Charity."
        ],
        "contact_email": ["“not-an-address” is not an e-mail address."],
        "role": ["“owner” is not a role: use one of Admin, Member."],
    }
    assert errors[3] == {
        "company_number": ["“ABC” is not a company number: 8 characters, like 01234567 or SC123456."],
        "tier": ["There is no tier called “Platinum”: the tiers are Growth."],
    }
    assert errors[4] == {"renewal_date": ["Give the renewal date of a live membership."]}


def test_control_characters_pasted_into_a_cell_are_left_out(tmp_path, growth):
    rows = [contact(ACME, "ann.lee@acme-robotics.example", "Ann\x00", "Lee", job_title="CEO\x08")]

    assert run(write_csv(tmp_path / "members.csv", rows)).ok

    member = OrganisationMember.objects.select_related("user").get()
    assert (member.job_title, member.user.first_name) == ("CEO", "Ann")


def test_a_new_organisation_needs_its_type_and_size(tmp_path, growth):
    row = contact({"organisation_name": "Nameless Ltd"}, "x@nameless.example", "X", "Y")

    report = run(write_csv(tmp_path / "members.csv", [row]))

    assert report.errors[0].messages == {
        "organisation_type": ["Needed for a new organisation (Nameless Ltd is not on record yet)."],
        "size_band": ["Needed for a new organisation (Nameless Ltd is not on record yet)."],
    }


def test_organisations_match_by_company_number_then_website_then_name(tmp_path, growth):
    by_number = factories.make_organisation("Acme (old name)", company_number="01234567", town="Sunderland")
    by_domain = factories.make_organisation("Bede", website="http://bede-data.example/")
    by_name = factories.make_organisation("CODE CLUB NORTH EAST", organisation_type="charity", size_band="1-9")
    rows = [
        contact({"organisation_name": "Acme Robotics Ltd", "company_number": "1234567"}, "a@acme.example", "A", "B"),
        contact({"organisation_name": "Bede Data", "website": "www.bede-data.example"}, "c@bede.example", "C", "D"),
        contact({"organisation_name": "Code Club North East", "town": "Hexham"}, "e@cc.example", "E", "F"),
    ]

    report = run(write_csv(tmp_path / "members.csv", rows))

    assert report.ok and Organisation.objects.count() == 3
    for organisation in (by_number, by_domain, by_name):
        organisation.refresh_from_db()
    assert by_number.name == "Acme Robotics Ltd" and by_number.town == "Sunderland"  # blank keeps what is stored
    assert by_domain.name == "Bede Data" and by_domain.website == "https://www.bede-data.example"
    assert by_name.town == "Hexham"
    assert set(OrganisationMember.objects.values_list("organisation_id", flat=True)) == {
        by_number.pk,
        by_domain.pk,
        by_name.pk,
    }
    entry = AuditEntry.objects.get(organisation=by_number)
    assert entry.action == "membership.organisation.import_updated"
    assert entry.changes["name"] == ["Acme (old name)", "Acme Robotics Ltd"]


def test_a_weaker_key_never_matches_an_organisation_a_stronger_one_contradicts(tmp_path, growth):
    other = factories.make_organisation("Acme Robotics Ltd", company_number="07654321")
    row = contact(ACME, "ann@acme.example", "Ann", "Lee")  # same name, another company number

    report = run(write_csv(tmp_path / "members.csv", [row]))

    assert report.ok and Organisation.objects.count() == 2
    assert not OrganisationMember.objects.filter(organisation=other).exists()


def test_a_website_shared_by_two_organisations_is_an_error(tmp_path, growth):
    factories.make_organisation("Bede Data North", website="https://bede-data.example")
    factories.make_organisation("Bede Data South", website="https://www.bede-data.example/south")

    report = run(write_csv(tmp_path / "members.csv", [STANDARD_ROWS[2]]))

    assert report.errors[0].messages == {
        "website": [
            "The website bede-data.example matches several organisations (Bede Data North, Bede Data South): "
            "add the company number."
        ]
    }


def test_a_stored_company_number_or_name_written_another_way_still_matches(tmp_path, growth):
    # Typed in the back office without its leading zero, or with a double space.
    acme = factories.make_organisation("Acme Robotics Ltd", company_number="1234567")
    code_club = factories.make_organisation("Code Club  North East", organisation_type="charity", size_band="1-9")
    rows = [
        contact({**ACME_PROFILE, "website": ""}, "ann@acme-robotics.example", "Ann", "Lee"),  # 01234567
        contact({"organisation_name": "Code Club North East"}, "eve@codeclub.example", "Eve", "Hart"),
    ]

    report = run(write_csv(tmp_path / "members.csv", rows))

    assert report.ok and Organisation.objects.count() == 2
    assert {(m.organisation, m.user.email) for m in OrganisationMember.objects.select_related("user")} == {
        (acme, "ann@acme-robotics.example"),
        (code_club, "eve@codeclub.example"),
    }


def test_a_name_shared_by_two_organisations_of_the_file_is_an_error(tmp_path, growth):
    twin = {**ACME, "company_number": "07654321", "website": "https://acme-north.example"}
    rows = [
        contact(ACME, "ann@acme-robotics.example", "Ann", "Lee"),
        contact(twin, "zed@acme-north.example", "Zed", "Ray"),
        contact({"organisation_name": "acme robotics ltd"}, "bob@acme.example", "Bob", "Kay"),
    ]

    report = run(write_csv(tmp_path / "members.csv", rows))

    assert not report.written
    assert {error.row_number: error.messages for error in report.errors} == {
        4: {
            "organisation_name": [
                "The name acme robotics ltd matches several organisations in this file (rows 2, 3): add the company "
                "number."
            ]
        }
    }


def test_rows_without_the_company_number_join_the_organisation_that_has_it(tmp_path, growth):
    rows = [
        contact(ACME, "ann@acme-robotics.example", "Ann", "Lee"),
        contact({"organisation_name": "ACME ROBOTICS LTD"}, "bob@acme-robotics.example", "Bob", "Kay"),
        contact(
            {"organisation_name": ACME["organisation_name"], "website": ACME["website"]}, "cy@acme.example", "C", "D"
        ),
    ]

    report = run(write_csv(tmp_path / "members.csv", rows))

    assert report.ok and Organisation.objects.count() == 1
    assert OrganisationMember.objects.filter(organisation__company_number="01234567").count() == 3


def test_contacts_match_by_email_ignoring_case_and_keep_their_own_names(tmp_path, growth):
    acme = factories.make_organisation("Acme Robotics Ltd", company_number="01234567")
    ann = factories.make_user("ann.lee@acme-robotics.example", first_name="Annie", last_name="")
    factories.add_member(acme, ann)
    rows = [contact(ACME_PROFILE, "Ann.Lee@ACME-robotics.example", "Ann", "Lee", job_title="CEO")]

    report = run(write_csv(tmp_path / "members.csv", rows))

    assert report.ok and report.counts == {"update": 1}
    ann.refresh_from_db()
    assert (ann.first_name, ann.last_name) == ("Annie", "Lee")  # only what was empty is filled in
    assert OrganisationMember.objects.get(user=ann).job_title == "CEO"
    assert User.objects.count() == 1


def test_an_import_cannot_take_away_an_organisations_last_admin(tmp_path, growth):
    acme = factories.make_organisation("Acme Robotics Ltd", company_number="01234567")
    ann = factories.make_user("ann.lee@acme-robotics.example")
    factories.add_member(acme, ann, OrganisationMember.Role.ADMIN)
    rows = [contact(ACME_PROFILE, ann.email, "Ann", "Lee", role="member")]

    report = run(write_csv(tmp_path / "members.csv", rows))

    assert report.errors[0].messages == {
        "role": ["ann.lee@acme-robotics.example is the only admin of Acme Robotics Ltd: make someone else admin first."]
    }
    assert OrganisationMember.objects.get(user=ann).role == "admin"


@pytest.mark.parametrize("promotion_first", [True, False])
def test_the_admin_role_can_be_handed_over_in_one_file(tmp_path, growth, promotion_first):
    acme = factories.make_organisation("Acme Robotics Ltd", company_number="01234567")
    ann = factories.make_user("ann.lee@acme-robotics.example")
    bob = factories.make_user("bob.kay@acme-robotics.example")
    factories.add_member(acme, ann, OrganisationMember.Role.ADMIN)
    factories.add_member(acme, bob, OrganisationMember.Role.MEMBER)
    rows = [
        contact(ACME_PROFILE, bob.email, "Bob", "Kay", role="admin"),
        contact(ACME_PROFILE, ann.email, "Ann", "Lee", role="member"),
    ]

    report = run(write_csv(tmp_path / "members.csv", rows if promotion_first else rows[::-1]))

    assert report.ok, [error.messages for error in report.errors]
    assert dict(OrganisationMember.objects.values_list("user__email", "role")) == {
        bob.email: "admin",
        ann.email: "member",
    }


def test_an_import_cannot_demote_every_admin(tmp_path, growth):
    acme = factories.make_organisation("Acme Robotics Ltd", company_number="01234567")
    for email in ("ann.lee@acme-robotics.example", "bob.kay@acme-robotics.example"):
        factories.add_member(acme, factories.make_user(email), OrganisationMember.Role.ADMIN)
    rows = [
        contact(ACME_PROFILE, "ann.lee@acme-robotics.example", "Ann", "Lee", role="member"),
        contact(ACME_PROFILE, "bob.kay@acme-robotics.example", "Bob", "Kay", role="member"),
    ]

    report = run(write_csv(tmp_path / "members.csv", rows))

    assert {error.row_number: error.messages for error in report.errors} == {
        3: {
            "role": [
                "bob.kay@acme-robotics.example is the only admin of Acme Robotics Ltd: make someone else admin first."
            ]
        }
    }
    assert OrganisationMember.objects.admins().count() == 2


def test_a_subscription_changes_when_the_file_says_so(tmp_path, growth):
    run(write_csv(tmp_path / "members.csv", STANDARD_ROWS[:1]))
    rows = [contact({**ACME, "subscription_status": "lapsed"}, "ann.lee@acme-robotics.example", "Ann", "Lee")]

    report = run(write_csv(tmp_path / "lapsed.csv", rows))

    assert report.ok and report.counts == {"update": 1}
    subscription = Subscription.objects.get()
    assert subscription.status == "lapsed" and subscription.ended_at is not None
    entry = AuditEntry.objects.get(action="membership.organisation.import_updated")
    assert entry.changes == {"subscription status": ["active", "lapsed"]}


def test_a_blank_subscription_status_leaves_the_stored_one(tmp_path, growth):
    run(write_csv(tmp_path / "members.csv", STANDARD_ROWS[:1]))
    Subscription.objects.update(status=Subscription.Status.PAST_DUE)
    rows = [contact({**ACME, "subscription_status": ""}, "ann.lee@acme-robotics.example", "Ann", "Lee")]

    report = run(write_csv(tmp_path / "again.csv", rows))

    assert report.ok and report.counts == {"unchanged": 1}
    assert Subscription.objects.get().status == Subscription.Status.PAST_DUE


@pytest.mark.parametrize(
    ("billed", "column", "change"),
    [
        ({"stripe_subscription_id": "sub_123"}, "subscription_status", {"subscription_status": "cancelled"}),
        ({"stripe_subscription_id": "sub_123"}, "renewal_date", {"renewal_date": "2027-06-30"}),
        ({"status": "pending", "payment_method": "invoice"}, "subscription_status", {"subscription_status": "active"}),
    ],
)
def test_a_membership_billed_through_stripe_or_awaiting_payment_is_not_changed_by_import(
    tmp_path, growth, billed, column, change
):
    run(write_csv(tmp_path / "members.csv", STANDARD_ROWS[:1]))
    Subscription.objects.update(**billed)
    before = counts(), list(Subscription.objects.values())
    rows = [contact({**ACME, **change}, "ann.lee@acme-robotics.example", "Ann", "Lee")]

    report = run(write_csv(tmp_path / "again.csv", rows))

    assert not report.ok and [error.row_number for error in report.errors] == [2]
    assert "status or renewal change on its billing page" in report.errors[0].messages[column][0]
    assert (counts(), list(Subscription.objects.values())) == before
    # The same file with the membership as it stands imports (the contact's details, say).
    same = {"subscription_status": ""}
    assert run(
        write_csv(tmp_path / "same.csv", [contact({**ACME, **same}, "ann.lee@acme-robotics.example", "A", "L")])
    ).ok


def test_a_tier_without_a_price_for_the_organisation_is_an_error(tmp_path, growth):
    rows = [
        contact({**BEDE, "size_band": "250+", "tier": "growth", "renewal_date": "2027-01-01"}, "c@b.example", "C", "N")
    ]

    report = run(write_csv(tmp_path / "members.csv", rows))

    assert report.errors[0].messages["tier"][0].startswith("Growth has no price for a Start-up of 250+ staff")


def test_a_dry_run_shows_every_outcome_and_writes_nothing(tmp_path, growth):
    seen = []

    report = run(write_csv(tmp_path / "members.csv", STANDARD_ROWS), dry_run=True, on_row=seen.append)

    assert report.ok and not report.written
    assert [(row.row_number, row.outcome) for row in seen] == [(2, "new"), (3, "new"), (4, "new")]
    assert seen[0].summary.startswith("new organisation Acme Robotics Ltd; new Growth subscription (active)")
    assert counts() == dict.fromkeys(counts(), 0)


def test_an_excel_workbook_with_date_cells_imports(tmp_path, growth):
    rows = [dict(row) for row in STANDARD_ROWS]
    rows[0]["renewal_date"] = datetime(2027, 3, 31)  # a real date cell
    rows[0]["company_number"] = 1234567  # a number cell, without its leading zero

    report = run(write_xlsx(tmp_path / "members.xlsx", rows))

    assert report.ok, report.errors
    subscription = Subscription.objects.get(organisation__company_number="01234567")
    assert subscription.current_period_end.astimezone().date() == date(2027, 3, 31)


def test_a_renewal_date_saved_as_its_serial_number_imports_from_a_workbook_but_not_a_csv(tmp_path, growth):
    rows = [dict(row) for row in STANDARD_ROWS]
    rows[0]["renewal_date"] = 46477  # 2027-03-31 in a cell formatted as General, as other tools export dates
    rows[1]["renewal_date"] = 46477.0  # the same, written as a whole-valued float

    report = run(write_xlsx(tmp_path / "members.xlsx", rows))

    assert report.ok, report.errors
    subscription = Subscription.objects.get(organisation__company_number="01234567")
    assert subscription.current_period_end.astimezone().date() == date(2027, 3, 31)
    # In a CSV a bare number could be any date: it stays an error.
    errors = run(write_csv(tmp_path / "members.csv", rows), dry_run=True).errors
    assert [(error.row_number, error.messages) for error in errors] == [
        (2, {"renewal_date": ["“46477” is not a date: write it like 2026-03-31 or 31/03/2026."]}),
        (3, {"renewal_date": ["“46477.0” is not a date: write it like 2026-03-31 or 31/03/2026."]}),
    ]


def test_a_serial_number_counts_from_the_workbooks_own_epoch(tmp_path, growth):
    from openpyxl.utils.datetime import CALENDAR_MAC_1904

    rows = [contact({**ACME, "renewal_date": 45015}, "ann.lee@acme-robotics.example", "Ann", "Lee", role="admin")]

    report = run(write_xlsx(tmp_path / "members.xlsx", rows, epoch=CALENDAR_MAC_1904))

    assert report.ok, report.errors
    subscription = Subscription.objects.get(organisation__company_number="01234567")
    assert subscription.current_period_end.astimezone().date() == date(2027, 3, 31)  # 2023-03-30 counted from 1900


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (46477.5, "“46477.5” is a number, not a date: format the cell as a date, or write it like 2026-03-31."),
        (12, "“12” is not a date from 1990 to 2100: format the cell as a date, or write it like 2026-03-31."),
        (0, "“0” is not a date from 1990 to 2100: format the cell as a date, or write it like 2026-03-31."),
        (-46477, "“-46477” is not a date from 1990 to 2100: format the cell as a date, or write it like 2026-03-31."),
        (99999, "“99999” is not a date from 1990 to 2100: format the cell as a date, or write it like 2026-03-31."),
        (
            10**12,
            "“1000000000000” is not a date from 1990 to 2100: format the cell as a date, or write it like 2026-03-31.",
        ),
    ],
    ids=["fraction", "too-early", "zero", "negative", "too-late", "beyond-any-date"],
)
def test_a_number_that_is_no_likely_date_is_a_row_error_and_nothing_is_written(tmp_path, growth, cell, message):
    rows = [*STANDARD_ROWS, contact({**ACME, "renewal_date": cell}, "dee@acme-robotics.example", "Dee", "Ray")]
    before = counts()

    report = run(write_xlsx(tmp_path / "members.xlsx", rows))

    assert not report.ok and not report.written
    assert counts() == before
    [error] = report.errors
    assert error.row_number == 5
    assert error.messages == {"renewal_date": [message]}


def test_a_workbook_whose_saved_dimensions_are_stale_is_read_whole(tmp_path, growth):
    # Some programs save <dimension ref="A1"/> whatever the sheet holds.
    path = write_xlsx(tmp_path / "members.xlsx", STANDARD_ROWS)
    stale = tmp_path / "stale.xlsx"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(stale, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, found = re.subn(rb'<dimension ref="[^"]*" ?/>', b'<dimension ref="A1"/>', data)
                assert found == 1
            target.writestr(item, data)

    report = run(stale)

    assert report.ok and report.counts == {"new": 3}, (report.problems, report.errors)


def test_a_formula_error_in_a_workbook_is_an_error_not_text(tmp_path, growth):
    # openpyxl writes "#N/A" as an error cell, as Excel saves a VLOOKUP that found nothing.
    rows = [*STANDARD_ROWS, contact({**BEDE, "organisation_name": "#N/A"}, "dan@bede-data.example", "Dan", "Ng")]

    report = run(write_xlsx(tmp_path / "members.xlsx", rows))

    assert not report.written and not Organisation.objects.exists()
    assert {error.row_number: error.messages for error in report.errors} == {
        5: {
            "organisation_name": [
                "The cell holds a formula's error (#N/A), not a value: correct the formula or clear it."
            ]
        }
    }


def test_a_csv_saved_by_excel_with_semicolons_and_its_own_code_page_imports(tmp_path, growth):
    path = tmp_path / "members.csv"
    lines = [
        ";".join(COLUMNS),
        ";".join(contact(BEDE, "zoe@bede-data.example", "Zoë", "Brontë").get(c, "") for c in COLUMNS),
    ]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))

    report = run(path)

    assert report.ok
    assert User.objects.get().get_full_name() == "Zoë Brontë"


def test_a_csv_with_old_mac_line_endings_imports(tmp_path, growth):
    path = write_csv(tmp_path / "members.csv", STANDARD_ROWS)
    path.write_bytes(path.read_bytes().replace(b"\r\n", b"\r"))  # Excel for Mac's "CSV (Macintosh)"

    report = run(path)

    assert report.ok and report.counts == {"new": 3}


def test_a_utf16_file_with_tabs_imports_and_one_that_is_not_text_is_refused(tmp_path, growth):
    path = tmp_path / "members.csv"
    lines = [COLUMNS, *([row.get(column, "") for column in COLUMNS] for row in STANDARD_ROWS)]
    path.write_bytes("\r\n".join("\t".join(line) for line in lines).encode("utf-16"))  # Excel's "Unicode Text"

    assert run(path).counts == {"new": 3}

    path.write_bytes(path.read_bytes().removeprefix(codecs.BOM_UTF16_LE))  # no byte order mark to go by
    before = counts()

    report = run(path)

    assert report.problems == ["This CSV file could not be read as text: save it again as “CSV UTF-8”, or as .xlsx."]
    assert counts() == before


def test_a_csv_that_cannot_be_read_halfway_is_refused_and_nothing_is_written(tmp_path, growth):
    path = write_csv(tmp_path / "members.csv", STANDARD_ROWS)
    # A quote that is never closed: the rest of the file would be one cell.
    path.write_bytes(path.read_bytes() + b'"Zed Ltd,' + b"x" * 140_000 + b"\r\n")

    report = run(path)

    assert report.problems == [
        "Row 5 of this CSV file could not be read (field larger than field limit (131072)): save it again as "
        "“CSV UTF-8”, or as .xlsx."
    ]
    assert counts() == {model.__name__: 0 for model in MODELS}


# The command ----------------------------------------------------------------------------------------------------


def test_the_command_imports_and_says_what_it_did(tmp_path, growth, capsys):
    call_command("import_members", str(write_csv(tmp_path / "members.csv", STANDARD_ROWS)))

    out = capsys.readouterr().out
    assert "3 rows: 3 new, 0 updated, 0 unchanged, 0 with errors" in out
    assert "Imported." in out
    assert Organisation.objects.count() == 2


def test_the_command_exits_non_zero_on_any_error_and_writes_nothing(tmp_path, growth, capsys):
    rows = [*STANDARD_ROWS, contact({**ACME, "renewal_date": "soon"}, "dee@acme-robotics.example", "Dee", "Ray")]

    with pytest.raises(CommandError, match="Nothing was imported"):
        call_command("import_members", str(write_csv(tmp_path / "members.csv", rows)))

    assert "row 5, renewal_date: “soon” is not a date" in capsys.readouterr().out
    assert Organisation.objects.count() == 0


def test_the_command_dry_run_checks_and_writes_nothing(tmp_path, growth, capsys):
    call_command("import_members", str(write_csv(tmp_path / "members.csv", STANDARD_ROWS)), "--dry-run")

    assert "Dry run: nothing was written." in capsys.readouterr().out
    assert Organisation.objects.count() == 0


def test_the_command_refuses_a_missing_file_or_a_file_problem(tmp_path, capsys):
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_members", str(tmp_path / "nowhere.csv"))
    with pytest.raises(CommandError, match="The file has no column for"):
        call_command("import_members", str(write_csv(tmp_path / "m.csv", STANDARD_ROWS, COLUMNS[:3])))


def test_the_command_exits_with_1_on_an_error_and_0_when_all_is_well(tmp_path, growth, monkeypatch):
    from django.core.management import base

    from membership.management.commands.import_members import Command

    # As from a shell; but the test's database connection stays open, as the test holds its transaction.
    monkeypatch.setattr(base.connections, "close_all", lambda: None)

    bad = write_csv(tmp_path / "bad.csv", [contact(ACME, "not-an-address", "A", "B")])
    good = write_csv(tmp_path / "good.csv", STANDARD_ROWS)

    with pytest.raises(SystemExit) as failed:
        Command().run_from_argv(["manage.py", "import_members", str(bad)])
    Command().run_from_argv(["manage.py", "import_members", str(good), "--dry-run"])  # returns: exit status 0

    assert failed.value.code == 1
