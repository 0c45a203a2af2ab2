"""A new member signs up, verifies their e-mail, logs in and out, all in a real browser."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.journeys import header, log_in
from tests.factories import PASSWORD, make_user

# A transactional test ends with a flush; tests/conftest.py puts the page tree back before the next one.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONFIRM_LINK = re.compile(r"https?://\S+?/accounts/confirm-email/[^\s/]+/")


def test_it_signs_up_verifies_logs_in_and_logs_out(page: Page, live_server, mailoutbox):
    email = "new.member@wearside-robotics.example"
    password = "a-long-and-unusual-passphrase-42"

    page.goto(f"{live_server.url}/accounts/signup/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password:", exact=True).fill(password)
    page.get_by_label("Password (again):", exact=True).fill(password)
    page.get_by_role("button", name="Sign Up").click()

    # Verification comes first: the new member is not logged in yet.
    expect(page.get_by_role("heading", name="Verify Your Email Address")).to_be_visible()
    expect(header(page).get_by_role("link", name="Log in")).to_be_visible()
    expect(header(page).get_by_role("button", name="Log out")).to_have_count(0)

    assert [message.to for message in mailoutbox] == [[email]]
    match = CONFIRM_LINK.search(mailoutbox[0].body)
    assert match, mailoutbox[0].body
    confirm_url = match.group(0)
    assert confirm_url.startswith(f"{live_server.url}/"), confirm_url

    page.goto(confirm_url)
    expect(page.get_by_role("heading", name="Confirm Email Address")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status")).to_contain_text(f"You have confirmed {email}.")

    log_in(page, live_server.url, email, password)
    expect(header(page).get_by_role("button", name="Log out")).to_be_visible()
    expect(header(page).get_by_role("link", name="My account")).to_be_visible()
    expect(header(page).get_by_role("link", name="Log in")).to_have_count(0)

    header(page).get_by_role("button", name="Log out").click()
    expect(header(page).get_by_role("link", name="Log in")).to_be_visible()
    expect(header(page).get_by_role("button", name="Log out")).to_have_count(0)
    expect(header(page).get_by_role("link", name="My account")).to_have_count(0)


def test_the_failed_login_limit_is_explained_in_the_browser(page: Page, live_server):
    user = make_user("member@tyne-analytics.example")

    for _ in range(5):
        log_in(page, live_server.url, user.email, "not-the-password")
        expect(page.get_by_text("password you specified are not correct")).to_be_visible()
        expect(page.get_by_text("Too many failed login attempts")).to_have_count(0)
        expect(header(page).get_by_role("link", name="Log in")).to_be_visible()

    # The sixth attempt is refused with a clear message, even with the right password.
    log_in(page, live_server.url, user.email, PASSWORD)
    expect(page.get_by_text("Too many failed login attempts")).to_be_visible()
    expect(header(page).get_by_role("link", name="Log in")).to_be_visible()
    expect(header(page).get_by_role("button", name="Log out")).to_have_count(0)
