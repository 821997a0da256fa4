"""Without Redis (the demo's local memory cache) the same writes work key by key."""

from __future__ import annotations

from django.core.cache import caches
from django.test import override_settings

from exchange.cache import cache_write


@override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}})
def test_a_write_without_redis_sets_and_deletes():
    local = caches["default"]
    local.set_many({"gone": 1, "kept": 2}, 30)
    cache_write({"answer": "yes"}, timeout=30, delete=["gone"])
    assert local.get_many(["answer", "gone", "kept"]) == {"answer": "yes", "kept": 2}
    cache_write({}, timeout=30, delete=[])
    assert local.get("kept") == 2
