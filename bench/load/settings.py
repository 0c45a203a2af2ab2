"""The benchmark settings, with rate limits the load test's crowd can pass.

Every simulated person arrives from the same loopback address, so per-address limits that protect a real site
(allauth's default of 30 log-ins a minute per address) would refuse most of the fifty log-ins the run starts
with. Per-account and per-user limits are kept as they are: each simulated person has their own account.
Any other per-address limit added to the platform needs its generous value here too.
"""

from bench.settings import *  # noqa: F403
from bench.settings import ACCOUNT_RATE_LIMITS

ACCOUNT_RATE_LIMITS = {
    **ACCOUNT_RATE_LIMITS,
    "login": "100000/m/ip",
    "login_failed": "100000/m/ip,5/5m/key",
}
