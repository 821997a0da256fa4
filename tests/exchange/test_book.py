"""One market in every process: a change reaches every web worker's contract book within a
second, with Redis (the version in the shared cache) or without (the version in the database)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import override_settings

from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from exchange.auction import book
from exchange.auction.book import VERSION_KEY, book_current, book_invalidate
from exchange.market import market_load
from exchange.models import MarketVersion, Ping
from tests.exchange.builder import BUYER_KEY_PREFIX, SELLER_KEY, buyer, load, market, ping_body
from tests.exchange.served import Gunicorn

LOCAL_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="the shared cache needs REDIS_URL")


def contract_active(public_id: str) -> bool:
    current = book_current()
    return next(c for o in current.offers.values() for c in o.contracts if c.public_id == public_id).active


def database_version() -> int | None:
    return MarketVersion.objects.filter(pk=MarketVersion.ROW_ID).values_list("version", flat=True).first()


@pytest.mark.django_db
@override_settings(CACHES=LOCAL_CACHE)
def test_without_a_shared_cache_another_process_change_reaches_the_book_through_the_database(
    monkeypatch, django_assert_num_queries
):
    load(buyer("acme", "30.00"))
    before = book_current()
    assert contract_active("ctr_acme")
    # What another process leaves when its buyer pauses: the row and the database's version
    # changed, and nothing in this process's own (local-memory) cache.
    cached = cache.get(VERSION_KEY)
    with market_scope():
        BuyerContract.objects.filter(public_id="ctr_acme").update(status=BuyerContract.Status.PAUSED)
    MarketVersion.objects.update_or_create(pk=MarketVersion.ROW_ID, defaults={"version": 7})

    # Read again at most every DATABASE_VERSION_TTL_S: until then the book stands, and a ping
    # pays no read for it.
    monkeypatch.setattr(book, "DATABASE_VERSION_TTL_S", 3600.0)
    with django_assert_num_queries(0):
        assert book_current() is before
    monkeypatch.setattr(book, "DATABASE_VERSION_TTL_S", 0.0)
    assert book_current() is not before
    assert not contract_active("ctr_acme")
    assert cache.get(VERSION_KEY) == cached
    assert book_current().version == (cached, 7)


@pytest.mark.django_db
@override_settings(CACHES=LOCAL_CACHE)
def test_without_a_shared_cache_a_change_bumps_the_database_version_once_committed(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        book_invalidate()
    assert database_version() is None  # nothing another process could read before the commit
    for callback in callbacks:
        callback()
    assert database_version() == 1
    with django_capture_on_commit_callbacks(execute=True):
        book_invalidate()
    assert database_version() == 2


@pytest.mark.django_db
@needs_redis
def test_with_a_shared_cache_the_book_neither_reads_nor_writes_a_database_version(
    django_capture_on_commit_callbacks, django_assert_num_queries
):
    load(buyer("acme", "30.00"))
    book_current()
    with django_assert_num_queries(0):
        book_current()
        with django_capture_on_commit_callbacks(execute=True):
            book_invalidate()
    assert database_version() is None
    assert book_current().version[1] == 0


@pytest.mark.django_db
def test_a_market_file_that_changes_only_an_offer_reaches_the_book():
    load(buyer("acme", "30.00"))
    assert book_current().offers[next(iter(book_current().offers))].ping_timeout_ms == 500
    market_load({"offers": market(ping_timeout_ms=700)["offers"]})
    assert [o.ping_timeout_ms for o in book_current().offers.values()] == [700]


# --- several gunicorn workers --------------------------------------------------------------------

WORKERS = 4
ACME_KEY = f"{BUYER_KEY_PREFIX}acme_000000"


def pings_on_every_worker(server: Gunicorn, first: int) -> list[dict[str, Any]]:
    """Pings (consumers ``first``, ``first`` + 1, …) sent eight at a time until every worker
    answered at least one; their answers."""
    offset = server.access_log_size()
    answers: list[dict[str, Any]] = []
    with ThreadPoolExecutor(8) as pool:
        for batch in range(40):
            numbers = range(first + 8 * batch, first + 8 * batch + 8)
            for status, answer in pool.map(
                lambda n: server.call("POST", "/api/v1/ping", SELLER_KEY, ping_body(n)), numbers
            ):
                assert status == 200, answer
                answers.append(answer)
            if len(set(server.pids_since(offset, "/api/v1/ping"))) == WORKERS:
                return answers
    raise AssertionError(f"the pings did not reach all {WORKERS} workers: {server.pids_since(offset, '/api/v1/ping')}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="gunicorn needs a database it can reach")
@pytest.mark.parametrize(
    "redis",
    [pytest.param(False, id="default-local-cache"), pytest.param(True, id="redis", marks=needs_redis)],
)
def test_a_contract_its_buyer_paused_bids_in_no_worker_a_second_later(tmp_path, redis):
    load(buyer("acme", "30.00"), buyer("fixed", "10.00"))
    server = Gunicorn(tmp_path, workers=WORKERS, threads=2, redis=redis)
    try:
        server.wait_listening()
        # Every worker prices with Acme's contract: it wins at 30.00, the seller's payout 24.00.
        assert {a["payout"] for a in pings_on_every_worker(server, first=0)} == {"24.00"}

        status, contract = server.call("PATCH", "/api/v1/contracts/ctr_acme", ACME_KEY, {"status": "paused"})
        assert (status, contract["status"]) == (200, "paused")
        time.sleep(1.0)  # the promise under test: one second after the pause, not a guess at a delay

        answers = pings_on_every_worker(server, first=1000)
    finally:
        server.stop()
    assert {a["payout"] for a in answers} == {"8.00"}  # the fixed 10.00 contract won every one
    with market_scope():
        pings = Ping.objects.filter(public_id__in=[a["ping_id"] for a in answers])
        reasons = {step["reason"] for p in pings for step in p.waterfall if step["contract"] == "ctr_acme"}
    assert (len(pings), reasons) == (len(answers), {"paused"})
