"""The public member directory: only organisations that opted in, only the details each chose to publish."""

import pytest

from cms.models import SuccessStoryPage
from membership.models import OrganisationType, PublicField, SizeBand, Specialism
from tests.cms.conftest import paragraph, publish
from tests.factories import make_organisation

EVERYTHING = [field.value for field in PublicField]


def _listed(name: str, public_fields: list[str] | None = None, specialisms=(), **fields):
    organisation = make_organisation(
        name, directory_opt_in=True, public_fields=EVERYTHING if public_fields is None else public_fields, **fields
    )
    organisation.specialisms.set(specialisms)
    return organisation


def _cards(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def ai(db):
    return Specialism.objects.get(slug="ai-and-data")


def test_it_lists_only_organisations_that_opted_in(client, directory):
    _listed("Tyne Analytics")
    make_organisation("Quiet Ltd", directory_opt_in=False, public_fields=EVERYTHING)
    html = _cards(client, directory.url)
    assert "<h3>Tyne Analytics</h3>" in html
    assert "Quiet Ltd" not in html
    assert "1 organisation." in html


def test_a_card_shows_only_what_the_organisation_chose_to_publish(client, directory, ai):
    _listed(
        "Tyne Analytics",
        [PublicField.WEBSITE],
        [ai],
        town="Gateshead",
        description="AI for manufacturers",
        website="https://tyne-analytics.example",
        organisation_type=OrganisationType.STARTUP,
    )
    html = _cards(client, directory.url)
    assert 'href="https://tyne-analytics.example"' in html
    for hidden in ("Gateshead", "AI for manufacturers", "Start-up", "AI and data"):
        assert hidden not in html.split('<ul class="cards directory">')[1]


def test_filters_and_search_only_match_details_an_organisation_publishes(client, directory, ai):
    _listed("Open Robotics", town="Sunderland", description="Inspection robots", specialisms=[ai])
    _listed("Shy Robotics", [PublicField.WEBSITE], town="Sunderland", description="Inspection robots", specialisms=[ai])
    for query in (
        "town=Sunderland",
        "q=inspection",
        "specialism=ai-and-data",
        "organisation_type=sme",
        "size_band=10-49",
    ):
        html = _cards(client, f"{directory.url}?{query}")
        assert "<h3>Open Robotics</h3>" in html, query
        assert "Shy Robotics" not in html, query
    # Both are found by name, which is always public.
    html = _cards(client, f"{directory.url}?q=robotics")
    assert "<h3>Open Robotics</h3>" in html and "<h3>Shy Robotics</h3>" in html
    # The town list offers only towns organisations publish.
    _listed("Hidden Town Ltd", [], town="Alnwick")
    assert "Alnwick" not in _cards(client, directory.url)


def test_filters_combine_and_keep_what_the_visitor_chose(client, directory):
    _listed("Tyne Start", town="Gateshead", organisation_type=OrganisationType.STARTUP, size_band=SizeBand.MICRO)
    _listed("Tyne Corp", town="Gateshead", organisation_type=OrganisationType.CORPORATE, size_band=SizeBand.LARGE)
    html = _cards(client, f"{directory.url}?town=Gateshead&organisation_type=startup")
    assert "<h3>Tyne Start</h3>" in html and "Tyne Corp" not in html
    assert '<option value="startup" selected>' in html
    assert '<option value="Gateshead" selected>' in html
    assert "1 organisation matches." in html


def test_an_unknown_filter_value_is_explained_and_changes_nothing(client, directory):
    _listed("Tyne Analytics")
    html = _cards(client, f"{directory.url}?organisation_type=spaceship")
    assert "Select a valid choice" in html
    assert 'aria-invalid="true"' in html
    assert "<h3>Tyne Analytics</h3>" in html


def test_a_card_links_to_the_organisations_published_success_stories(client, directory, stories_index):
    organisation = _listed("Wearside Robotics")
    story = publish(
        stories_index, SuccessStoryPage(title="First export order", organisation=organisation, body=paragraph("x"))
    )
    draft = publish(
        stories_index, SuccessStoryPage(title="Unpublished story", organisation=organisation, body=paragraph("x"))
    )
    draft.unpublish()
    html = _cards(client, directory.url)
    assert f'Success story: <a href="{story.url}">First export order</a>' in html
    assert "Unpublished story" not in html


def test_the_directory_runs_the_same_queries_for_ten_times_the_organisations(
    client, directory, stories_index, ai, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add(start: int, count: int) -> int:
        for number in range(start, start + count):
            organisation = _listed(f"Organisation {number:03}", specialisms=[ai], town=f"Town {number % 5}")
            publish(
                stories_index, SuccessStoryPage(title=f"Story {number}", organisation=organisation, body=paragraph("x"))
            )
        client.get(directory.url)
        with CaptureQueriesContext(connection) as queries:
            client.get(directory.url)
        return len(queries)

    assert add(0, 3) == add(3, 27)


def test_a_card_lists_the_published_type_size_and_town_without_stray_separators(client, directory):
    _listed("Town Only", [PublicField.TOWN], town="Hexham")
    _listed("All Three", [PublicField.TYPE, PublicField.SIZE, PublicField.TOWN], town="Blyth")
    html = _cards(client, directory.url)
    assert '<p class="muted directory-card__meta"><span>Hexham</span></p>' in html
    assert "<span>SME</span><span>10-49 staff</span><span>Blyth</span>" in html
