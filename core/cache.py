"""The shared cache: fewer round trips for the API's hot paths.

- :class:`RedisCache` is Django's Redis cache with one ``redis.Redis`` client per connection pool
  instead of one per call. Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis``
  for every cache operation, and building one copies redis-py's table of response callbacks
  (docs/performance.md). A client is only a handle on its pool and is safe to share between
  threads, so each pool keeps one.
- :func:`cache_prefetch` reads, in one round trip when a request starts, the keys its steps will
  read one by one (the API key's record, the contract book's version);
  :func:`cache_get` answers those from what was read. In the same round trip it may count the
  request in a counter (the API key's rate-limit window, accounts/api/base.py):
  :func:`cache_counted` is the count, this request included.
- Redis is a cache here, never the record (docs/decisions.md 64): when it cannot be reached (a
  refused or dropped connection, a timeout), a read is a miss, a write is dropped and a count is
  this request's alone (1: the rate limit admits it), with a warning in the log at most every
  10 s per process. The exchange goes on deciding pings and selling from PostgreSQL, slower.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# What an unreachable Redis raises; anything else (a bad command, a wrong type) is a bug and raises.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError)
_WARN_EVERY_S = 10.0
_warned_at = [-_WARN_EVERY_S]


def cache_unreachable(operation: str, error: Exception) -> None:
    """Log that Redis could not be reached, at most every 10 s per process."""
    now = time.monotonic()
    if now - _warned_at[0] >= _WARN_EVERY_S:
        _warned_at[0] = now
        logger.warning("Redis unreachable (%s: %s): the cache answers as empty", operation, error)


def _or(answer: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The cache operation, or ``answer(*args)`` when Redis cannot be reached."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def tolerant(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except UNREACHABLE as error:
                cache_unreachable(method.__name__, error)
                return answer(*args, **kwargs)

        return tolerant

    return wrap


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

    # Unreachable: a read misses, a write is dropped, a count is this one alone.
    add = _or(lambda *a, **k: False)(RedisCacheClient.add)
    get = _or(lambda key, default: default)(RedisCacheClient.get)
    set = _or(lambda *a, **k: None)(RedisCacheClient.set)
    touch = _or(lambda *a, **k: False)(RedisCacheClient.touch)
    delete = _or(lambda *a, **k: False)(RedisCacheClient.delete)
    get_many = _or(lambda *a, **k: {})(RedisCacheClient.get_many)
    has_key = _or(lambda *a, **k: False)(RedisCacheClient.has_key)
    incr = _or(lambda key, delta: delta)(RedisCacheClient.incr)
    set_many = _or(lambda *a, **k: [])(RedisCacheClient.set_many)
    delete_many = _or(lambda *a, **k: None)(RedisCacheClient.delete_many)


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _Client

    @_or(lambda *a, **k: ({}, 1))
    def get_many_and_count(self, keys: Sequence[str], counter: str, timeout: int) -> tuple[dict[str, Any], int]:
        """``get_many(keys)`` and ``incr(counter)`` (created at 1, expiring ``timeout`` seconds after
        its last count) in one pipelined round trip. INCR is atomic in Redis: of N concurrent
        requests on one counter, each sees a different count from 1 to N. Redis unreachable:
        nothing found, and a count of 1."""
        made = {self.make_and_validate_key(key): key for key in keys}
        counter_key = self.make_and_validate_key(counter)
        cache: Any = self._cache  # its client and serializer are not in django-stubs
        pipe = cache.get_client(write=True).pipeline(transaction=False)
        if made:
            pipe.mget(list(made))
        pipe.incr(counter_key)
        pipe.expire(counter_key, timeout)
        answers = pipe.execute()
        found: dict[str, Any] = {}
        if made:
            loads = cache._serializer.loads
            found = {made[k]: loads(v) for k, v in zip(made, answers[0], strict=True) if v is not None}
        return found, int(answers[-2])


# What cache_prefetch read and no step has asked for yet; a miss is kept as _MISSING.
_prefetched: ContextVar[dict[str, Any] | None] = ContextVar("gavel_cache_prefetched", default=None)
_counted: ContextVar[int | None] = ContextVar("gavel_cache_counted", default=None)
_MISSING = object()
_NOT_READ = object()


@contextmanager
def cache_prefetch(keys: Sequence[str], *, counter: str | None = None, counter_timeout: int = 2) -> Iterator[None]:
    """Read ``keys`` now, in one round trip. Inside the block, the first :func:`cache_get` of each
    key is answered from what was read, as if it had been read then; later reads of it, and every
    read after the block, go to the cache.

    With a ``counter``, the same round trip also adds one to it (an atomic count, kept
    ``counter_timeout`` seconds after its last count), and :func:`cache_counted` is its new value
    inside the block. On Redis that is one pipeline; on another cache (the embedded default's
    per-process memory cache) an ``add`` and an ``incr``, each atomic in that cache, so the count
    is exact within one process and per process."""
    if not keys and counter is None:
        yield
        return
    cache = caches["default"]
    count: int | None = None
    if counter is None:
        found = cache.get_many(keys)
    elif isinstance(cache, RedisCache):
        found, count = cache.get_many_and_count(keys, counter, counter_timeout)
    else:
        found = cache.get_many(keys) if keys else {}
        cache.add(counter, 0, counter_timeout)
        try:
            count = cache.incr(counter)
        except ValueError:  # expired between the add and the incr: a new window
            cache.add(counter, 0, counter_timeout)
            count = cache.incr(counter)
    token = _prefetched.set({key: found.get(key, _MISSING) for key in keys})
    counted = _counted.set(count)
    try:
        yield
    finally:
        _counted.reset(counted)
        _prefetched.reset(token)


def cache_counted() -> int | None:
    """Inside :func:`cache_prefetch` with a ``counter``: the counter's value once this request was
    counted (1 for the first); else None."""
    return _counted.get()


def cache_get(key: str) -> Any:
    """The cached value of ``key``, or None: from what :func:`cache_prefetch` read if it read the key
    and nothing asked for it yet, else from the cache."""
    prefetched = _prefetched.get()
    value = _NOT_READ if prefetched is None else prefetched.pop(key, _NOT_READ)
    if value is _NOT_READ:
        return caches["default"].get(key)
    return None if value is _MISSING else value
