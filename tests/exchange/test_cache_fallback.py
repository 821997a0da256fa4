"""Without Redis (the demo's local memory cache) a request's prefetched reads work the same."""

from __future__ import annotations

from django.core.cache import caches
from django.test import override_settings

from core.cache import cache_get, cache_prefetch


@override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}})
def test_a_prefetch_without_redis_answers_each_key_once_from_what_it_read():
    local = caches["default"]
    local.set("kept", 1, 30)
    local.delete("absent")
    with cache_prefetch(["kept", "absent"]):
        local.set_many({"kept": 2, "absent": 3}, 30)
        assert (cache_get("kept"), cache_get("absent")) == (1, None)
        assert (cache_get("kept"), cache_get("absent")) == (2, 3)
