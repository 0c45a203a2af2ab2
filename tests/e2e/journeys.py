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
