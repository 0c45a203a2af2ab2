"""Error reporting: Sentry is started only when SENTRY_DSN is set."""

import os

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration


def init_sentry(dsn: str) -> None:
    sentry_sdk.init(
        dsn=dsn,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        # Members' personal data (e-mail addresses, IPs, cookies) stays out of error reports.
        send_default_pii=False,
        release=os.environ.get("SENTRY_RELEASE") or os.environ.get("SOURCE_VERSION") or None,
        environment=os.environ.get("SENTRY_ENVIRONMENT", "production"),
        traces_sample_rate=float(os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "0")),
    )
