"""The Redis cache keeps one client per connection pool (exchange/cache.py)."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.core.cache import cache

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="the Redis cache needs REDIS_URL")


def test_every_call_of_a_thread_uses_the_same_client_and_it_works():
    backend = cache._cache  # type: ignore[attr-defined]
    assert backend.get_client() is backend.get_client(write=True) is backend.get_client("a-key")
    cache.set("gavel:test:cache", {"n": 1}, 30)
    assert cache.get("gavel:test:cache") == {"n": 1}
    assert cache.get_many(["gavel:test:cache", "gavel:test:missing"]) == {"gavel:test:cache": {"n": 1}}
    cache.delete_many(["gavel:test:cache"])
    assert cache.get("gavel:test:cache") is None


def test_threads_counting_at_once_lose_no_increment():
    cache.set("gavel:test:shared", 0, 30)
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(50):
                cache.incr("gavel:test:shared")
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert cache.get("gavel:test:shared") == 400


def test_a_write_sets_and_deletes_in_one_pipeline(monkeypatch):
    from redis.client import Pipeline

    from exchange.cache import cache_write

    cache.set_many({"gavel:test:gone-1": 1, "gavel:test:gone-2": 2, "gavel:test:kept": 3}, 30)
    sent: list[int] = []
    execute = Pipeline.execute
    monkeypatch.setattr(
        Pipeline, "execute", lambda self, *a, **k: sent.append(len(self.command_stack)) or execute(self, *a, **k)
    )

    cache_write(
        {"gavel:test:answer": {"status": "accepted"}}, timeout=30, delete=["gavel:test:gone-1", "gavel:test:gone-2"]
    )

    assert sent == [2]  # one round trip: the set and the delete
    assert cache.get_many(["gavel:test:answer", "gavel:test:gone-1", "gavel:test:gone-2", "gavel:test:kept"]) == {
        "gavel:test:answer": {"status": "accepted"},
        "gavel:test:kept": 3,
    }
    ttl = cache._cache.get_client().ttl(cache.make_key("gavel:test:answer"))  # type: ignore[attr-defined]
    assert 28 <= ttl <= 30


def test_a_single_set_or_a_delete_alone_is_one_command_without_a_pipeline(monkeypatch):
    from redis.client import Pipeline

    from exchange.cache import cache_write

    monkeypatch.setattr(Pipeline, "execute", lambda *a, **k: pytest.fail("one command needs no pipeline"))
    cache.set("gavel:test:gone", 1, 30)

    cache_write({"gavel:test:answer": {"status": "rejected"}}, timeout=30)
    cache_write({}, timeout=30, delete=["gavel:test:gone"])

    assert cache.get_many(["gavel:test:answer", "gavel:test:gone"]) == {"gavel:test:answer": {"status": "rejected"}}
    ttl = cache._cache.get_client().ttl(cache.make_key("gavel:test:answer"))  # type: ignore[attr-defined]
    assert 28 <= ttl <= 30
