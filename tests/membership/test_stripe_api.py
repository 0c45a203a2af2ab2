"""The Stripe client's transport: pooled connections, the library's errors, proxies read once from the environment."""

import socket
import threading

import pytest
import stripe
import urllib3

from membership import stripe_api


def test_it_reads_an_object_as_plain_dicts_and_reuses_its_connection(fake_stripe):
    fake_stripe.objects["in_plain"] = {"id": "in_plain", "object": "invoice", "metadata": {"org": "7"}}

    first = stripe_api.retrieve("/v1/invoices/in_plain")
    second = stripe_api.retrieve("/v1/invoices/in_plain", expand=["customer"])

    assert first == {"id": "in_plain", "object": "invoice", "metadata": {"org": "7"}}
    assert not isinstance(first, stripe.StripeObject) and not isinstance(first["metadata"], stripe.StripeObject)
    assert second == first
    calls = fake_stripe.calls("GET", "/v1/invoices/in_plain")
    assert [call.params for call in calls] == [{}, {"expand": ["customer"]}]
    pool = stripe_api.client()._requestor._get_http_client()._pool
    assert sum(p.num_connections for p in pool.pools._container.values()) == 1  # kept open, used twice


def test_an_unknown_object_raises_the_librarys_own_error(fake_stripe):
    with pytest.raises(stripe.InvalidRequestError):
        stripe_api.retrieve("/v1/invoices/in_nobody")


def test_stripe_unreachable_raises_a_connection_error(settings, db):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.STRIPE_API_BASE, settings.STRIPE_SECRET_KEY = f"http://127.0.0.1:{port}", "sk_test_nowhere"

    with pytest.raises(stripe.APIConnectionError) as raised:
        stripe_api.retrieve("/v1/customers/cus_any")
    assert raised.value.should_retry  # the library retries it (against Stripe itself), with the same key


def test_stripe_that_does_not_answer_in_time_raises_a_connection_error(settings, db, monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    monkeypatch.setattr(stripe_api, "TIMEOUT_SECONDS", 0.3)
    stripe_api._client.cache_clear()
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings.STRIPE_SECRET_KEY = "sk_test_silent"
    try:
        with pytest.raises(stripe.APIConnectionError, match="did not answer"):
            stripe_api.retrieve("/v1/customers/cus_any")
    finally:
        stripe_api._client.cache_clear()
        listener.close()


def test_the_proxy_comes_from_the_environment_once_and_no_proxy_is_honoured(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")

    assert stripe_api._proxy_for("https://api.stripe.com") == "http://proxy.internal:3128"
    assert stripe_api._proxy_for("http://127.0.0.1:8111") is None
    client = stripe_api.PooledHTTPClient("https://api.stripe.com", timeout=5)
    assert client._pool.proxy.host == "proxy.internal"

    monkeypatch.delenv("HTTPS_PROXY")
    assert stripe_api._proxy_for("https://api.stripe.com") is None
    assert not isinstance(stripe_api.PooledHTTPClient("https://api.stripe.com", timeout=5)._pool, urllib3.ProxyManager)
