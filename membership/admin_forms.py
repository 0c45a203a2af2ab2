"""Forms of the staff CRM in the Wagtail admin (the member portal's forms live in forms.py)."""

from django import forms
from django.utils import timezone
from django.utils.text import slugify
from wagtail.admin.forms import WagtailAdminModelForm

from accounts.models import User
from membership.models import FollowUp, Note, PublicField

DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def _unused_slug(model, name: str, current_pk=None) -> str:
    base = slugify(name)[:70] or model._meta.model_name
    slug, number = base, 2
    while model.objects.filter(slug=slug).exclude(pk=current_pk).exists():
        slug, number = f"{base}-{number}", number + 1
    return slug


class SlugFromNameForm(WagtailAdminModelForm):
    """A form whose ``slug`` may be left empty: it is then made from the name, unique among its kind."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["slug"].required = False
        self.fields["slug"].help_text = "Leave empty to make one from the name."

    def clean(self) -> dict:
        cleaned = super().clean()
        if not cleaned.get("slug") and cleaned.get("name"):
            cleaned["slug"] = _unused_slug(self._meta.model, cleaned["name"], self.instance.pk)
        return cleaned


class OrganisationAdminForm(SlugFromNameForm):
    public_fields = forms.MultipleChoiceField(
        label="Shown on the directory card",
        choices=PublicField.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The name is always shown.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "billing_contact" in self.fields:
            # Only someone in the organisation can be its billing contact; a new one has nobody yet.
            self.fields["billing_contact"].queryset = User.objects.filter(
                memberships__organisation_id=self.instance.pk, memberships__left_at__isnull=True
            ).order_by("first_name", "last_name", "email")


class NoteForm(forms.ModelForm):
    class Meta:
        model = Note
        fields = ["kind", "date", "body"]
        widgets = {"date": DATE_INPUT, "body": forms.Textarea(attrs={"rows": 4})}


class FollowUpForm(forms.ModelForm):
    class Meta:
        model = FollowUp
        fields = ["title", "due_date", "assignee"]
        widgets = {"due_date": DATE_INPUT}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = User.objects.filter(is_staff=True, is_active=True).order_by(
            "first_name", "last_name", "email"
        )
        self.fields["due_date"].initial = timezone.localdate
