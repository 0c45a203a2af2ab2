"""The README's configuration table stays true: it names every environment variable the platform reads, and
nothing it does not read."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READS = [
    re.compile(r"\benv(?:bool|int|list)?\(\s*\"([A-Z][A-Z0-9_]*)\""),  # config/settings.py's helpers
    re.compile(r"os\.environ(?:\.get\(|\[)\s*\"([A-Z][A-Z0-9_]*)\""),
]


def _read_by_config() -> set[str]:
    names = set()
    for module in sorted((ROOT / "config").glob("*.py")):
        source = module.read_text()
        for pattern in READS:
            names.update(pattern.findall(source))
        if "dj_database_url.config(" in source:
            names.add("DATABASE_URL")  # dj-database-url reads it itself
    return names


def _read_by_procfile() -> set[str]:
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "Procfile").read_text()))


def _documented() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}


def test_it_finds_what_the_settings_read():
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "SENTRY_DSN", "SENTRY_RELEASE"} <= _read_by_config()
    assert {"PORT", "WEB_CONCURRENCY", "CELERY_CONCURRENCY"} <= _read_by_procfile()


def test_every_environment_variable_the_platform_reads_is_in_the_readme_table():
    assert (_read_by_config() | _read_by_procfile()) - _documented() == set()


def test_the_readme_table_names_no_variable_the_platform_does_not_read():
    assert _documented() - (_read_by_config() | _read_by_procfile()) == set()
