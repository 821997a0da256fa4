# Gavel — two commands set a fresh machine up: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export DATABASE_URL_TEST ?= postgres://postgres@127.0.0.1:5432/gavel
export REDIS_URL_TEST ?= redis://127.0.0.1:6379/15

.PHONY: install demo test lint bench services clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

# The exchange on its embedded default: SQLite, Celery tasks in-process, dev settings.
demo: install
	DEBUG=1 $(BIN)/python manage.py migrate --noinput -v0
	DEBUG=1 $(BIN)/python manage.py load_market exchange/fixtures/demo_market.yaml > /dev/null
	DEBUG=1 $(BIN)/python manage.py demo_serve --port $${PORT:-8000}

# The whole suite on PostgreSQL and Redis (started here if they are down).
test: install services
	DATABASE_URL=$(DATABASE_URL_TEST) REDIS_URL=$(REDIS_URL_TEST) $(BIN)/python manage.py makemigrations --check --dry-run -v0 --settings=tests.settings
	DATABASE_URL=$(DATABASE_URL_TEST) REDIS_URL=$(REDIS_URL_TEST) $(BIN)/pytest -q $(PYTEST_ARGS)

services:
	@bash .ci/services

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy accounts exchange contracts leads billing reporting

bench: install services
	DATABASE_URL=$(DATABASE_URL_TEST) REDIS_URL=$(REDIS_URL_TEST) $(BIN)/python tests/bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 var
