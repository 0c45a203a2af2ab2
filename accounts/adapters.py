from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest

from accounts.middleware import is_back_office_user


class AccountAdapter(DefaultAccountAdapter):
    """Staff land in the back office after logging in; members where they were heading, or home."""

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        if is_back_office_user(request.user):
            return "/admin/"
        return super().get_login_redirect_url(request)
