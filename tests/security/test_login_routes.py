"""Every way in goes through allauth's log-in, with its rate limits and, for staff, the second factor.

The Django admin's and Wagtail admin's log-in forms hand over to it (``accounts.views.admin_login_redirect``), and
so does Wagtail's front-end one (``/_util/login/``, for pages only members may read), which is otherwise Django's
own form: a password alone, tried as often as one likes.
"""

import pytest
from django.contrib.auth.models import Group
from django.contrib.auth.views import LoginView
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from wagtail.models import Collection, CollectionViewRestriction, Page, PageViewRestriction

from tests import factories

pytestmark = pytest.mark.django_db


def _views(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def _is_login_form(view) -> bool:
    return issubclass(getattr(view, "view_class", object), LoginView)


def test_no_address_answers_with_djangos_own_login_form():
    """Any log-in form among the URL patterns (Django's or a subclass, such as the Wagtail admin's) is shadowed by
    a hand-over to allauth at the same address, which is what answers."""
    forms = [route for route, view in _views(get_resolver().url_patterns) if _is_login_form(view)]

    assert forms, "the walk finds the log-in forms the apps bring"
    assert [route for route in forms if _is_login_form(resolve("/" + route).func)] == []


def test_a_password_posted_to_wagtails_front_end_login_logs_no_one_in():
    staff = factories.make_staff("director@netech.example", superuser=True)
    client = Client()

    response = client.post("/_util/login/", {"username": staff.email, "password": factories.PASSWORD})

    assert "_auth_user_id" not in client.session
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=%2F"
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize(
    ("asked", "sent_to"),
    [
        ("/members/briefing/", "/accounts/login/?next=%2Fmembers%2Fbriefing%2F"),
        ("https://elsewhere.example/", "/accounts/login/?next=%2F"),  # never onward to another site
    ],
)
def test_wagtails_front_end_login_hands_over_to_allauth_keeping_where_the_visitor_was_going(asked, sent_to):
    response = Client().get("/_util/login/", {"next": asked})

    assert (response.status_code, response["Location"]) == (302, sent_to)


def test_a_page_only_members_may_read_sends_a_visitor_to_allauths_login():
    home = Page.objects.get(depth=2)
    PageViewRestriction.objects.create(page=home, restriction_type=PageViewRestriction.LOGIN)
    client = Client()

    first = client.get("/")
    second = client.get(first["Location"])

    assert (first.status_code, first["Location"]) == (302, "/_util/login/?next=/")
    assert (second.status_code, second["Location"]) == (302, "/accounts/login/?next=%2F")


def test_someone_signed_in_but_outside_a_pages_groups_is_told_so_not_sent_round_again():
    """allauth sends a signed-in person straight back to where they were going: without this, a page open only to
    some groups would send them between it and the log-in for ever."""
    home = Page.objects.get(depth=2)
    restriction = PageViewRestriction.objects.create(page=home, restriction_type=PageViewRestriction.GROUPS)
    restriction.groups.add(Group.objects.create(name="Advisory board"))
    client = Client()
    client.force_login(factories.make_user("mia@tyne.example"))

    first = client.get("/")
    second = client.get(first["Location"])

    assert first.status_code == 302
    assert second.status_code == 403
    assert "open only to some groups, and your account is not in them" in second.content.decode()


@pytest.mark.parametrize("return_url", ["0", "home", " ", "/news/"])
def test_the_page_and_document_password_forms_send_a_return_address_that_is_no_address_home(return_url):
    """Wagtail's password forms redirect to their ``return_url``; a bare word passed its check and Django's
    ``redirect`` took it for a view's name: a server error once the password was right."""
    home = Page.objects.get(depth=2)
    page_lock = PageViewRestriction.objects.create(
        page=home, restriction_type=PageViewRestriction.PASSWORD, password="press-only"
    )
    documents_lock = CollectionViewRestriction.objects.create(
        collection=Collection.get_first_root_node(), restriction_type=CollectionViewRestriction.PASSWORD, password="x"
    )
    client = Client()

    page = client.post(
        f"/_util/authenticate_with_password/{page_lock.pk}/{home.pk}/",
        {"password": "press-only", "return_url": return_url},
    )
    documents = client.post(
        f"/documents/authenticate_with_password/{documents_lock.pk}/", {"password": "x", "return_url": return_url}
    )

    expected = return_url if return_url.startswith("/") else "/"
    assert (page.status_code, page["Location"]) == (302, expected)
    assert (documents.status_code, documents["Location"]) == (302, expected)
