"""A ping's round trips: one cache read before it runs, its cache writes after its answer has
gone out, and a ping write that does not wait for the disk (core/cache.py,
exchange/deferred.py, exchange/services/pings.py; decision 28)."""

from __future__ import annotations

import json
import logging

import pytest
from django.conf import settings
from django.core.cache import cache, caches
from django.core.signals import request_finished, request_started
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tenancy import market_scope
from contracts.models import BuyerContract, Campaign
from core.cache import cache_get, cache_prefetch
from exchange.api.views import PingView
from exchange.auction.book import book_invalidate
from exchange.deferred import after_response
from exchange.models import Ping
from exchange.services import pings
from tests.exchange.builder import buyer, client, load, ping, ping_body

PG_ONLY = pytest.mark.skipif(connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's")


def test_prefetched_keys_are_answered_once_from_what_was_read():
    cache.set("gavel:test:a", 1, 30)
    cache.delete_many(["gavel:test:b", "gavel:test:c"])

    with cache_prefetch(["gavel:test:a", "gavel:test:b"]):
        cache.set_many({"gavel:test:a": 2, "gavel:test:b": 5, "gavel:test:c": 7}, 30)
        # a and b as they were when prefetched (b was absent); c was not prefetched: read now.
        found = [cache_get("gavel:test:a"), cache_get("gavel:test:b"), cache_get("gavel:test:c")]
        assert found == [1, None, 7]
        # A second read of a prefetched key goes to the cache.
        assert (cache_get("gavel:test:a"), cache_get("gavel:test:b")) == (2, 5)

    with cache_prefetch(["gavel:test:a"]):
        pass
    assert cache_get("gavel:test:a") == 2  # nothing of the block outlives it


def test_deferred_work_runs_once_the_response_is_closed_and_its_error_is_only_logged(db, caplog):
    # db: the request signals close the thread's database connection when it is stale, and a
    # process that has one opened for an earlier test may not touch it outside a database test.
    ran: list[int] = []
    request_started.send(sender=None, environ={})
    after_response(lambda: ran.append(1))
    after_response(lambda: 1 / 0)
    after_response(lambda: ran.append(2))
    assert ran == []

    with caplog.at_level(logging.ERROR, logger="exchange.deferred"):
        request_finished.send(sender=None)

    assert ran == [1, 2]
    assert "deferred work failed after the response" in caplog.text
    after_response(lambda: ran.append(3))  # outside a request: at once
    assert ran == [1, 2, 3]


def _spy_reads(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The keys of every cache read from now on (a read that also counts the API key's rate-limit
    window, in the same round trip, adds the counter's key last); a single-key read fails the test."""
    backend = type(caches["default"])
    reads: list[list[str]] = []
    get_many = backend.get_many
    get_many_and_count = backend.get_many_and_count

    def get_many_spy(self: object, keys: list[str], *args: object, **kwargs: object) -> object:
        reads.append(list(keys))
        return get_many(self, keys, *args, **kwargs)

    def get_many_and_count_spy(self: object, keys: list[str], counter: str, timeout: int) -> object:
        reads.append([*keys, counter])
        return get_many_and_count(self, keys, counter, timeout)

    monkeypatch.setattr(backend, "get_many", get_many_spy)
    monkeypatch.setattr(backend, "get_many_and_count", get_many_and_count_spy)
    monkeypatch.setattr(backend, "get", lambda *a, **k: pytest.fail("one read: it should have been prefetched"))
    return reads


@pytest.mark.skipif(not settings.REDIS_URL, reason="counts the Redis cache's reads")
@pytest.mark.django_db
def test_a_ping_reads_the_cache_once_and_writes_nothing_to_it(monkeypatch):
    # Through Django's cache API. The quality score's velocity (exchange/velocity.py) is one more
    # pipelined round trip on its own sorted sets, outside that API (docs/decisions.md 50).
    load(buyer("a", "10.00"))
    ping(1)  # the contract book built and the key's record cached, as on a warm server
    reads = _spy_reads(monkeypatch)
    backend = type(caches["default"])
    for write in ("set", "set_many", "add", "incr", "delete", "delete_many"):
        monkeypatch.setattr(backend, write, lambda *a, **k: pytest.fail("a ping writes nothing to the cache"))

    answer = client().post("/api/v1/ping", ping_body(2), format="json").json()

    assert answer["status"] == "accepted"
    assert len(reads) == 1  # the key's record, the book's version, and the key's rate-limit count
    assert reads[0][0].startswith("gavel:api-key:")
    assert reads[0][1] == "gavel:book-version"
    assert reads[0][2].startswith("gavel:rate:") and len(reads[0]) == 3


@pytest.mark.skipif(not settings.REDIS_URL, reason="counts the Redis cache's reads")
@pytest.mark.django_db
def test_the_breakers_resets_are_written_after_the_view_returned(buyers, monkeypatch):
    from demo.buyers import Behaviour
    from exchange.auction import breaker

    buyers.behaviours["rtb"] = Behaviour(bid="20.00")
    load(buyer("rtb", None, rtb_url=buyers.url("rtb")))
    ping(1)
    with market_scope():
        failures = breaker._key(BuyerContract.objects.get(slug="rtb-c").pk)
    breaker._count_failure(failures)  # a failure counted elsewhere: the next answer resets it
    returned: list[bool] = []
    resets: list[tuple[bool, list[str]]] = []
    post, reset = PingView.post, breaker._counts_reset

    def post_spy(self: PingView, request: object) -> object:
        response = post(self, request)
        returned.append(True)
        return response

    def reset_spy(keys: list[str]) -> None:
        resets.append((bool(returned), list(keys)))
        reset(keys)

    monkeypatch.setattr(PingView, "post", post_spy)
    monkeypatch.setattr(breaker, "_counts_reset", reset_spy)

    ping(3)

    assert resets == [(True, [failures])]  # once, after the view had answered
    assert cache.get(failures) is None


@pytest.mark.django_db
def test_only_a_byte_identical_ping_from_the_same_key_is_a_repeat_and_no_buyer_hears_it_twice(buyers):
    from demo.buyers import Behaviour

    buyers.behaviours["rtb"] = Behaviour(bid="20.00")
    load(buyer("rtb", None, rtb_url=buyers.url("rtb")), buyer("a", "10.00"))
    body = ping_body(3)
    first = client().post("/api/v1/ping", json.dumps(body), content_type="application/json").json()
    again = client().post("/api/v1/ping", json.dumps(body), content_type="application/json").json()
    spaced = client().post("/api/v1/ping", json.dumps(body, indent=1), content_type="application/json").json()

    assert first["status"] == "accepted" and again == first
    assert spaced["ping_id"] != first["ping_id"]
    assert len(buyers.requests("rtb")) == 2  # the first ping and the spaced one
    with market_scope():
        assert Ping.objects.count() == 2


@pytest.mark.django_db
def test_once_its_bids_expired_an_identical_ping_is_auctioned_again():
    load(buyer("a", "10.00"))
    first = ping(4)
    with market_scope():
        Ping.objects.filter(public_id=first["ping_id"]).update(expires_at=timezone.now())

    again = ping(4)

    assert again["ping_id"] != first["ping_id"] and again["status"] == "accepted"


@pytest.mark.django_db
def test_a_repeated_rejection_that_ran_no_auction_gets_its_first_answer():
    load(buyer("a", "10.00"))
    with market_scope():
        Campaign.objects.update(status="paused")
    book_invalidate()
    first = ping(5)

    again = ping(5)

    assert (first["status"], first["reason"]) == ("rejected", "campaign_paused")
    assert again == first
    with market_scope():
        assert Ping.objects.count() == 1


def _commits_wait_for_disk() -> None:
    """This session as in production (the suite's sessions commit without waiting: tests/settings.py)."""
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = on")


@PG_ONLY
@pytest.mark.django_db(transaction=True)
def test_a_ping_on_its_own_commits_without_waiting_for_the_disk_and_the_session_keeps_its_setting():
    load(buyer("a", "10.00"))
    _commits_wait_for_disk()
    with CaptureQueriesContext(connection) as queries:
        answer = ping(4)
    inserts = [q["sql"] for q in queries.captured_queries if "INSERT INTO" in q["sql"]]
    assert len(inserts) == 1 and "set_config('synchronous_commit', 'off', true)" in inserts[0]
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)
    with market_scope():
        assert Ping.objects.filter(public_id=answer["ping_id"], status="accepted").count() == 1


@PG_ONLY
@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_a_ping_waits_for_the_disk_with_it():
    load(buyer("a", "10.00"))
    _commits_wait_for_disk()
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        ping(5)
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone() == ("on",)
    inserts = [q["sql"] for q in queries.captured_queries if "INSERT INTO" in q["sql"]]
    assert len(inserts) == 1 and "synchronous_commit" not in inserts[0]


@pytest.mark.parametrize("big", [34, 2**70])
def test_the_ping_document_is_the_same_json_whichever_encoder_writes_it(big):
    from datetime import UTC, datetime
    from decimal import Decimal

    data = {
        "lead": {"age": big, "ratio": 0.1, "name": "Zoë"},
        "payout": Decimal("12.50"),
        "at": datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC),
        "none": None,
    }
    assert json.loads(pings._json_doc(data)) == {
        "lead": {"age": big, "ratio": 0.1, "name": "Zoë"},
        "payout": "12.50",
        "at": "2026-11-22T10:00:00.123456+00:00",
        "none": None,
    }


@pytest.mark.django_db
def test_another_sellers_ping_with_the_same_fingerprint_is_not_a_repeat():
    from accounts.services import api_key_digest
    from tests.exchange.builder import SELLER2_KEY, SELLER_KEY

    load(buyer("a", "10.00"))
    body = json.dumps(ping_body(6)).encode()
    theirs = client(SELLER2_KEY).post("/api/v1/ping", ping_body(6, campaign="cmp_seller2"), format="json").json()
    with market_scope():  # as if seller2's ping had this seller's fingerprint (a hash collision)
        fingerprint = pings.ping_fingerprint(sender=str(api_key_digest(SELLER_KEY)), body=body)
        Ping.objects.filter(public_id=theirs["ping_id"]).update(fingerprint=fingerprint)

    mine = client().post("/api/v1/ping", body, content_type="application/json").json()

    assert mine["ping_id"] != theirs["ping_id"] and mine["status"] == "accepted"


@PG_ONLY
@pytest.mark.django_db
def test_the_repeat_probe_is_one_step_down_its_index_however_often_the_body_was_sent():
    from core.sql import POSTGRES
    from exchange.auction.engine import RepeatProbe

    sql, params = RepeatProbe(1, "f" * 64, timezone.now()).part(POSTGRES)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the tables of a test are too small to need an index
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using ping_repeat" in plan
    assert "Sort" not in plan  # the index's own order: the first entry is the answer
