"""An org admin invites a colleague, who signs up from the e-mailed link and joins, all in a real browser."""

import re

import pytest
from playwright.sync_api import Page, expect

from membership.models import Invitation, OrganisationMember
from tests.e2e.journeys import header, log_in
from tests.factories import PASSWORD, add_member, make_organisation, make_user

# A transactional test ends with a flush; tests/conftest.py puts the page tree back before the next one.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

INVITATION_LINK = re.compile(r"https?://\S+?/my/invitations/[^\s/]+/")
CONFIRM_LINK = re.compile(r"https?://\S+?/accounts/confirm-email/[^\s/]+/")


def _sidebar(page: Page):
    return page.get_by_role("complementary", name="My organisation")


def _log_in(page: Page, base_url: str, email: str, password: str) -> None:
    log_in(page, base_url, email, password)
    expect(header(page).get_by_role("button", name="Log out")).to_be_visible()


def _log_out(page: Page) -> None:
    header(page).get_by_role("button", name="Log out").click()
    expect(header(page).get_by_role("link", name="Log in")).to_be_visible()


def _open_colleagues(page: Page, base_url: str, slug: str) -> None:
    page.goto(f"{base_url}/my/")
    page.wait_for_url(f"{base_url}/my/org/{slug}/")
    _sidebar(page).get_by_role("link", name="Colleagues").click()
    page.wait_for_url(f"{base_url}/my/org/{slug}/colleagues/")
    expect(page.get_by_role("heading", name="Colleagues", level=1)).to_be_visible()


def _people(page: Page, organisation_name: str):
    return page.get_by_role("table", name=f"People in {organisation_name}")


def test_an_admin_invites_a_colleague_who_signs_up_from_the_link_and_joins(
    page: Page, live_server, mailoutbox, settings
):
    settings.SITE_URL = live_server.url  # the e-mailed link must point at this server
    base = live_server.url
    admin = make_user("noah@wearside-robotics.example", first_name="Noah", last_name="Patel")
    organisation = make_organisation("Wearside Robotics")
    add_member(organisation, admin, OrganisationMember.Role.ADMIN)
    colleague = "mia.robson@wearside-robotics.example"
    colleague_password = "a-long-and-unusual-passphrase-42"

    # The admin logs in and invites a colleague from the Colleagues page.
    _log_in(page, base, admin.email, PASSWORD)
    _open_colleagues(page, base, organisation.slug)
    page.get_by_label("Colleague's work e-mail").fill(colleague)
    page.get_by_role("button", name="Send invitation").click()
    page.wait_for_url(f"{base}/my/org/{organisation.slug}/colleagues/")
    expect(page.get_by_role("status")).to_contain_text(f"An invitation is on its way to {colleague}.")
    invitations = page.get_by_role("region", name="Invitations")
    expect(invitations.get_by_role("cell", name=colleague, exact=True)).to_be_visible()

    assert [message.to for message in mailoutbox] == [[colleague]]
    match = INVITATION_LINK.search(mailoutbox[0].body)
    assert match, mailoutbox[0].body
    invitation_url = match.group(0)
    assert invitation_url.startswith(f"{base}/my/invitations/"), invitation_url

    _log_out(page)

    # The colleague opens the link, logged out, and creates an account with the invited address.
    page.goto(invitation_url)
    expect(page.get_by_role("heading", name="Join Wearside Robotics")).to_be_visible()
    page.get_by_role("link", name="Create an account").click()
    page.wait_for_url(re.compile(r"/accounts/signup/"))
    email_field = page.get_by_label("Email")
    expect(email_field).to_have_value(colleague)  # prefilled from the invitation
    page.get_by_label("Password:", exact=True).fill(colleague_password)
    page.get_by_label("Password (again):", exact=True).fill(colleague_password)
    page.get_by_role("button", name="Sign Up").click()

    # The link proved the address: no verification e-mail, straight back to the invitation, logged in.
    page.wait_for_url(invitation_url)
    expect(header(page).get_by_role("button", name="Log out")).to_be_visible()
    assert [message.to for message in mailoutbox] == [[colleague]], [m.subject for m in mailoutbox]

    page.get_by_role("button", name="Accept and join Wearside Robotics").click()
    page.wait_for_url(f"{base}/my/org/{organisation.slug}/")
    expect(page.get_by_role("status")).to_contain_text("Welcome to Wearside Robotics.")

    # The new member sees themselves, and their admin, among the colleagues.
    _sidebar(page).get_by_role("link", name="Colleagues").click()
    page.wait_for_url(f"{base}/my/org/{organisation.slug}/colleagues/")
    expect(_people(page, organisation.name).get_by_text(colleague).first).to_be_visible()
    expect(_people(page, organisation.name).get_by_text("Noah Patel")).to_be_visible()
    expect(page.get_by_role("button", name="Send invitation")).to_have_count(0)  # a member, not an admin

    invitation = Invitation.objects.get(organisation=organisation, email=colleague)
    assert invitation.accepted_at is not None
    assert OrganisationMember.objects.get(organisation=organisation, user__email=colleague).role == "member"

    # Back as the admin: the colleague is listed, and the invitation is no longer open.
    _log_out(page)
    _log_in(page, base, admin.email, PASSWORD)
    _open_colleagues(page, base, organisation.slug)
    expect(_people(page, organisation.name).get_by_text(colleague).first).to_be_visible()
    expect(_people(page, organisation.name).get_by_role("button", name="Make admin")).to_have_count(1)
    expect(page.get_by_role("region", name="Invitations")).to_have_count(0)
