"""The shared cache: fewer round trips for the API's hot paths.

- :class:`RedisCache` is Django's Redis cache with one ``redis.Redis`` client per connection pool
  instead of one per call. Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis``
  for every cache operation, and building one copies redis-py's table of response callbacks
  (docs/performance.md). A client is only a handle on its pool and is safe to share between
  threads, so each pool keeps one.
- :func:`cache_prefetch` reads, in one round trip when a request starts, the keys its steps will
  read one by one (the API key's record, the contract book's version);
  :func:`cache_get` answers those from what was read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class _Client(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        django_client: Any = self  # its pool helpers are not in django-stubs
        pool = django_client._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = django_client._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _Client


# What cache_prefetch read and no step has asked for yet; a miss is kept as _MISSING.
_prefetched: ContextVar[dict[str, Any] | None] = ContextVar("gavel_cache_prefetched", default=None)
_MISSING = object()
_NOT_READ = object()


@contextmanager
def cache_prefetch(keys: Sequence[str]) -> Iterator[None]:
    """Read ``keys`` now, in one round trip. Inside the block, the first :func:`cache_get` of each
    key is answered from what was read, as if it had been read then; later reads of it, and every
    read after the block, go to the cache."""
    if not keys:
        yield
        return
    found = caches["default"].get_many(keys)
    token = _prefetched.set({key: found.get(key, _MISSING) for key in keys})
    try:
        yield
    finally:
        _prefetched.reset(token)


def cache_get(key: str) -> Any:
    """The cached value of ``key``, or None: from what :func:`cache_prefetch` read if it read the key
    and nothing asked for it yet, else from the cache."""
    prefetched = _prefetched.get()
    value = _NOT_READ if prefetched is None else prefetched.pop(key, _NOT_READ)
    if value is _NOT_READ:
        return caches["default"].get(key)
    return None if value is _MISSING else value
