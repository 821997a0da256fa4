"""Velocity: how many other sellers sent the same consumer in the last hour (the quality score).

A consumer is known by its email hash, phone hash and, when the lead carries one, the consent's IP.
Each is a Redis sorted set ``gavel:velocity:<kind>:<value>`` of seller id -> last time seen, kept
an hour. One ping records its seller in each set and reads them back in ONE pipelined round trip
(ZADD, trim what is older than the window, EXPIRE, ZRANGE per set); nothing else in the ping waits
on Redis for it. Without Redis (the embedded default) the process's own cache stands in: velocity
is then seen within one process only, which is all a single-process deployment has. Redis
unreachable: no other seller is seen (the ping is decided without the velocity signal).

Test pings and re-auctions are not recorded (a test is not a consumer; a re-auction is the same
seller again); they still read.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from django.core.cache import caches

from core.cache import UNREACHABLE, RedisCache, cache_unreachable

WINDOW_S = 3600
PREFIX = "gavel:velocity:"


def consumer_keys(*, email_hash: str, phone_hash: str, ip: str) -> list[str]:
    keys = []
    if email_hash:
        keys.append(f"{PREFIX}e:{email_hash}")
    if phone_hash:
        keys.append(f"{PREFIX}p:{phone_hash}")
    if ip:
        keys.append(f"{PREFIX}ip:{ip}")
    return keys


def other_sellers_seen(keys: Sequence[str], *, seller_id: int, record: bool = True, now: float | None = None) -> int:
    """Record ``seller_id`` under each key (unless not ``record``) and return how many OTHER sellers
    were seen under any of them within the last :data:`WINDOW_S` seconds. No keys: 0, no round trip."""
    if not keys:
        return 0
    now = time.time() if now is None else now
    since = now - WINDOW_S
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        client = backend._cache.get_client(write=True)
        pipe = client.pipeline(transaction=False)
        for key in keys:
            if record:
                pipe.zadd(key, {str(seller_id): now})
                pipe.expire(key, WINDOW_S)
            pipe.zrangebyscore(key, since, "+inf")
        try:
            replies = pipe.execute()
        except UNREACHABLE as error:  # Redis is a cache (decision 64): no velocity seen, none recorded
            cache_unreachable("velocity", error)
            return 0
        step = 3 if record else 1
        members = {m.decode() if isinstance(m, bytes) else str(m) for r in replies[step - 1 :: step] for m in r}
    else:
        members = set()
        for key in keys:
            seen: dict[str, float] = {k: t for k, t in (backend.get(key) or {}).items() if t >= since}
            members.update(seen)
            if record:
                seen[str(seller_id)] = now
                backend.set(key, seen, WINDOW_S)
    members.discard(str(seller_id))
    return len(members)
