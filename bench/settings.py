"""The platform's settings, plus the benchmarks' trivial back-office page (bench/urls.py)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
