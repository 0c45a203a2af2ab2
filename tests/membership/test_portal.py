import io
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from membership import services
from membership.models import AuditEntry, Organisation, OrganisationMember, Specialism
from tests.factories import add_member, make_organisation, make_user

Role = OrganisationMember.Role


def _png(width=64, height=64, fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (11, 61, 92)).save(buffer, fmt)
    return buffer.getvalue()


def _noise_png(side: int) -> bytes:
    """A real PNG that does not compress: over 2 MB at 1200 pixels a side."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def _profile_data(organisation, **overrides) -> dict:
    data = {
        "name": organisation.name,
        "organisation_type": organisation.organisation_type,
        "size_band": organisation.size_band,
        "town": organisation.town,
        "public_fields": ["description", "town"],
        "description": "We help manufacturers use their data.",
        "email_domains": "tyne-analytics.example",
    }
    data.update(overrides)
    return data


@pytest.fixture
def admin_org(org_admin):
    return org_admin.memberships.get().organisation


def test_my_sends_a_member_to_their_organisation(client, admin_org, org_admin):
    client.force_login(org_admin)
    response = client.get("/my/")
    assert response["Location"] == f"/my/org/{admin_org.slug}/"


def test_someone_without_an_organisation_is_offered_to_join_or_create_one(client, db):
    user = make_user("sam@tyne-analytics.example")
    org = make_organisation("Tyne Analytics", email_domains="tyne-analytics.example")
    add_member(org, make_user("boss@tyne-analytics.example"), Role.ADMIN)
    client.force_login(user)
    html = client.get("/my/").content.decode()
    assert "Join your colleagues" in html
    assert 'href="/my/organisations/new/"' in html
    response = client.get("/my/join/")
    assert "Ask to join Tyne Analytics" in response.content.decode()


def test_a_person_in_two_organisations_switches_between_them(client, db):
    consultant = make_user("consultant@quayside.example")
    first = make_organisation("Quayside Digital")
    second = make_organisation("Tees Valley Lab")
    add_member(first, consultant)
    add_member(second, consultant, Role.ADMIN)
    client.force_login(consultant)
    html = client.get(f"/my/org/{first.slug}/").content.decode()
    assert f'href="/my/org/{second.slug}/"' in html  # the switcher
    client.get(f"/my/org/{second.slug}/")
    assert client.get("/my/")["Location"] == f"/my/org/{second.slug}/"  # remembers the last one


def test_creating_an_organisation_from_the_portal(client, db):
    user = make_user("founder@new.example")
    client.force_login(user)
    ai = Specialism.objects.get(slug="ai-and-data")
    response = client.post(
        "/my/organisations/new/",
        {
            "name": "Bede Robotics",
            "organisation_type": "startup",
            "size_band": "1-9",
            "specialisms": [ai.pk],
            "public_fields": ["description"],
            "website": "bede-robotics.example",
        },
    )
    organisation = Organisation.objects.get(name="Bede Robotics")
    assert response["Location"] == f"/my/org/{organisation.slug}/colleagues/"
    assert organisation.website == "https://bede-robotics.example"
    assert list(organisation.specialisms.all()) == [ai]
    assert OrganisationMember.objects.get(organisation=organisation).user == user


def test_saving_the_profile_is_audited(client, admin_org, org_admin):
    client.force_login(org_admin)
    response = client.post(f"/my/org/{admin_org.slug}/profile/", _profile_data(admin_org, town="Gateshead"))
    assert response.status_code == 302
    admin_org.refresh_from_db()
    assert admin_org.town == "Gateshead"
    entry = AuditEntry.objects.get(action="membership.organisation.updated")
    assert entry.actor == org_admin
    assert entry.changes["town"] == ["Newcastle upon Tyne", "Gateshead"]


def test_a_personal_mail_service_cannot_be_listed_as_the_organisations_domain(client, admin_org, org_admin):
    """Listing gmail.com would offer the organisation to every stranger with an address there."""
    before = admin_org.email_domains
    client.force_login(org_admin)

    response = client.post(
        f"/my/org/{admin_org.slug}/profile/",
        _profile_data(admin_org, email_domains="tyne-analytics.example, Gmail.com"),
    )

    assert response.status_code == 200  # the form again, with what was typed
    assert "Anyone can have an address at gmail.com" in response.content.decode()
    admin_org.refresh_from_db()
    assert admin_org.email_domains == before


def test_a_domain_is_listed_only_by_someone_verified_there_and_by_one_organisation(client, admin_org, org_admin):
    """A listed domain offers the organisation to everyone verified at it, who may ask to join: listing another
    organisation's domain would let its admin gather that organisation's staff."""
    from allauth.account.models import EmailAddress

    client.force_login(org_admin)
    Organisation.objects.filter(pk=admin_org.pk).update(email_domains="tyne-analytics.example")
    before = "tyne-analytics.example"
    squatted = make_organisation("Acme Robotics", email_domains="acme.example")
    url = f"/my/org/{admin_org.slug}/profile/"

    response = client.post(url, _profile_data(admin_org, email_domains=f"{before}, acme-robotics.example"))
    assert "To list acme-robotics.example, you need a verified address of your own there" in response.content.decode()
    EmailAddress.objects.create(user=org_admin, email="noah@acme.example", verified=True)
    response = client.post(url, _profile_data(admin_org, email_domains=f"{before}, acme.example"))
    assert "Another organisation already lists acme.example" in response.content.decode()
    admin_org.refresh_from_db()
    assert admin_org.email_domains == before
    assert squatted.domains == ["acme.example"]

    # A domain of their own, verified, that nobody lists: saved; and the ones already listed stay as they are.
    EmailAddress.objects.create(user=org_admin, email="noah@tyne-labs.example", verified=True)
    assert client.post(url, _profile_data(admin_org, email_domains=f"{before}, tyne-labs.example")).status_code == 302
    admin_org.refresh_from_db()
    assert admin_org.domains == ["tyne-analytics.example", "tyne-labs.example"]


def test_a_new_organisation_cannot_list_a_domain_its_founder_is_not_verified_at(client, db):
    founder = make_user("mallory@evil.example")
    make_organisation("Acme Robotics", email_domains="acme.example")
    client.force_login(founder)
    data = {
        "name": "Acme Robotics Ltd",
        "organisation_type": "sme",
        "size_band": "1-9",
        "email_domains": "acme.example",
    }

    response = client.post("/my/organisations/new/", data)

    assert response.status_code == 200 and "you need a verified address of your own there" in response.content.decode()
    assert not Organisation.objects.filter(name="Acme Robotics Ltd").exists()


def test_a_profile_error_keeps_what_was_typed_and_saves_nothing(client, admin_org, org_admin):
    client.force_login(org_admin)
    data = _profile_data(admin_org, description="Typed with care", company_number="123", website="not a url")
    response = client.post(f"/my/org/{admin_org.slug}/profile/", data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Typed with care" in html
    assert "A Companies House number has 8 letters and digits" in html
    assert 'aria-invalid="true"' in html
    admin_org.refresh_from_db()
    assert admin_org.description == ""
    assert not AuditEntry.objects.filter(action="membership.organisation.updated").exists()


def test_the_preview_shows_the_card_without_saving(client, admin_org, org_admin):
    client.force_login(org_admin)
    data = _profile_data(admin_org, description="Our new pitch", directory_opt_in="on", preview="1")
    html = client.post(f"/my/org/{admin_org.slug}/profile/", data).content.decode()
    card = html.split('class="card directory-card"', 1)[1]
    assert "Our new pitch" in card
    assert "Newcastle upon Tyne" in card  # town was ticked public
    admin_org.refresh_from_db()
    assert admin_org.description == ""


def test_the_card_shows_only_the_fields_chosen(client, admin_org, org_admin):
    admin_org.description = "Private pitch"
    admin_org.website = "https://tyne.example"
    admin_org.public_fields = ["website"]
    admin_org.save()
    client.force_login(org_admin)
    html = client.get(f"/my/org/{admin_org.slug}/profile/").content.decode()
    card = html.split('class="card directory-card"', 1)[1].split("</article>", 1)[0]
    assert "https://tyne.example" in card
    assert "Private pitch" not in card


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (SimpleUploadedFile("logo.png", b"not an image at all", "image/png"), "Upload a valid image"),
        (SimpleUploadedFile("logo.png", _png(fmt="BMP"), "image/png"), "must be a PNG, JPEG or WebP"),
        (SimpleUploadedFile("logo.gif", _png(fmt="GIF"), "image/gif"), "File extension"),
        (SimpleUploadedFile("logo.png", _png(5000, 10), "image/png"), "at most 4000 pixels"),
        (SimpleUploadedFile("logo.png", _noise_png(1200), "image/png"), "2 MB or smaller"),
    ],
)
def test_logos_are_checked_by_content_size_and_dimensions(client, admin_org, org_admin, upload, message):
    client.force_login(org_admin)
    response = client.post(f"/my/org/{admin_org.slug}/profile/", {**_profile_data(admin_org), "logo": upload})
    assert response.status_code == 200
    assert message in response.content.decode()
    admin_org.refresh_from_db()
    assert not admin_org.logo


def test_a_real_logo_is_saved(client, admin_org, org_admin, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(org_admin)
    upload = SimpleUploadedFile("logo.png", _png(), "image/png")
    response = client.post(f"/my/org/{admin_org.slug}/profile/", {**_profile_data(admin_org), "logo": upload})
    assert response.status_code == 302
    admin_org.refresh_from_db()
    assert admin_org.logo.name.startswith("logos/")


def test_the_invitation_link_prepares_sign_up_for_the_invited_address(
    client, admin_org, org_admin, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.invite_colleague(admin_org, org_admin, "new.starter@tyne-analytics.example")
    path = "/my/invitations/" + mailoutbox[0].body.split("/my/invitations/")[1].split()[0]
    response = client.get(path)
    assert response.status_code == 200
    assert "new.starter@tyne-analytics.example" in response.content.decode()
    assert client.session["account_verified_email"] == "new.starter@tyne-analytics.example"

    # Signing up with that address needs no second verification e-mail, and the invitation is one click away.
    client.post(
        "/accounts/signup/",
        {
            "email": "new.starter@tyne-analytics.example",
            "password1": "river-wear-2026!",
            "password2": "river-wear-2026!",
        },
    )
    assert "_auth_user_id" in client.session
    response = client.post(path)
    assert response["Location"] == f"/my/org/{admin_org.slug}/"
    assert admin_org.active_members().count() == 2


def test_a_used_invitation_link_explains_itself(client, admin_org, org_admin, django_capture_on_commit_callbacks):
    invitation = services.invite_colleague(admin_org, org_admin, "mia@tyne-analytics.example")
    key = services.invitation_key(invitation)
    services.accept_invitation(invitation, make_user("mia@tyne-analytics.example"))
    response = client.get(f"/my/invitations/{key}/")
    assert response.status_code == 404
    assert "replaced by a newer one, or withdrawn" in response.content.decode()


def test_leaving_an_organisation(client, admin_org, org_admin):
    colleague = make_user("leaver@tyne-analytics.example")
    add_member(admin_org, colleague)
    client.force_login(colleague)
    response = client.post(f"/my/org/{admin_org.slug}/leave/")
    assert response["Location"] == "/my/"
    assert client.get(f"/my/org/{admin_org.slug}/").status_code == 404


def test_the_last_admin_is_told_why_they_cannot_leave(client, admin_org, org_admin):
    client.force_login(org_admin)
    response = client.post(f"/my/org/{admin_org.slug}/leave/", follow=True)
    assert "the only admin of" in response.content.decode()
    assert admin_org.active_members().filter(user=org_admin).exists()


def test_an_invalid_invitation_form_keeps_the_address(client, admin_org, org_admin):
    client.force_login(org_admin)
    response = client.post(f"/my/org/{admin_org.slug}/colleagues/invite/", {"email": "not-an-email", "role": "member"})
    assert response.status_code == 400
    assert 'value="not-an-email"' in response.content.decode()


def test_the_colleagues_page_runs_a_fixed_number_of_queries(
    client, admin_org, org_admin, django_assert_max_num_queries
):
    for number in range(25):
        add_member(admin_org, make_user(f"person{number}@tyne-analytics.example"))
    for number in range(5):
        services.invite_colleague(admin_org, org_admin, f"invitee{number}@tyne-analytics.example")
    client.force_login(org_admin)
    with django_assert_max_num_queries(20):
        response = client.get(f"/my/org/{admin_org.slug}/colleagues/")
    assert response.content.decode().count("person") >= 25


def test_a_hand_over_to_nonsense_is_a_404(client, admin_org, org_admin):
    client.force_login(org_admin)
    assert client.post(f"/my/org/{admin_org.slug}/colleagues/hand-over/", {"to": "abc"}).status_code == 404
    assert admin_org.active_members().get(user=org_admin).role == Role.ADMIN


@pytest.mark.parametrize(
    "spelling",
    [
        "/media/documents/board-minutes.pdf",
        "/media//documents/board-minutes.pdf",
        "/media/./documents/board-minutes.pdf",
        "/media/%2E/documents/board-minutes.pdf",
        "/media/logos/../documents/board-minutes.pdf",
        "/media/logos/%2E%2E/documents/board-minutes.pdf",
    ],
)
def test_uploaded_documents_are_not_served_around_their_privacy(client, db, settings, tmp_path, spelling):
    """Documents are served only by /documents/<id>/, which applies their collection's privacy: however the
    file's path under /media/ is spelled, it is a 404, while other uploads are served."""
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "board-minutes.pdf").write_bytes(b"%PDF-1.4 private")
    (tmp_path / "logos").mkdir()
    (tmp_path / "logos" / "logo.png").write_bytes(_png())
    assert client.get(spelling).status_code == 404
    assert client.get("/media/logos/logo.png").status_code == 200
    assert client.get("/media/logos/./logo.png").status_code == 200
