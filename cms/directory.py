"""The public member directory: which organisations it lists, and how visitors narrow it down.

An organisation is listed once it opts in, and a card shows only the details it chose to publish
(``Organisation.public_fields``). Filters and search follow the same rule: a filter on town, type, size or
specialism, or a search of descriptions, only matches organisations that publish that detail, so the directory
never reveals an unpublished detail by whom a filter finds.
"""

from django import forms
from django.db.models import Prefetch, Q, QuerySet

from membership.models import Organisation, OrganisationType, PublicField, SizeBand, Specialism


def publishes(field: str) -> Q:
    """Organisations whose card shows ``field`` (``public_fields`` is a JSON list of names, matched whole)."""
    return Q(public_fields__icontains=f'"{field}"')


class DirectoryFilterForm(forms.Form):
    q = forms.CharField(label="Name or description", required=False, max_length=100)
    specialism = forms.ChoiceField(label="Specialism", required=False)
    organisation_type = forms.ChoiceField(
        label="Type", required=False, choices=[("", "Any type"), *OrganisationType.choices]
    )
    size_band = forms.ChoiceField(label="Size", required=False, choices=[("", "Any size"), *SizeBand.choices])
    town = forms.ChoiceField(label="Town", required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        specialisms = Specialism.objects.filter(organisations__in=_listed_publishing(PublicField.SPECIALISMS))
        self.fields["specialism"].choices = [
            ("", "Any specialism"),
            *specialisms.distinct().order_by("name").values_list("slug", "name"),
        ]
        towns = _listed_publishing(PublicField.TOWN).exclude(town="").order_by("town").values_list("town", flat=True)
        self.fields["town"].choices = [("", "Any town"), *((town, town) for town in towns.distinct())]

    def filters(self) -> dict:
        """The valid, non-empty choices; a field with an error is left out (and shows its error)."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value}


def _listed_publishing(field: str) -> QuerySet[Organisation]:
    return Organisation.objects.in_directory().filter(publishes(field))


def directory_cards(filters: dict) -> QuerySet[Organisation]:
    """The listed organisations matching ``filters``, by name, with what their cards show fetched alongside."""
    from cms.models import SuccessStoryPage

    organisations = Organisation.objects.in_directory()
    if query := filters.get("q"):
        organisations = organisations.filter(
            Q(name__icontains=query) | (Q(description__icontains=query) & publishes(PublicField.DESCRIPTION))
        )
    if specialism := filters.get("specialism"):
        organisations = organisations.filter(publishes(PublicField.SPECIALISMS), specialisms__slug=specialism)
    if organisation_type := filters.get("organisation_type"):
        organisations = organisations.filter(publishes(PublicField.TYPE), organisation_type=organisation_type)
    if size_band := filters.get("size_band"):
        organisations = organisations.filter(publishes(PublicField.SIZE), size_band=size_band)
    if town := filters.get("town"):
        organisations = organisations.filter(publishes(PublicField.TOWN), town=town)
    stories = SuccessStoryPage.objects.live().public().order_by("-date", "-pk")
    return organisations.order_by("name", "pk").prefetch_related(
        "specialisms", Prefetch("success_stories", queryset=stories, to_attr="published_stories")
    )
