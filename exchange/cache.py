"""The shared cache: fewer round trips for the API's hot paths.

- :class:`RedisCache` is Django's Redis cache with one ``redis.Redis`` client per connection pool
  instead of one per call. Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis``
  for every cache operation, and building one copies redis-py's table of ~170 response
  callbacks: about a tenth of a ping's CPU went there (five cache operations per ping). A client
  is only a handle on its pool and is safe to share between threads, so each pool keeps one.
- :func:`cache_prefetch` reads, in one round trip when a request starts, the keys its steps will
  read one by one (the API key's record, the contract book's version, the breaker's failure epoch);
  :func:`cache_get` and :func:`cache_get_many` answer those from what was read.
- :func:`cache_write` sets and deletes in one round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
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

    def write_many(self, values: Mapping[str, Any], *, timeout: int, delete: Iterable[str]) -> None:
        """Set ``values`` and delete ``delete`` in one round trip (a pipeline, not a transaction,
        when there is more than one command: redis-py's pipeline costs a command's CPU again)."""
        django_client: Any = self._cache  # its serializer is not in django-stubs
        client = django_client.get_client(write=True)
        seconds = self.get_backend_timeout(timeout)
        ex = None if seconds is None else int(seconds)
        sets = [(self.make_and_validate_key(k), django_client._serializer.dumps(v)) for k, v in values.items()]
        deleted = [self.make_and_validate_key(key) for key in delete]
        if len(sets) == 1 and not deleted:
            client.set(*sets[0], ex=ex)
            return
        if deleted and not sets:
            client.delete(*deleted)
            return
        pipeline = client.pipeline(transaction=False)
        for key, value in sets:
            pipeline.set(key, value, ex=ex)
        if deleted:
            pipeline.delete(*deleted)
        pipeline.execute()


def cache_write(values: Mapping[str, Any], *, timeout: int, delete: Iterable[str] = ()) -> None:
    """Set and delete keys of the default cache: in one round trip when it is Redis, none when
    there is nothing to do."""
    delete = list(delete)
    if not values and not delete:
        return
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        backend.write_many(values, timeout=timeout, delete=delete)
        return
    if values:
        backend.set_many(dict(values), timeout=timeout)
    if delete:
        backend.delete_many(delete)


# What cache_prefetch read and no step has asked for yet; a miss is kept as _MISSING.
_prefetched: ContextVar[dict[str, Any] | None] = ContextVar("gavel_cache_prefetched", default=None)
_MISSING = object()
_NOT_READ = object()


@contextmanager
def cache_prefetch(keys: Sequence[str]) -> Iterator[None]:
    """Read ``keys`` now, in one round trip. Inside the block, the first :func:`cache_get` or
    :func:`cache_get_many` of each key is answered from what was read, as if it had been read then;
    later reads of it, and every read after the block, go to the cache."""
    if not keys:
        yield
        return
    found = caches["default"].get_many(keys)
    token = _prefetched.set({key: found.get(key, _MISSING) for key in keys})
    try:
        yield
    finally:
        _prefetched.reset(token)


def cache_get_many(keys: Sequence[str]) -> dict[str, Any]:
    """The cached values of ``keys`` (absent ones left out): the prefetched ones from memory, the
    others in one round trip."""
    prefetched = _prefetched.get() or {}
    values: dict[str, Any] = {}
    rest = []
    for key in keys:
        value = prefetched.pop(key, _NOT_READ)
        if value is _NOT_READ:
            rest.append(key)
        elif value is not _MISSING:
            values[key] = value
    if rest:
        values.update(caches["default"].get_many(rest))
    return values


def cache_get(key: str) -> Any:
    """The cached value of ``key``, or None."""
    return cache_get_many([key]).get(key)
