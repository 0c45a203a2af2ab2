"""Steps the browser journeys share."""

from playwright.sync_api import Page


def header(page: Page):
    return page.get_by_role("navigation", name="Main")


def log_in(page: Page, base_url: str, email: str, password: str) -> None:
    """Submit the log-in form; the caller checks what should follow."""
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password:", exact=True).fill(password)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_load_state()


def log_in_with_second_factor(page: Page, base_url: str, email: str, password: str, totp_secret: str) -> None:
    """Log in through the second factor: the password, then the code the authenticator app shows at that moment.

    A code read in the last seconds of its 30-second window may reach the server in the next one and be refused, so
    it waits for a fresh window first; and it waits until the browser has left the second-factor page, so the next
    navigation cannot cut the form's submission short."""
    import re
    import time

    from tests.factories import current_totp

    log_in(page, base_url, email, password)
    page.wait_for_url(f"{base_url}/accounts/2fa/authenticate/")
    if 30 - time.time() % 30 < 4:
        time.sleep(30 - time.time() % 30 + 0.2)
    page.locator("input[name=code]").fill(current_totp(totp_secret))
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(re.compile(r"^(?!.*/accounts/2fa/authenticate/)"))
    page.wait_for_load_state()


log_in_staff = log_in_with_second_factor
