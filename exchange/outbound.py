"""Outbound HTTP to buyers: one event loop per process, one shared connection pool.

Sync Django code (a ping or post view, a Celery task) hands coroutines to a loop running in a
daemon thread and waits for them with a timeout, so many buyers are called at once with no
thread per call, and a hanging buyer never holds the caller past its deadline.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp
import uvloop

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_session: aiohttp.ClientSession | None = None
_pid: int | None = None


def _start() -> asyncio.AbstractEventLoop:
    global _loop, _session, _pid
    # Buyers' answers are read by the loop thread while request threads run Python: a short GIL
    # switch interval lets an answer in within a millisecond instead of up to five.
    sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
    # uvloop: the same asyncio API on libuv, about a fifth less CPU per buyer call than the stdlib loop.
    loop = uvloop.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, name="gavel-outbound", daemon=True).start()
    ready.wait()

    async def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=512, limit_per_host=64, ttl_dns_cache=300, keepalive_timeout=30)
        # No cookie jar: buyers' cookies are never sent back, and filtering them costs every call.
        return aiohttp.ClientSession(
            connector=connector, headers={"User-Agent": "Gavel-Exchange/1"}, cookie_jar=aiohttp.DummyCookieJar()
        )

    _session = asyncio.run_coroutine_threadsafe(session(), loop).result()
    _loop, _pid = loop, os.getpid()
    atexit.register(_stop)
    return loop


def _stop() -> None:
    """Close the pool and the loop at exit, so no connection is left half-open."""
    global _loop, _session
    loop, session = _loop, _session
    if loop is None or _pid != os.getpid():
        return
    if session is not None:
        asyncio.run_coroutine_threadsafe(session.close(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    _loop = _session = None


def loop_get() -> asyncio.AbstractEventLoop:
    """The process's outbound loop, started on first use (and again after a fork)."""
    if _loop is not None and _pid == os.getpid():
        return _loop
    with _lock:
        if _loop is None or _pid != os.getpid():
            return _start()
        return _loop


def session_get() -> aiohttp.ClientSession:
    loop_get()
    assert _session is not None
    return _session


def run_sync(coro: Coroutine[Any, Any, T], *, timeout: float) -> T:
    """Run ``coro`` on the outbound loop and wait at most ``timeout`` seconds for it."""
    future = asyncio.run_coroutine_threadsafe(coro, loop_get())
    try:
        return future.result(timeout=timeout)
    except TimeoutError:
        future.cancel()
        raise
