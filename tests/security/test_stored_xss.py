"""Stored XSS: what members (and import files) put into the platform comes back as text on every page that shows
it, on the public site, in the member portal and in the back office, and in the e-mails that carry it.

The payload goes in the way people put it in (the portal's forms, the offer form, event registration, an import
file) wherever there is such a way, and each page must show its escaped form and never the payload itself.
"""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from benefits import services as perks
from benefits.models import Perk
from cms.events.models import EventRegistration
from membership import services
from membership.models import (
    MemberImport,
    Organisation,
    OrganisationMember,
    Subscription,
    Tier,
)
from tests import factories
from tests.cms.conftest import publish
from tests.security.conftest import XSS, XSS_ESCAPED

pytestmark = pytest.mark.django_db

# A web address that passes URL validation yet would break out of an href if it were not escaped.
XSS_URL = 'https://tyne.example/?"><script>alert(1)</script>'
XSS_URL_ESCAPED = "https://tyne.example/?&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _problems(client: Client, pages: dict[str, list[tuple[str, str]]]) -> list[str]:
    """Each page's problems: a payload shown raw, or its escaped form missing (the page does not show it)."""
    problems = []
    for url, expected in pages.items():
        response = client.get(url)
        if response.status_code != 200:
            problems.append(f"{url}: answered {response.status_code}")
            continue
        html = response.content.decode()
        for raw, escaped in expected:
            if raw in html:
                problems.append(f"{url}: shows {raw!r} unescaped")
            elif escaped not in html:
                problems.append(f"{url}: does not show {escaped!r}")
    return problems


@pytest.fixture
def hostile(db, client):
    """An organisation whose admin typed the payload into everything they could."""
    from cms.models import DirectoryPage, HomePage

    tier = Tier.objects.create(name="Growth", slug="growth")
    admin = factories.make_user("noah@tyne.example", first_name="Noah", last_name="Patel")
    organisation = factories.make_organisation("Tyne Analytics", email_domains="tyne.example")
    factories.add_member(organisation, admin, OrganisationMember.Role.ADMIN)
    now = timezone.now()
    Subscription.objects.create(
        organisation=organisation,
        tier=tier,
        status=Subscription.Status.ACTIVE,
        amount_pence=90_000,
        current_period_start=now - timedelta(days=340),
        current_period_end=now + timedelta(days=25),  # renewing soon, and quiet: on the at-risk queue
    )
    portal = _client(admin)

    # The admin's own name, through My account.
    response = portal.post(
        "/my/account/", {"profile-first_name": XSS, "profile-last_name": XSS, "consent-newsletter": ""}
    )
    assert response.status_code == 302
    # The organisation's profile, through the portal.
    profile = {
        "name": XSS,
        "organisation_type": "sme",
        "size_band": "10-49",
        "description": XSS,
        "website": XSS_URL,
        "town": XSS,
        "email_domains": "tyne.example",
        "directory_opt_in": "on",
        "public_fields": ["description", "website", "town"],
    }
    response = portal.post(f"/my/org/{organisation.slug}/profile/", profile)
    assert response.status_code == 302, response.content.decode()
    organisation.refresh_from_db()
    assert organisation.name == XSS  # stored as typed; escaping is the templates' job
    # A colleague with a job title (set by the membership team or an import) who asks to join.
    colleague = factories.make_user("mia@tyne.example", first_name=XSS, last_name="Robson")
    OrganisationMember.objects.create(organisation=organisation, user=factories.make_user("lee@tyne.example"))
    OrganisationMember.objects.filter(organisation=organisation).update(job_title=XSS)
    services.request_to_join(organisation, colleague, XSS)
    # An offer of a perk, through the portal's offer form.
    offer = {
        "title": XSS,
        "category": Perk._meta.get_field("category").choices[0][0],
        "summary": XSS,
        "value_line": XSS,
        "description": XSS,
        "terms": XSS,
        "method": Perk.Method.CONTACT,
        "cap_per_organisation": 1,
    }
    response = portal.post(f"/my/org/{organisation.slug}/offers/new/", offer)
    assert response.status_code == 302, response.content.decode()
    perk = Perk.objects.get(provider__organisation=organisation)
    # An event registration with the payload as the badge name.
    event = factories.make_event("Tech for Good Breakfast", free_for_tiers=[tier])
    response = portal.post(f"/my/events/register/{event.pk}/", {"register_as": str(organisation.pk), "name": XSS})
    assert response.status_code == 302
    registration = EventRegistration.objects.get()
    assert registration.status == EventRegistration.Status.CONFIRMED
    home = HomePage.objects.get()
    publish(home, DirectoryPage(title="Member directory", slug="directory"))
    staff = factories.make_staff("security@netech.example", superuser=True)
    return SimpleNamespace(
        organisation=Organisation.objects.get(pk=organisation.pk),
        admin=admin,
        portal=portal,
        perk=perk,
        event=event,
        registration=registration,
        staff=staff,
        back_office=_client(staff),
    )


