"""Production settings refuse to start without real secrets; the defaults run the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.conf import settings as django_settings
from django.test import Client, override_settings

from accounts.services import user_upsert
from tests.exchange.builder import buyer, load
from tests.sessions import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "x" * 50
FERNET = "k6fR6b0bW0o2o0Y2wB9m7kqgk8zQb3vJ6Q3nq3Yx8bE="


# Every variable the settings read that these tests set; any other is left as the run has it.
SETTINGS_VARIABLES = {
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "GAVEL_PII_KEYS",
    "DATABASE_URL",
    "REDIS_URL",
    "SECURE_PROXY_SSL_HEADER",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
}


def _environment(env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    base.update({"DJANGO_SETTINGS_MODULE": "exchange.settings", **env})
    return base


def settings_run(env: dict[str, str], code: str = "print(settings.DATABASES['default']['ENGINE'])"):
    program = f"import django; from django.conf import settings; django.setup(); {code}"
    return subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=_environment(env), capture_output=True, text=True, timeout=60
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
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER, settings.CELERY_BROKER_URL)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "False",
        f"sqla+sqlite:///{ROOT / 'var' / 'tasks-gavel.sqlite3'}",
    ]


def test_the_default_is_sqlite_with_the_task_broker_beside_it():
    result = settings_run(
        {"DEBUG": "1"},
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER, "
        "settings.CELERY_BROKER_URL, settings.CELERY_BEAT_SCHEDULE_FILENAME, settings.CACHES['default']['BACKEND'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "False",
        f"sqla+sqlite:///{ROOT / 'db.sqlite3-tasks'}",
        str(ROOT / "db.sqlite3-tasks-beat"),
        "django.core.cache.backends.locmem.LocMemCache",
    ]


def test_redis_url_switches_cache_and_celery_to_redis():
    result = settings_run(
        {"DEBUG": "1", "REDIS_URL": "redis://127.0.0.1:6379/3"},
        "print(settings.CELERY_BROKER_URL, settings.CELERY_TASK_ALWAYS_EAGER, settings.CACHES['default']['BACKEND'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["redis://127.0.0.1:6379/3", "False", "core.cache.RedisCache"]


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


# --- behind a TLS-terminating proxy (issue 12, item 7) -------------------------------------------

PUBLIC = "https://gavel.example"
PRODUCTION = {
    "SECRET_KEY": "q3Jr8vWm2ZtLx9Kp4Nc7Hs1Bd6Fg0Yu5Ea8Ri2Ow7Tz3Lk9VjM4nB6xC1pQ8",
    "ALLOWED_HOSTS": "gavel.example,web.internal",
    "GAVEL_PII_KEYS": FERNET,
}
BEHIND_PROXY = {
    **PRODUCTION,
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
    "CSRF_TRUSTED_ORIGINS": PUBLIC,
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
}
SECURITY_SETTINGS = (
    "SECURE_PROXY_SSL_HEADER",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_SSL_REDIRECT",
    "SECURE_REDIRECT_EXEMPT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "DEBUG",
    "ALLOWED_HOSTS",
)


def security_settings(env: dict[str, str]) -> dict[str, Any]:
    """The security settings the environment ``env`` gives, as the web process would have them."""
    result = settings_run(
        env, f"import json; print(json.dumps({{k: getattr(settings, k) for k in {SECURITY_SETTINGS}}}))"
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    if values["SECURE_PROXY_SSL_HEADER"] is not None:
        values["SECURE_PROXY_SSL_HEADER"] = tuple(values["SECURE_PROXY_SSL_HEADER"])
    return values


def deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_environment({"DEBUG": "0", **env}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_proxy_tls_and_hsts_settings_come_from_the_environment():
    assert security_settings(BEHIND_PROXY) == {
        "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
        "CSRF_TRUSTED_ORIGINS": [PUBLIC],
        "SECURE_SSL_REDIRECT": True,
        "SECURE_REDIRECT_EXEMPT": ["^healthz$", "^readyz$"],
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "DEBUG": False,
        "ALLOWED_HOSTS": ["gavel.example", "web.internal"],
    }


def test_the_demo_trusts_no_proxy_and_redirects_nothing():
    values = security_settings({"DEBUG": "1"})
    assert {k: values[k] for k in ("SECURE_PROXY_SSL_HEADER", "CSRF_TRUSTED_ORIGINS", "SECURE_SSL_REDIRECT")} == {
        "SECURE_PROXY_SSL_HEADER": None,
        "CSRF_TRUSTED_ORIGINS": [],
        "SECURE_SSL_REDIRECT": False,
    }
    assert values["SECURE_HSTS_SECONDS"] == 0


def test_the_deployment_check_is_clean_behind_a_proxy_with_hsts():
    result = deploy_check(BEHIND_PROXY)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("unset", "warning"),
    [
        ("SECURE_HSTS_SECONDS", "security.W004"),
        ("SECURE_HSTS_INCLUDE_SUBDOMAINS", "security.W005"),
        ("SECURE_HSTS_PRELOAD", "security.W021"),
    ],
)
def test_the_deployment_check_fails_without_each_hsts_variable(unset, warning):
    result = deploy_check({k: v for k, v in BEHIND_PROXY.items() if k != unset})
    assert result.returncode != 0
    assert warning in result.stderr


def test_the_deployment_check_fails_when_the_ssl_redirect_is_turned_off():
    result = deploy_check({**BEHIND_PROXY, "SECURE_SSL_REDIRECT": "0"})
    assert result.returncode != 0
    assert "security.W008" in result.stderr


@pytest.fixture
def portal_user(db: None) -> str:
    user_upsert(email="owner@proxy.test", password=PASSWORD)
    return "owner@proxy.test"


def proxied_login(host: str, origin: str, *, forwarded_proto: str | None = "https") -> tuple[Client, int]:
    """A browser's login through the proxy: the login page, then its form posted back with the
    CSRF token, from ``origin``; Django sees ``host`` and the proxy's forwarded scheme."""
    client = Client(enforce_csrf_checks=True)
    headers = {"Host": host, **({"X-Forwarded-Proto": forwarded_proto} if forwarded_proto else {})}
    page = client.get("/login/", headers=headers)
    assert page.status_code == 200, page.status_code
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post(
        "/login/",
        {"username": "owner@proxy.test", "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={**headers, "Origin": origin, "Referer": f"{origin}/login/"},
    )
    return client, response.status_code


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_behind_the_proxy_a_portal_login_succeeds(portal_user):
    with override_settings(**security_settings(BEHIND_PROXY)):
        client, status = proxied_login("gavel.example", PUBLIC)
    assert status == 302
    assert logged_in(client)


def test_a_proxy_that_passes_its_own_host_needs_the_trusted_origin(portal_user):
    with override_settings(**security_settings(BEHIND_PROXY)):
        client, status = proxied_login("web.internal", PUBLIC)
        assert (status, logged_in(client)) == (302, True)
        client, status = proxied_login("web.internal", "https://elsewhere.example")
        assert (status, logged_in(client)) == (403, False)
    with override_settings(**security_settings({k: v for k, v in BEHIND_PROXY.items() if k != "CSRF_TRUSTED_ORIGINS"})):
        client, status = proxied_login("web.internal", PUBLIC)
    assert (status, logged_in(client)) == (403, False)


def test_without_the_proxy_settings_every_portal_post_fails_the_origin_check(portal_user):
    """The report of issue 12: Django takes the proxied request for plain HTTP, and its https Origin
    for another site's (no redirect here, so that the POST reaches the check)."""
    with override_settings(**{**security_settings(PRODUCTION), "SECURE_SSL_REDIRECT": False}):
        client, status = proxied_login("gavel.example", PUBLIC)
    assert (status, logged_in(client)) == (403, False)


def test_behind_the_proxy_plain_http_is_redirected_and_https_carries_hsts(portal_user):
    with override_settings(**security_settings(BEHIND_PROXY)):
        plain = Client().get("/login/", headers={"Host": "gavel.example"})
        secure = Client().get("/login/", headers={"Host": "gavel.example", "X-Forwarded-Proto": "https"})
    assert (plain.status_code, plain["Location"]) == (301, "https://gavel.example/login/")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
