"""Per-key rate limits (DESIGN.md §6.1, accounts/api/base.py ApiKeyRateThrottle): each API key is
held to its organization's ``rate_limit_per_second``, counted atomically with the request's cache
prefetch, exact under concurrency; over it a 429 ``rate_limited`` with ``Retry-After``."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import connection

from accounts.models import Organization
from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from tests.conftest import ACME_KEY, ACME_RO_KEY, CHARLIE_KEY, LEADGEN_KEY, api_client, market_copy

# Mid-second, so a test's requests all fall in one window however long they take (time stands still).
NOON = datetime(2026, 11, 22, 12, 0, 0, 500_000, tzinfo=UTC)


def _limit(slug: str, limit: int) -> None:
    Organization.objects.filter(slug=slug).update(rate_limit_per_second=limit)


def _concurrently(count: int, key: str, path: str) -> list[int]:
    """``count`` requests sent at once from as many threads (each its own database connection)."""
    start = threading.Barrier(count)

    def one(_: int) -> int:
        try:
            start.wait()
            return api_client(key).get(path).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("limit", [1, 10, 50])
def test_fifty_concurrent_requests_over_a_limit_admit_exactly_the_limit(market, limit):
    _limit("leadgen", limit)

    with time_machine.travel(NOON, tick=False):
        statuses = _concurrently(50, LEADGEN_KEY, "/api/v1/campaigns")

    assert statuses.count(200) == limit
    assert statuses.count(429) == 50 - limit


@pytest.mark.django_db
def test_over_the_limit_the_answer_is_a_429_rate_limited_with_retry_after_and_nothing_is_done(market):
    _limit("acme", 2)
    acme = api_client(ACME_KEY)
    with time_machine.travel(NOON, tick=False):
        assert [acme.get("/api/v1/contracts").status_code for _ in range(2)] == [200, 200]
        refused = acme.patch("/api/v1/contracts/ctr_acme_west", {"status": "paused"}, format="json")

    assert refused.status_code == 429
    assert refused["Retry-After"] == "1"  # half a second left in the window, in whole seconds
    assert refused.json() == {
        "error": {
            "code": "rate_limited",
            "message": "Too many requests: this API key may make 2 a second. Retry after the Retry-After header's "
            "seconds. Expected available in 1 second.",
        }
    }
    with market_scope():
        assert BuyerContract.objects.get(public_id="ctr_acme_west").status == "active"  # nothing changed


@pytest.mark.django_db
def test_the_next_second_is_a_new_window(market):
    _limit("leadgen", 1)
    leadgen = api_client(LEADGEN_KEY)
    with time_machine.travel(NOON, tick=False) as clock:
        assert [leadgen.get("/api/v1/campaigns").status_code for _ in range(3)] == [200, 429, 429]
        clock.shift(timedelta(seconds=0.5))  # the next second starts

        assert [leadgen.get("/api/v1/campaigns").status_code for _ in range(2)] == [200, 429]


@pytest.mark.django_db
def test_each_key_has_its_own_budget(market):
    _limit("acme", 1)
    with time_machine.travel(NOON, tick=False):
        assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 200
        assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 429

        # The same organization's other key, and another organization's key, are counted apart.
        assert api_client(ACME_RO_KEY).get("/api/v1/reports?from=2026-11-01&to=2026-11-21").status_code == 200
        assert api_client(CHARLIE_KEY).get("/api/v1/contracts").status_code == 200
        assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 429


@pytest.mark.django_db
def test_a_changed_limit_applies_at_once(market):
    from accounts.services import organization_upsert

    _limit("leadgen", 1)
    leadgen = api_client(LEADGEN_KEY)
    with time_machine.travel(NOON, tick=False):
        assert [leadgen.get("/api/v1/campaigns").status_code for _ in range(2)] == [200, 429]  # the key is cached

        organization_upsert(slug="leadgen", name="LeadGen Co", roles=["seller"], rate_limit_per_second=3)

        assert [leadgen.get("/api/v1/campaigns").status_code for _ in range(2)] == [200, 429]  # counts 3 and 4


@pytest.mark.django_db
def test_without_redis_each_process_counts_its_own_requests(market, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    _limit("leadgen", 2)
    leadgen = api_client(LEADGEN_KEY)
    with time_machine.travel(NOON, tick=False):
        assert [leadgen.get("/api/v1/campaigns").status_code for _ in range(4)] == [200, 200, 429, 429]


@pytest.mark.skipif(not settings.REDIS_URL, reason="the shared counter is Redis's")
@pytest.mark.django_db
def test_the_count_is_one_redis_key_per_api_key_and_second_that_expires(market):
    from django.core.cache import cache

    leadgen = api_client(LEADGEN_KEY)
    with time_machine.travel(NOON, tick=False):
        leadgen.get("/api/v1/campaigns")
        leadgen.get("/api/v1/campaigns")
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    (counter,) = [k for k in client.keys("*gavel:rate:*")]
    assert counter.decode().endswith(f":{int(NOON.timestamp())}")
    assert int(client.get(counter)) == 2
    assert 0 < client.ttl(counter) <= 10


def test_the_market_file_sets_the_limit_and_refuses_a_bad_one(db):
    from exchange.market import MarketError, market_load

    market = market_copy()
    market["organizations"][2]["rate_limit_per_second"] = 7
    market_load(market)
    assert Organization.objects.get(slug="leadgen").rate_limit_per_second == 7
    assert Organization.objects.get(slug="acme").rate_limit_per_second == 50  # the default

    for bad in (0, -1, "10", 1.5, True, 100_001):
        market = market_copy()
        market["organizations"][2]["rate_limit_per_second"] = bad
        with pytest.raises(MarketError) as refused:
            market_load(market)
        assert "organizations[2].rate_limit_per_second" in str(refused.value), bad
    assert Organization.objects.get(slug="leadgen").rate_limit_per_second == 7  # unchanged


@pytest.mark.django_db
def test_the_operator_sets_the_limit_in_the_admin(market, operator_client):
    acme = Organization.objects.get(slug="acme")
    page = operator_client.get(f"/admin/accounts/organization/{acme.pk}/change/")
    assert page.status_code == 200
    assert b'name="rate_limit_per_second"' in page.content and b'value="50"' in page.content


@pytest.mark.django_db
def test_a_ping_over_the_limit_is_refused_before_any_auction():
    from exchange.models import Ping
    from tests.exchange.builder import buyer, client, load, ping_body

    load(buyer("a", "10.00"))
    _limit("seller", 1)
    with time_machine.travel(NOON, tick=False):
        first = client().post("/api/v1/ping", ping_body(1), format="json")
        second = client().post("/api/v1/ping", ping_body(2), format="json")

    assert first.status_code == 200 and first.json()["status"] == "accepted"
    assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limited"
    with market_scope():
        assert Ping.objects.count() == 1