NAME = [(XSS, XSS_ESCAPED)]


def test_the_public_site_shows_what_members_typed_as_text(hostile, client):
    assert _problems(client, {"/directory/": [*NAME, (XSS_URL, XSS_URL_ESCAPED)]}) == []

    perks.approve_offer(hostile.perk, hostile.staff)

    assert _problems(client, {"/perks/": NAME, f"/perks/{hostile.perk.slug}/": NAME}) == []


def test_the_member_portal_shows_what_members_typed_as_text(hostile):
    slug = hostile.organisation.slug
    pages = {
        f"/my/org/{slug}/": NAME,
        f"/my/org/{slug}/profile/": [*NAME, (XSS_URL, XSS_URL_ESCAPED)],
        f"/my/org/{slug}/colleagues/": NAME,
        f"/my/org/{slug}/offers/": NAME,
        f"/my/org/{slug}/offers/{hostile.perk.pk}/": NAME,
        f"/my/org/{slug}/billing/": NAME,
        "/my/events/": NAME,
        f"/my/events/{hostile.registration.pk}/": NAME,
        "/my/account/": NAME,
    }
    assert _problems(hostile.portal, pages) == []


def test_the_back_office_shows_what_members_typed_as_text(hostile):
    from membership.engagement import recompute_scores

    recompute_scores()
    org, event = hostile.organisation, hostile.event
    pages = {
        "/admin/": NAME,
        "/admin/membership/organisation/": NAME,
        f"/admin/membership/organisation/{org.pk}/record/": [*NAME, (XSS_URL, XSS_URL_ESCAPED)],
        f"/admin/membership/organisation/edit/{org.pk}/": NAME,
        "/admin/membership/people/": NAME,
        "/admin/benefits/perks/": NAME,
        f"/admin/benefits/perks/{hostile.perk.pk}/review/": NAME,
        "/admin/engagement/": NAME,
        "/admin/engagement/at-risk/": NAME,
        "/admin/event-registrations/": [],
        f"/admin/event-registrations/{event.pk}/": NAME,
        f"/admin/event-registrations/{event.pk}/check-in/": NAME,
        f"/admin/event-registrations/{event.pk}/check-in/?q=%3Cscript": NAME,
    }
    assert _problems(hostile.back_office, pages) == []


def test_the_import_preview_shows_the_files_cells_as_text(db, tmp_path):
    from tests.membership.import_files import BEDE, contact, write_csv

    client = _client(factories.make_staff("imports@netech.example", superuser=True))
    hostile_org = {**BEDE, "organisation_name": XSS, "town": XSS}
    rows = [
        contact(hostile_org, "ada@bede-data.example", XSS, XSS, job_title=XSS),  # a new organisation and contact
        contact(BEDE, XSS, "Bob", "Kay", organisation_type=XSS, tier=XSS),  # errors that quote the cells
    ]
    upload = SimpleUploadedFile("members.csv", write_csv(tmp_path / "members.csv", rows).read_bytes())

    response = client.post("/admin/engagement/import/", {"file": upload})

    assert response.status_code == 302
    record = MemberImport.objects.get()
    preview = f"/admin/engagement/import/{record.pk}/"
    assert _problems(client, {preview: NAME, f"{preview}?outcome=error": NAME, f"{preview}?outcome=new": NAME}) == []


