# Gavel — two commands set a fresh machine up: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export DATABASE_URL_TEST ?= postgres://postgres@127.0.0.1:5432/gavel
export REDIS_URL_TEST ?= redis://127.0.0.1:6379/15
# pytest-xdist workers, each with its own PostgreSQL test database and Redis database (tests/settings.py).
TEST_WORKERS ?= 2

.PHONY: install demo test lint audit bench bench-reports bench-bigbook profile services clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

# The exchange on its embedded default: SQLite, Celery's worker and beat on a SQLite broker beside
# the database (started by demo_serve, logs in var/log), simulated buyers and sellers, dev settings.
demo: install
	DEBUG=1 $(BIN)/python manage.py migrate --noinput -v0
	DEBUG=1 $(BIN)/python manage.py load_market exchange/fixtures/demo_market.yaml > /dev/null
	DEBUG=1 $(BIN)/python manage.py demo_serve --port $${PORT:-8000}

# What `manage.py check --deploy` needs of a production environment (docs/deployment.md): throwaway
# secrets made here, a proxy that sets X-Forwarded-Proto, HSTS. Any warning fails the build.
DEPLOY_ENV = env -u DATABASE_URL -u REDIS_URL DEBUG=0 \
	SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))') \
	GAVEL_PII_KEYS=$$($(BIN)/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
	ALLOWED_HOSTS=gavel.example CSRF_TRUSTED_ORIGINS=https://gavel.example SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto \
	SECURE_HSTS_SECONDS=31536000 SECURE_HSTS_INCLUDE_SUBDOMAINS=1 SECURE_HSTS_PRELOAD=1

# The whole suite on PostgreSQL and Redis (started here if they are down), after Django's
# deployment checks under production settings.
test: install services
	$(BIN)/lint-imports
	$(DEPLOY_ENV) $(BIN)/python manage.py check --deploy --fail-level WARNING
	DATABASE_URL=$(DATABASE_URL_TEST) REDIS_URL=$(REDIS_URL_TEST) $(BIN)/python manage.py makemigrations --check --dry-run -v0 --settings=tests.settings
	DATABASE_URL=$(DATABASE_URL_TEST) REDIS_URL=$(REDIS_URL_TEST) $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile \
	  --ignore=tests/test_schemathesis.py $(PYTEST_ARGS)
	@# Schemathesis names its cases (one per API operation) with one test id, which xdist would run once.
	DATABASE_URL=$(DATABASE_URL_TEST) REDIS_URL=$(REDIS_URL_TEST) $(BIN)/pytest -q -p no:xdist tests/test_schemathesis.py

services:
	@bash .ci/services

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core accounts exchange contracts leads billing reporting demo
	$(BIN)/lint-imports
	@# bandit warns "nosec encountered ... but no failed test" for each node inside a marked line: noise.
	set -o pipefail; $(BIN)/bandit -c pyproject.toml -q -r core accounts leads contracts billing exchange reporting demo 2>&1 \
	  | { grep -v 'nosec encountered' || true; }
	@$(MAKE) --no-print-directory audit

# Known vulnerabilities in the installed packages (the pinned dependencies and dev tools), from PyPI's
# advisory data. Fails on a finding, and also when a package could not be looked up (--strict):
# without the advisory service nothing is audited, which must not pass as "no vulnerabilities"
# (docs/decisions.md 63). AUDIT=skip lints without it and says so.
audit:
ifeq ($(AUDIT),skip)
	@echo "pip-audit SKIPPED (AUDIT=skip): dependencies NOT checked for known vulnerabilities."
else
	@$(BIN)/pip-audit --strict --skip-editable --progress-spinner off || { \
	  echo "pip-audit FAILED: a known vulnerability is listed above, or PyPI's advisory data could not be"; \
	  echo "read for some package (\"not found on PyPI\": a mirror without the JSON API, or no network)."; \
	  echo "Fix the first; for the second run it where PyPI is reachable, or AUDIT=skip make lint."; exit 1; }
endif

bench: install services
	DATABASE_URL=$(DATABASE_URL_TEST) REDIS_URL=$(REDIS_URL_TEST) $(BIN)/python tests/bench/run.py $(BENCH_ARGS)

# Reports at scale (issue 15): a 30-day report over a million pings' rollups, and the fold's rate.
bench-reports: install services
	DATABASE_URL=$(DATABASE_URL_TEST) REDIS_URL=$(REDIS_URL_TEST) $(BIN)/python tests/bench/reports.py $(BENCH_ARGS)

# A big book (issue 18): CPU per ping at 30 to 30 000 contracts on an offer, and the book's rebuild.
bench-bigbook: install services
	DATABASE_URL=$(DATABASE_URL_TEST) REDIS_URL=$(REDIS_URL_TEST) $(BIN)/python tests/bench/bigbook.py $(BENCH_ARGS)

# Where a ping's and a post's CPU goes (decision 70): CPU per request in one process, and cProfile's top functions.
profile: install services
	DATABASE_URL=$(DATABASE_URL_TEST) REDIS_URL=$(REDIS_URL_TEST) $(BIN)/python tests/bench/cpu_profile.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3* var
