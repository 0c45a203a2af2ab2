"""Form fields the platform's forms share."""

from django import forms
from django.core.exceptions import ValidationError


class ModelChoiceField(forms.ModelChoiceField):
    """Django's, with a choice too large for the database's integers refused as any unknown choice is. SQLite
    raises ``OverflowError`` for such a number, which Django's field does not expect (a 500)."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except OverflowError:
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice") from None


class ModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """Django's, with the same care as ``ModelChoiceField`` for a number too large for the database."""

    def _check_values(self, value):
        try:
            return super()._check_values(value)
        except OverflowError:
            raise ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice", params={"value": "?"}
            ) from None
