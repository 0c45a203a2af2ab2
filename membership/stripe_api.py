"""The one place a Stripe client is made: from settings, with short timeouts and pooled connections.

Callers pass an idempotency key built from our own ids on every call that creates or changes something, so a
retried request (ours or the library's) never makes a second customer, checkout or payment.
"""

import functools
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

import stripe
import urllib3
from django.conf import settings

# Stripe calls happen inside our transactions, with rows locked: a hung connection must not hold them for the
# library's default 80 seconds.
TIMEOUT_SECONDS = 15


def client() -> stripe.StripeClient:
    """A Stripe client for the configured account; ``STRIPE_API_BASE`` points it elsewhere (the tests' fake)."""
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)


@functools.lru_cache(maxsize=4)
def _client(secret_key: str, base: str | None) -> stripe.StripeClient:
    # One client per process and configuration: its connection pool keeps connections to Stripe open, so a
    # webhook's re-reads do not each pay for a new TLS handshake.
    return stripe.StripeClient(
        secret_key,
        base_addresses={"api": base} if base else None,
        # The local fake answers at once or not at all; against Stripe, the library's retries reuse our keys.
        max_network_retries=0 if base else 2,
        http_client=PooledHTTPClient(base or stripe.DEFAULT_API_BASE, timeout=TIMEOUT_SECONDS),
    )


def retrieve(path: str, *, expand: list[str] | None = None) -> dict:
    """GET one object (``/v1/invoices/in_...``) as plain dicts and lists, as Stripe's JSON has it.

    The webhook re-reads an object on every delivery and only reads it: this skips turning the answer into the
    library's objects and back into dicts, which costs more than the rest of the call. Errors are the library's
    own (``stripe.InvalidRequestError`` for an unknown id, ``stripe.APIConnectionError`` when unreachable).
    """
    response = client().raw_request("get", path, **({"expand": expand} if expand else {}))
    return response.data


def options(idempotency_key: str) -> dict:
    """Request options carrying ``idempotency_key``; keys are built from our ids, never random."""
    return {"idempotency_key": idempotency_key}


class PooledHTTPClient(stripe.HTTPClient):
    """The library's HTTP transport on one thread-safe urllib3 pool per process.

    The library's default (``requests``) re-reads the proxy settings from the environment on every call; here
    they are read once, for the address Stripe is reached at, when the client is made. Certificates are checked
    against the library's own bundle, as its default does. Failures to connect or to hear back in time are
    retried by the library (``max_network_retries``), with the same idempotency key.
    """

    name = "urllib3"

    def __init__(self, base: str, *, timeout: float):
        super().__init__()
        pool_options = {
            "timeout": urllib3.Timeout(connect=timeout, read=timeout),
            "retries": False,  # the library decides what to retry, and keeps the idempotency key
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": stripe.ca_bundle_path,
            "maxsize": 4,
        }
        proxy = _proxy_for(base)
        self._pool = urllib3.ProxyManager(proxy, **pool_options) if proxy else urllib3.PoolManager(**pool_options)

    def request(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data=None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        try:
            response = self._pool.request(method.upper(), url, headers=dict(headers or {}), body=post_data)
        except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.NewConnectionError) as error:
            raise stripe.APIConnectionError(f"Could not connect to Stripe ({error})", should_retry=True) from error
        except urllib3.exceptions.SSLError as error:
            raise stripe.APIConnectionError(f"Stripe's certificate was not trusted ({error})") from error
        except urllib3.exceptions.HTTPError as error:  # timed out reading, connection reset, protocol errors
            raise stripe.APIConnectionError(f"Stripe did not answer ({error})", should_retry=True) from error
        return response.data, response.status, response.headers

    def request_stream(self, method: str, url: str, headers: Mapping[str, str] | None, post_data=None):
        raise NotImplementedError("Streaming responses are not used")

    def close(self) -> None:
        self._pool.clear()


def _proxy_for(url: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``NO_PROXY``) names for ``url``, if any."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.hostname or ""):
        return None
    return urllib.request.getproxies_environment().get(parts.scheme)
