from functools import reduce
from operator import or_

from allauth.account.models import EmailAddress
from django import forms
from django.db import models
from django.db.models import Q

from config.forms import ModelMultipleChoiceField
from membership.models import (
    DEFAULT_PUBLIC_FIELDS,
    PRICING_FIELDS,
    Organisation,
    OrganisationMember,
    PublicField,
    Specialism,
)


def https_urls(model_field, **kwargs):
    """Web addresses typed without a scheme are taken as https://."""
    if isinstance(model_field, models.URLField):
        kwargs["assume_scheme"] = "https"
    return model_field.formfield(**kwargs)


# Mail services anyone can sign up to: listing one would offer the organisation to every stranger with an address
# there, as colleagues who may ask to join.
PERSONAL_EMAIL_DOMAINS = frozenset([
    "aol.com", "btinternet.com", "gmail.com", "gmx.co.uk", "gmx.com", "googlemail.com", "hotmail.co.uk",
    "hotmail.com", "icloud.com", "live.co.uk", "live.com", "mac.com", "mail.com", "me.com", "msn.com", "outlook.com",
    "proton.me", "protonmail.com", "sky.com", "talktalk.net", "virginmedia.com", "yahoo.co.uk", "yahoo.com",
    "yandex.com", "zoho.com",
])  # fmt: skip


class OrganisationForm(forms.ModelForm):
    """An organisation's own profile, as its admins edit it in the member portal."""

    specialisms = ModelMultipleChoiceField(
        queryset=Specialism.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    public_fields = forms.MultipleChoiceField(
        label="Show on our directory card",
        choices=PublicField.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The organisation's name is always shown. Nothing else is public unless ticked here.",
    )

    class Meta:
        model = Organisation
        fields = [
            "name", "organisation_type", "size_band", "specialisms", "description", "logo", "website",
            "town", "postcode", "local_authority", "company_number", "linkedin_url", "x_url", "github_url",
            "email_domains", "directory_opt_in", "public_fields", "billing_email", "vat_number",
            "needs_purchase_order",
        ]  # fmt: skip
        widgets = {"description": forms.Textarea(attrs={"rows": 5})}
        formfield_callback = https_urls

    def __init__(self, *args, user=None, **kwargs):
        self.user = user  # the admin filling it in: a domain they add must be one of their own verified addresses
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            self.initial.setdefault("public_fields", list(DEFAULT_PUBLIC_FIELDS))
        for name in ("company_number", "postcode", "vat_number"):
            self.fields[name].widget.attrs["autocomplete"] = "off"
        if self.instance.pk and self.instance.has_live_subscription():
            # Type and size set the membership's price: once subscribed, only the membership team changes them.
            for name in PRICING_FIELDS:
                self.fields[name].disabled = True
                self.fields[name].help_text = "This sets your membership's price. To change it, please contact us."

    def clean_company_number(self) -> str:
        number = self.cleaned_data["company_number"].strip().upper()
        if number and not (len(number) == 8 and number.isalnum()):
            raise forms.ValidationError("A Companies House number has 8 letters and digits, e.g. 01234567.")
        clash = Organisation.objects.filter(company_number=number).exclude(pk=self.instance.pk)
        if number and clash.exists():
            raise forms.ValidationError("Another organisation is registered with this company number.")
        return number

    def clean_email_domains(self) -> str:
        domains = []
        for raw in self.cleaned_data["email_domains"].split(","):
            domain = raw.strip().lower().lstrip("@")
            if not domain:
                continue
            if "." not in domain or " " in domain or "/" in domain:
                raise forms.ValidationError(f"“{domain}” is not an e-mail domain, e.g. example.co.uk.")
            if domain in PERSONAL_EMAIL_DOMAINS:
                raise forms.ValidationError(
                    f"Anyone can have an address at {domain}: list only your organisation's own domain."
                )
            domains.append(domain)
        # A listed domain offers the organisation to everyone verified at it, who may then ask to join: so a domain
        # is added only by someone verified there, and only one organisation lists it.
        added = set(domains) - set(self.instance.domains if self.instance.pk else [])
        if added and self.user is not None:
            own = {
                email.rsplit("@", 1)[1].lower()
                for email in EmailAddress.objects.filter(user=self.user, verified=True).values_list("email", flat=True)
            }
            if missing := sorted(added - own):
                raise forms.ValidationError(
                    f"To list {missing[0]}, you need a verified address of your own there: add it under My account "
                    "and confirm it, or ask the membership team to list it."
                )
        if added:
            others = Organisation.objects.exclude(pk=self.instance.pk).filter(
                reduce(or_, [Q(email_domains__icontains=domain) for domain in added])
            )
            if taken := sorted({d for organisation in others for d in organisation.domains} & added):
                raise forms.ValidationError(
                    f"Another organisation already lists {taken[0]}. If it is yours, ask the membership team."
                )
        return ", ".join(dict.fromkeys(domains))

    def clean_postcode(self) -> str:
        return " ".join(self.cleaned_data["postcode"].upper().split())


class InviteForm(forms.Form):
    email = forms.EmailField(label="Colleague's work e-mail")
    role = forms.ChoiceField(choices=OrganisationMember.Role.choices, initial=OrganisationMember.Role.MEMBER)


class JoinRequestForm(forms.Form):
    organisation = forms.IntegerField(widget=forms.HiddenInput)
    message = forms.CharField(
        label="A note for the admins (optional)", max_length=500, required=False, widget=forms.Textarea({"rows": 2})
    )
