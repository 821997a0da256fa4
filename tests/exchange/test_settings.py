"""Production settings refuse to start without real secrets; the defaults run the demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tests.exchange.builder import buyer, load

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "x" * 50
FERNET = "k6fR6b0bW0o2o0Y2wB9m7kqgk8zQb3vJ6Q3nq3Yx8bE="


def settings_run(env: dict[str, str], code: str = "print(settings.DATABASES['default']['ENGINE'])"):
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "GAVEL_PII_KEYS", "DATABASE_URL", "REDIS_URL"}
    }
    base.update({"DJANGO_SETTINGS_MODULE": "exchange.settings", **env})
    program = f"import django; from django.conf import settings; django.setup(); {code}"
    return subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "Set SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "Set SECRET_KEY"),
        ({"SECRET_KEY": GOOD_KEY}, "Set ALLOWED_HOSTS"),
        ({"SECRET_KEY": GOOD_KEY, "ALLOWED_HOSTS": "gavel.example"}, "Set GAVEL_PII_KEYS"),
    ],
)
def test_production_refuses_to_start_without_real_settings(env, message):
    result = settings_run(env)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_starts_with_real_settings():
    result = settings_run(
        {
            "SECRET_KEY": GOOD_KEY,
            "ALLOWED_HOSTS": "gavel.example",
            "GAVEL_PII_KEYS": FERNET,
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/gavel",
        },
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "True"]


def test_the_default_is_sqlite_with_tasks_in_process():
    result = settings_run(
        {"DEBUG": "1"},
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER, "
        "settings.CACHES['default']['BACKEND'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "True",
        "django.core.cache.backends.locmem.LocMemCache",
    ]


def test_redis_url_switches_cache_and_celery_to_redis():
    result = settings_run(
        {"DEBUG": "1", "REDIS_URL": "redis://127.0.0.1:6379/3"},
        "print(settings.CELERY_BROKER_URL, settings.CELERY_TASK_ALWAYS_EAGER, settings.CACHES['default']['BACKEND'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["redis://127.0.0.1:6379/3", "False", "exchange.cache.RedisCache"]


def test_the_openapi_schema_generates_without_warnings(tmp_path):
    result = settings_run(
        {"DEBUG": "1"},
        "from django.core.management import call_command; "
        f"call_command('spectacular', '--fail-on-warn', '--file', '{tmp_path / 'schema.yaml'}')",
    )
    assert result.returncode == 0, result.stderr
    schema = (tmp_path / "schema.yaml").read_text()
    for path in ("/api/v1/ping:", "/api/v1/post:", "/api/v1/leads:", "/api/v1/leads/{lead_id}:"):
        assert path in schema
    assert "bearerFormat" in schema


def test_the_web_process_freezes_what_it_loaded_out_of_the_cycle_collector():
    result = settings_run(
        {"DEBUG": "1"},
        "import gc, sys; before = gc.get_freeze_count(); import exchange.wsgi; "
        "print(before, gc.get_freeze_count() > 10_000, gc.get_threshold()[0], 'exchange.api.views' in sys.modules)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "True", "20000", "True"]


@pytest.mark.parametrize(("value", "expected"), [(None, "5"), ("", "None"), ("12", "12")])
def test_prepared_statements_on_postgresql_can_be_tuned_or_turned_off(value, expected):
    env = {"DEBUG": "1", "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/gavel"}
    if value is not None:
        env["DB_PREPARE_THRESHOLD"] = value
    result = settings_run(env, "print(settings.DATABASES['default']['OPTIONS']['prepare_threshold'])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [expected]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not django_settings.REDIS_URL, reason="the web process and the test share the book version in Redis"
)
def test_the_web_process_builds_the_contract_book_before_its_first_request():
    load(buyer("acme", "20.00"))
    db = django_settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    result = settings_run(
        {"DEBUG": "1", "DATABASE_URL": url, "REDIS_URL": django_settings.REDIS_URL},
        "import exchange.wsgi; from exchange.auction import book; "
        "print(sorted(c.public_id for o in book._book.offers.values() for c in o.contracts))",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['ctr_acme']"]


def test_a_web_process_that_cannot_build_the_book_still_starts():
    result = settings_run(
        {"DEBUG": "1", "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere"},
        "import exchange.wsgi; from exchange.auction import book; print(book._book)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None"]
    assert "the contract book could not be built at start" in result.stderr
