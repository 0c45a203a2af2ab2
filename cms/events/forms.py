from django import forms

from cms.events.services import Offer

INDIVIDUAL = "individual"


def _choice(offer: Offer) -> tuple[str, str]:
    if offer.organisation is None:
        return INDIVIDUAL, f"Myself, as an individual: {offer.price}"
    if not offer.price_pence and offer.pricing != "included":
        return str(offer.organisation.pk), f"{offer.organisation}: {offer.price}"
    return str(offer.organisation.pk), f"{offer.organisation}: {offer.price} ({offer.reason})"


class RegistrationForm(forms.Form):
    """Register for an event under one of the user's organisations, or as an individual; each choice shows its
    price and why (a lapsed organisation is told it pays the non-member price)."""

    register_as = forms.ChoiceField(label="Register", widget=forms.RadioSelect)
    name = forms.CharField(label="Name on your badge", max_length=150)

    def __init__(self, *args, offers: list[Offer], **kwargs):
        super().__init__(*args, **kwargs)
        self.offers = {_choice(offer)[0]: offer for offer in offers}
        self.fields["register_as"].choices = [_choice(offer) for offer in offers]
        if not self.is_bound and offers:
            self.initial.setdefault("register_as", _choice(offers[0])[0])

    @property
    def offer(self) -> Offer:
        return self.offers[self.cleaned_data["register_as"]]
