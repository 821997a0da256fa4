"""Shared fixtures: a small market loaded through the real loader, and API clients."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Organization
from accounts.tenancy import market_scope
from exchange.market import market_load
from tests.exchange.builder import FIELDS
from tests.sessions import PASSWORD

ACME_KEY = "gvl_test_acme_000000000000000"
ACME_RO_KEY = "gvl_test_acme_reports_00000000"
CHARLIE_KEY = "gvl_test_charlie_0000000000000"
LEADGEN_KEY = "gvl_test_leadgen_000000000000"
SELLCO_KEY = "gvl_test_sellco_0000000000000"

OFFER: dict[str, Any] = {
    "slug": "auto-insurance",
    "name": "Auto insurance (US)",
    "distribution": "exclusive",
    "margin_percent": "20",
    "floor": "1.00",
    "fields": FIELDS,
}

MARKET: dict[str, Any] = {
    "offers": [OFFER],
    "organizations": [
        {
            "slug": "acme",
            "name": "Acme Insurance",
            "roles": ["buyer"],
            "timezone": "America/New_York",
            "balance": "1000.00",
            "users": [{"email": "owner@acme.test", "password": PASSWORD, "role": "owner"}],
            "api_keys": [
                {"name": "ops", "scopes": ["contracts", "purchases", "reports"], "key": ACME_KEY},
                {"name": "reports-only", "scopes": ["reports"], "key": ACME_RO_KEY},
            ],
            "contracts": [
                {
                    "slug": "acme-west",
                    "id": "ctr_acme_west",
                    "offer": "auto-insurance",
                    "price": "30.00",
                    "max_price": "60.00",
                    "filters": {"field": "state", "op": "in", "value": ["CA", "OR", "WA"]},
                    "caps": {"day": 100},
                }
            ],
        },
        {
            "slug": "charlie",
            "name": "Charlie Leads",
            "roles": ["buyer", "seller"],
            "users": [{"email": "charlie@charlie.test", "password": PASSWORD, "role": "owner"}],
            "api_keys": [{"name": "all", "scopes": ["leads", "contracts", "purchases", "reports"], "key": CHARLIE_KEY}],
            "contracts": [
                {"slug": "charlie-any", "id": "ctr_charlie_any", "offer": "auto-insurance", "price": "10.00"}
            ],
            "campaigns": [{"slug": "charlie-auto", "id": "cmp_charlie_auto", "offer": "auto-insurance"}],
        },
        {
            "slug": "leadgen",
            "name": "LeadGen Co",
            "roles": ["seller"],
            "users": [{"email": "owner@leadgen.test", "password": PASSWORD, "role": "owner"}],
            "api_keys": [{"name": "prod", "scopes": ["leads"], "key": LEADGEN_KEY}],
            "campaigns": [
                {"slug": "leadgen-auto", "id": "cmp_leadgen_auto", "offer": "auto-insurance", "floor": "5.00"}
            ],
        },
    ],
}


def market_copy() -> dict[str, Any]:
    return copy.deepcopy(MARKET)


@pytest.fixture
def market(db: None) -> dict[str, Any]:
    return market_load(market_copy())


@pytest.fixture
def orgs(market: dict[str, Any]) -> dict[str, Organization]:
    return {o.slug: o for o in Organization.objects.all()}


def api_client(key: str | None = None) -> APIClient:
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def in_market():
    with market_scope():
        yield


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The cache outlives each test's database: clear it (and the process's contract book)."""
    from django.core.cache import cache

    from exchange.auction import book

    cache.clear()
    book._book = None
    book._database_seen = None
    yield


@pytest.fixture(scope="session", autouse=True)
def _warm_process():
    """What a web process loads before it serves (exchange.startup): the quality score's offline
    data takes about a second, which the first ping of a cold test process would spend out of its
    buyers' time (an RTB buyer would time out), whichever test happens to come first."""
    from leads.scoring import scoring_warm

    scoring_warm()


@pytest.fixture(scope="session", autouse=True)
def _no_stray_sessions(django_db_setup, django_db_blocker):
    """Live servers, worker processes and test threads may leave a PostgreSQL session open at the
    very end; end them so the test database can be dropped."""
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture
def operator_client(db: None) -> Client:
    """A browser session of an operator (staff): the admin and the operator's pages."""
    from accounts.services import user_upsert

    user_upsert(email="op@gavel.test", password=PASSWORD, operator=True)
    client = Client()
    assert client.login(username="op@gavel.test", password=PASSWORD)
    return client
