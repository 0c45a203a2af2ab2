from django.apps import AppConfig


class MembershipConfig(AppConfig):
    name = "membership"
    verbose_name = "Membership"

    def ready(self) -> None:
        from membership.personal_data import register_sections

        register_sections()
