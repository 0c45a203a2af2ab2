from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """What the platform's running needs beyond any one app: the background jobs' outbox."""

    name = "config"
    verbose_name = "Platform"
