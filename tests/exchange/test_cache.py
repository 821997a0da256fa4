"""The Redis cache keeps one client per connection pool (core/cache.py)."""

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
