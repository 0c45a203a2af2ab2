import html

from django import forms
from django.utils.html import escape, linebreaks, strip_tags
from wagtail.admin.forms import WagtailAdminModelForm

from benefits.models import Category, Perk, Provider


class CatalogueFilterForm(forms.Form):
    """The catalogue's search and filters; every field is optional and a bad value is simply ignored."""

    q = forms.CharField(label="Search", required=False, max_length=100)
    category = forms.ChoiceField(label="Category", required=False, choices=[("", "All categories"), *Category.choices])
    provider = forms.ChoiceField(label="Provider", required=False)
    new = forms.BooleanField(label="New this month", required=False)
    featured = forms.BooleanField(label="Featured", required=False)

    def __init__(self, *args, providers: list[Provider], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = [("", "All providers"), *((p.slug, p.name) for p in providers)]


class RedeemForm(forms.Form):
    organisation = forms.ChoiceField(label="Redeem for", required=False)
    message = forms.CharField(
        label="Your message to the provider",
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="What you would like; the provider replies to your e-mail address.",
    )


class OfferForm(forms.ModelForm):
    """An offer a member organisation makes to the others; the membership team approves it first.

    The description is plain text here (it is stored as escaped paragraphs), so nothing a member types is
    ever rendered as markup.
    """

    description = forms.CharField(
        label="Description", required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 6})
    )
    method = forms.ChoiceField(
        label="How members redeem it",
        choices=[(m.value, m.label) for m in Perk.Method if m != Perk.Method.UNIQUE_CODE],
        widget=forms.RadioSelect,
    )

    class Meta:
        model = Perk
        fields = [
            "title", "category", "summary", "value_line", "description", "terms", "method", "shared_code",
            "redemption_url", "starts_on", "ends_on", "cap_per_organisation",
        ]  # fmt: skip
        widgets = {
            "starts_on": forms.DateInput(attrs={"type": "date"}),
            "ends_on": forms.DateInput(attrs={"type": "date"}),
            "terms": forms.Textarea(attrs={"rows": 4}),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.description:
            self.initial["description"] = _plain(self.instance.description)

    def clean_description(self) -> str:
        text = self.cleaned_data["description"].strip()
        return linebreaks(escape(text)) if text else ""


def _plain(stored: str) -> str:
    """The text behind stored paragraphs, for editing again."""
    return html.unescape(strip_tags(stored.replace("</p>", "\n\n").replace("<br>", "\n"))).strip()


class PerkAdminForm(WagtailAdminModelForm):
    """The back office's perk form. A member's offer is decided on its Review page alone, which needs the approval
    permission, records the decision and tells the organisation: this form does not put a perk up for approval,
    decide one waiting for it, or publish one that was rejected."""

    def clean_status(self) -> str:
        status = self.cleaned_data["status"]
        stored = self.instance.status if self.instance.pk else None
        if status == stored:
            return status
        if stored == Perk.Status.PENDING:
            raise forms.ValidationError(
                "This offer is waiting for approval: approve or reject it from its Review page, which tells its "
                "organisation."
            )
        if status in (Perk.Status.PENDING, Perk.Status.REJECTED):
            raise forms.ValidationError(
                "Only a member organisation's offer waits for approval, and it is rejected from its Review page."
            )
        if stored == Perk.Status.REJECTED and status == Perk.Status.PUBLISHED:
            raise forms.ValidationError(
                "This offer was rejected: its organisation changes it and offers it again for approval."
            )
        return status
