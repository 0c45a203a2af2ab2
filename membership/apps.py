from django.apps import AppConfig


class MembershipConfig(AppConfig):
    name = "membership"
    verbose_name = "Membership"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from membership.activity import on_user_logged_in
        from membership.personal_data import register_sections

        register_sections()
        user_logged_in.connect(on_user_logged_in, dispatch_uid="membership.activity.login")
