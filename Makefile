# The project's commands. `make run` starts the platform with demo data; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run install install-dev browser test test-fast lint format check migrations-check deploy-check load audit ci lock clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

install: $(BIN)/uv  ## the application's packages, exactly as locked
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.txt

install-dev: $(BIN)/uv  ## the application's packages and the test tools
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements-dev.txt

browser:  ## Debian's chromium for the browser tests, installed when missing
	@bash scripts/install-chromium

run: install  ## migrate, load demo data and serve on http://127.0.0.1:8000
	$(MANAGE) migrate --noinput
	$(MANAGE) seed_demo
	$(MANAGE) runserver $(HOST):$(PORT)

test: install-dev browser  ## the whole suite (set DATABASE_URL and REDIS_URL to run it on PostgreSQL and Redis)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install-dev  ## the suite without the browser journeys and the load test
	$(BIN)/pytest -m "not e2e and not load" $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check: install-dev
	$(MANAGE) check --fail-level WARNING

migrations-check: install-dev
	$(MANAGE) makemigrations --check --dry-run

deploy-check: install-dev  ## `check --deploy` with production-like settings must report nothing
	bash scripts/deploy-check

load: install-dev  ## the load test: 50 people at once against gunicorn, Celery, PostgreSQL and Redis (bench/load/)
	$(BIN)/python -m bench.load $(LOAD_ARGS)

audit: install-dev  ## known vulnerabilities in the locked requirements.txt (pip-audit), or a notice if it cannot check
	$(BIN)/python scripts/audit_dependencies.py requirements.txt

ci:  ## what CI runs, on PostgreSQL and Redis
	bash .ci/run

lock: $(BIN)/uv  ## re-resolve the pinned dependencies from pyproject.toml
	$(BIN)/uv pip compile --quiet --no-header --python-version 3.11 pyproject.toml -o requirements.txt
	$(BIN)/uv pip compile --quiet --no-header --python-version 3.11 --extra dev pyproject.toml -o requirements-dev.txt

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
