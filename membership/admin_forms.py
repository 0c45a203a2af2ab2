"""Forms of the staff CRM in the Wagtail admin (the member portal's forms live in forms.py)."""

from django import forms
from django.core.validators import validate_email
from django.utils import timezone
from django.utils.text import slugify
from wagtail.admin.forms import WagtailAdminModelForm

from accounts.models import User
from config import uploads
from membership.engagement import SETTINGS_FIELDS
from membership.models import ActivityKind, EngagementSettings, FollowUp, Note, PublicField

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


# Engagement ------------------------------------------------------------------------------------------------


class EngagementSettingsForm(forms.ModelForm):
    """The scoring settings, with one field of points for each kind of activity."""

    class Meta:
        model = EngagementSettings
        # The weights are edited through the fields of points above.
        fields = [name for name in SETTINGS_FIELDS if name != "weights"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight_fields = []
        for kind in ActivityKind:
            name = f"weight_{kind.value}"
            self.fields[name] = forms.IntegerField(
                label=f"Points: {kind.label.lower()}",
                min_value=0,
                max_value=1000,
                initial=int(self.instance.weight(kind.value)),
            )
            self.weight_fields.append(name)

    def weight_bound_fields(self) -> list:
        return [self[name] for name in self.weight_fields]

    def clean_digest_recipients(self) -> str:
        addresses = [
            address.strip() for address in self.cleaned_data["digest_recipients"].split(",") if address.strip()
        ]
        for address in addresses:
            try:
                validate_email(address)
            except forms.ValidationError:
                raise forms.ValidationError(f"“{address}” is not an e-mail address.") from None
        return ", ".join(addresses)

    def clean(self) -> dict:
        cleaned = super().clean()
        self.instance.weights = {
            name.removeprefix("weight_"): cleaned[name] for name in self.weight_fields if cleaned.get(name) is not None
        }
        return cleaned


class MemberImportForm(forms.Form):
    MAX_BYTES = 50 * 1024 * 1024

    file = forms.FileField(
        label="Spreadsheet (CSV or Excel .xlsx)",
        help_text="One row per contact, with a header row naming the columns listed below. At most 50 MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx"}),
    )

    def clean_file(self):
        """A CSV that is text, or an .xlsx that is an Excel workbook: a file named one but holding anything else
        (a web page, another kind of document) is refused here, before anything is stored."""
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith((".csv", ".xlsx")):
            raise forms.ValidationError("Choose a .csv or .xlsx file.")
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError("The file is larger than 50 MB: split it into smaller files.")
        uploads.check_spreadsheet(upload, max_bytes=self.MAX_BYTES)
        return upload