def test_emails_show_what_members_typed_as_text(hostile, mailoutbox, django_capture_on_commit_callbacks):
    """Every e-mail that carries what members typed (the join request to the admin, a colleague's invitation, the
    renewal reminder, the engagement manager's digest) escapes it in its HTML part and keeps it to one line in the
    subject."""
    from membership import renewals, tasks
    from membership.engagement import recompute_scores
    from membership.engagement_dashboard import queue_weekly_digest
    from membership.models import EngagementSettings, JoinRequest

    settings_row = EngagementSettings.load()
    settings_row.digest_recipients = "engagement@netech.example"
    settings_row.save()
    recompute_scores()
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.send_join_request_email(JoinRequest.objects.get().pk)
        services.invite_colleague(hostile.organisation, hostile.admin, "new.starter@tyne.example")
        renewals.send_renewal_reminders()
        assert queue_weekly_digest()

    assert len(mailoutbox) == 4, [message.subject for message in mailoutbox]
    for message in mailoutbox:
        html = [body for body, mimetype in message.alternatives if mimetype == "text/html"]
        assert len(html) == 1, message.subject
        assert XSS_ESCAPED in html[0], f"{message.subject!r} does not show what was typed"
        assert XSS not in html[0] and "<img src=x" not in html[0], f"{message.subject!r} shows the payload unescaped"
        assert "\n" not in message.subject and "\r" not in message.subject


# Every free-text column, every page ----------------------------------------------------------------------------

RAW_MARKERS = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")
XSS_URL = 'https://tyne.example/?"><script>alert(1)</script>'
# Columns no one types into freely: generated keys and ids, Stripe's ids, passwords, address paths.
_NOT_TYPED = ("slug", "key", "nonce", "token", "password", "stripe", "secret", "email_domains", "url_path", "path")


def _poison_every_text_field() -> list[str]:
    """Every free-text column (not slugs, keys, ids, choices or rich text) of what members, staff and imports fill,
    set to the payload, whichever way it could have been stored."""
    from django.db import models
    from wagtail.fields import RichTextField, StreamField

    from accounts.models import User
    from benefits.models import Provider, Redemption
    from membership.models import Invitation, JoinRequest

    poisoned = []
    for model in (Organisation, OrganisationMember, Invitation, JoinRequest, Subscription, Provider, Perk,
                  Redemption, EventRegistration, User):  # fmt: skip
        values = {}
        for field in model._meta.concrete_fields:
            if not isinstance(field, models.CharField | models.TextField) or field.choices or field.primary_key:
                continue
            if isinstance(field, RichTextField | StreamField) or any(part in field.name for part in _NOT_TYPED):
                continue
            if isinstance(field, models.EmailField) or field.name in ("email", "code"):
                continue
            values[field.name] = XSS_URL if isinstance(field, models.URLField) else XSS[: field.max_length or None]
        model.objects.update(**values)
        poisoned += [f"{model.__name__}.{name}" for name in values]
    return poisoned


def test_no_page_shows_any_stored_text_field_raw(db):
    """Every free-text column poisoned; every address the platform serves (portal, public site, back office,
    Django admin, and every live page) fetched by a superuser who admins the organisation."""
    from wagtail.models import Page

    from tests.benefits.conftest import subscribe
    from tests.security.test_csrf import _routes, build_world, concrete_url

    world = build_world()
    organisation = world["organisation"]
    organisation.directory_opt_in = True
    organisation.public_fields = ["description", "website", "town", "linkedin_url", "x_url", "github_url"]
    organisation.save()
    subscribe(organisation, Tier.objects.create(name="Growth", slug="growth"))
    fields = _poison_every_text_field()
    urls = [concrete_url(route, world) for route in _routes()]
    urls += [page.get_url() for page in Page.objects.live().exclude(depth=1).specific()]
    client = Client(raise_request_exception=False)
    client.force_login(world["user"])
    raw, shown = [], []
    for url in urls:
        if "logout" in url or "delete" in url:
            continue
        response = client.get(url)
        if response.status_code != 200 or not response.get("Content-Type", "").startswith("text/html"):
            continue
        html = response.content.decode(errors="replace")
        if any(marker in html for marker in RAW_MARKERS):
            raw.append(url)
        if "&lt;script&gt;alert(1)" in html:
            shown.append(url)

    assert len(fields) > 30
    assert len(shown) > 40, shown  # the crawl reached the pages that show the fields
    assert raw == []
