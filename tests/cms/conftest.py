"""The site's pages and the people who read them: a member of an entitled organisation, one whose membership
lapsed, one on another tier, and someone who belongs to no organisation."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone
from wagtail.models import Page

from cms.models import (
    BoardUpdateIndexPage,
    DirectoryPage,
    HomePage,
    NewsIndexPage,
    NewsPage,
    StandardPage,
    SuccessStoryIndexPage,
)
from membership.models import OrganisationMember, Subscription, Tier
from tests import factories


def paragraph(text: str) -> list[dict]:
    return [{"type": "paragraph", "value": f"<p>{text}</p>"}]


def publish(parent: Page, page: Page) -> Page:
    """Add ``page`` under ``parent`` as a draft and publish it through a revision, as editors do."""
    page.live = False
    parent.add_child(instance=page)
    page.save_revision().publish()
    page.refresh_from_db()
    return page


def add_news(index: NewsIndexPage, title: str, *, days_ago: int = 0, **fields) -> NewsPage:
    fields.setdefault("body", paragraph(f"The full story of {title}."))
    fields.setdefault("introduction", f"In short: {title}.")
    date = timezone.localdate() - timedelta(days=days_ago)
    return publish(index, NewsPage(title=title, date=date, **fields))


@pytest.fixture
def home(db) -> HomePage:
    return HomePage.objects.get()


@pytest.fixture
def news_index(home) -> NewsIndexPage:
    return publish(home, NewsIndexPage(title="News", slug="news", introduction="What is happening."))


@pytest.fixture
def board_index(home) -> BoardUpdateIndexPage:
    return publish(home, BoardUpdateIndexPage(title="Advisory board", slug="advisory-board"))


@pytest.fixture
def stories_index(home) -> SuccessStoryIndexPage:
    return publish(home, SuccessStoryIndexPage(title="Success stories", slug="success-stories"))


@pytest.fixture
def directory(home) -> DirectoryPage:
    return publish(home, DirectoryPage(title="Member directory", slug="directory"))


@pytest.fixture
def members_page(home) -> StandardPage:
    """A members-only guide whose body must reach nobody without access."""
    return publish(
        home,
        StandardPage(
            title="Members' guide",
            slug="members-guide",
            introduction="How to get the most from membership.",
            body=paragraph("The discount code is QUAYSIDE-SECRET-42."),
            members_only=True,
        ),
    )


def _tier(name: str, order: int) -> Tier:
    return Tier.objects.create(name=name, slug=name.lower(), sort_order=order)


def _subscribe(organisation, tier: Tier, status: str) -> Subscription:
    now = timezone.now()
    return Subscription.objects.create(
        organisation=organisation,
        tier=tier,
        status=status,
        amount_pence=120_000,
        current_period_start=now - timedelta(days=30),
        current_period_end=now + timedelta(days=335),
    )


def _person(email: str, organisation_name: str | None, tier: Tier | None = None, status: str | None = None):
    user = factories.make_user(email)
    if organisation_name:
        organisation = factories.make_organisation(organisation_name)
        factories.add_member(organisation, user, OrganisationMember.Role.MEMBER)
        if tier:
            _subscribe(organisation, tier, status)
    return user


@pytest.fixture
def people(db) -> SimpleNamespace:
    """Tiers and one person for each answer a members-only page can give."""
    growth, scale = _tier("Growth", 1), _tier("Scale", 2)
    return SimpleNamespace(
        growth=growth,
        scale=scale,
        entitled=_person("mia@tyne-analytics.example", "Tyne Analytics", growth, Subscription.Status.ACTIVE),
        in_grace=_person("lee@tees-data.example", "Tees Data", growth, Subscription.Status.GRACE),
        lapsed=_person("ola@lapsed-labs.example", "Lapsed Labs", growth, Subscription.Status.LAPSED),
        pending=_person("sam@new-co.example", "New Co", growth, Subscription.Status.PENDING),
        no_subscription=_person("kit@never-joined.example", "Never Joined"),
        scale_member=_person("ana@scale-co.example", "Scale Co", scale, Subscription.Status.ACTIVE),
        no_organisation=_person("pat@nowhere.example", None),
    )


def page_form(title: str, body_html: str | None = None, **fields) -> dict:
    """What the back office's page form posts, built with Wagtail's test utilities."""
    from django.utils.text import slugify
    from wagtail.test.utils.form_data import inline_formset, nested_form_data, rich_text, streamfield

    data = {"title": title, "slug": fields.pop("slug", slugify(title)), "comments": inline_formset([])}
    if body_html is not None:
        data["body"] = streamfield([("paragraph", rich_text(body_html))])
    data.update(fields)
    return nested_form_data(data)
