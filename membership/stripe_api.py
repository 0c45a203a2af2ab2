"""The one place a Stripe client is made: from settings, with short timeouts.

Callers pass an idempotency key built from our own ids on every call that creates or changes something, so a
retried request (ours or the library's) never makes a second customer, checkout or payment.
"""

import functools

import stripe
from django.conf import settings

# Stripe calls happen inside our transactions, with rows locked: a hung connection must not hold them for the
# library's default 80 seconds.
TIMEOUT_SECONDS = 15


def client() -> stripe.StripeClient:
    """A Stripe client for the configured account; ``STRIPE_API_BASE`` points it elsewhere (the tests' fake)."""
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)


@functools.lru_cache(maxsize=4)
def _client(secret_key: str, base: str | None) -> stripe.StripeClient:
    # One client per process and configuration: its HTTP sessions (one per thread) keep their connections to
    # Stripe open, so a webhook's re-reads do not each pay for a new TLS handshake.
    return stripe.StripeClient(
        secret_key,
        base_addresses={"api": base} if base else None,
        # The local fake answers at once or not at all; against Stripe, the library's retries reuse our keys.
        max_network_retries=0 if base else 2,
        http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
    )


def options(idempotency_key: str) -> dict:
    """Request options carrying ``idempotency_key``; keys are built from our ids, never random."""
    return {"idempotency_key": idempotency_key}
