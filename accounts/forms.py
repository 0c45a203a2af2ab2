from django import forms

from accounts.models import ConsentRecord, User


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["first_name", "last_name"]


class ConsentForm(forms.Form):
    """One tick box per marketing channel; unticked means no."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for channel, label in ConsentRecord.Channel.choices:
            self.fields[channel] = forms.BooleanField(label=label, required=False)


class DeleteAccountForm(forms.Form):
    password = forms.CharField(
        label="Your password, to confirm", widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    def __init__(self, user: User, *args, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password.")
        return password
