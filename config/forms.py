"""Form fields the platform's forms share."""

from django import forms
from django.core.exceptions import ValidationError


class ModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """Django's, with a choice too large for the database's integers refused as any unknown choice is. On SQLite
    the lookup of several ids raises ``OverflowError`` for such a number, which Django's field does not expect (a
    500); its single-choice field already refuses one."""

    def _check_values(self, value):
        try:
            return super()._check_values(value)
        except OverflowError:
            raise ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice", params={"value": "?"}
            ) from None
