"""What each piece of hot-path tuning buys: the ping's CPU with and without it, in one process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gavel REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python tests/bench/ablation.py [--pings 400] [--rounds 7]

A script, not a test. It builds its own world (the PostgreSQL database ``gavel_ablation``, Redis
database 10, the benchmark's market), then sends pings through Django's whole request handling
(middleware, URL resolution, DRF, the auction, the ping's write) with the test client, in rounds:
each round runs every variant once, in a rotating order, so drift in the machine's load falls on
all of them alike. A variant switches one piece of tuning off; the figure is the process's CPU
time per ping (``time.process_time``), the median over the rounds, and its ratio to the baseline's
median. The HTTP server's share (gunicorn, sockets) is not in it: the ratios are of what Django and
the exchange spend on a ping. ``docs/performance.md`` says what was kept and why.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

DATABASE = "gavel_ablation"
REDIS_DB = 10


def world(database: str = DATABASE, redis_db: int = REDIS_DB, markets: tuple[Path, ...] = ()) -> dict[str, str]:
    """A clean world for an in-process benchmark: the PostgreSQL database ``database`` (dropped and
    created again), Redis database ``redis_db`` (flushed), migrated, with the benchmark's market and
    ``markets`` loaded. Returns the environment that names it."""
    base = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gavel"))
    redis = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    env = dict(
        os.environ,
        DATABASE_URL=urlunsplit(base._replace(path=f"/{database}")),
        REDIS_URL=urlunsplit(redis._replace(path=f"/{redis_db}")),
        DJANGO_SETTINGS_MODULE="tests.bench.settings",
    )
    admin = urlunsplit(base._replace(path="/postgres"))
    for sql in (f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", f"CREATE DATABASE {database}"):
        subprocess.run(["psql", admin, "-qc", sql], check=True)
    subprocess.run(["redis-cli", "-u", env["REDIS_URL"], "flushdb"], check=True, capture_output=True)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    for market in (ROOT / "tests/bench/market.yaml", *markets):
        subprocess.run([*manage, "load_market", str(market)], env=env, check=True, stdout=subprocess.DEVNULL)
    return env


@contextlib.contextmanager
def _patched(target: object, name: str, value: object) -> Iterator[None]:
    old = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, old)


def _variants() -> dict[str, Callable[[], contextlib.AbstractContextManager[Any]]]:
    from django.db import connection
    from django.test import override_settings
    from rest_framework.settings import api_settings

    import core.api.serializers as base_serializers
    import exchange.api.views as api_views
    import exchange.auction.engine as engine
    import exchange.services.pings as pings
    from core.cache import _Client

    def drf_negotiation() -> contextlib.ExitStack:
        rest = {**__import__("django.conf").conf.settings.REST_FRAMEWORK}
        rest["DEFAULT_CONTENT_NEGOTIATION_CLASS"] = "rest_framework.negotiation.DefaultContentNegotiation"
        stack = contextlib.ExitStack()
        stack.enter_context(override_settings(REST_FRAMEWORK=rest))
        api_settings.reload()
        stack.callback(api_settings.reload)
        return stack

    def django_cursor() -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(_patched(engine, "bound_cursor", lambda: connection.cursor()))
        stack.enter_context(_patched(pings, "bound_cursor", lambda: connection.cursor()))
        return stack

    def serializer_per_answer() -> contextlib.AbstractContextManager[None]:
        return _patched(base_serializers, "_renderer", lambda cls: cls())

    def redis_client_per_call() -> contextlib.AbstractContextManager[None]:
        from django.core.cache.backends.redis import RedisCacheClient

        return _patched(_Client, "get_client", RedisCacheClient.get_client)

    return {
        "baseline": contextlib.nullcontext,
        "a new output serializer per answer (no cached renderer)": serializer_per_answer,
        "Django's Redis client per cache call (no client reuse)": redis_client_per_call,
        "DRF ping validation only (no ping_input_quick)": lambda: _patched(
            api_views, "ping_input_quick", lambda data: None
        ),
        "DRF content negotiation (no AnyFirstNegotiation)": drf_negotiation,
        "Django's cursor (no bound_cursor)": django_cursor,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=400, help="pings per variant per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    os.environ.update(world())
    import django

    django.setup()
    from django.test import Client

    from tests.bench.scenarios import SELLER_KEY, ping_body

    client = Client(HTTP_AUTHORIZATION=f"Bearer {SELLER_KEY}")
    variants = _variants()
    counter = iter(range(10**9))

    def run(n: int) -> float:
        started = time.process_time()
        for _ in range(n):
            response = client.post("/api/v1/ping", ping_body(next(counter)), content_type="application/json")
            assert response.status_code == 200, response.content[:300]
        return (time.process_time() - started) / n * 1000

    run(200)  # warm: the contract book, the connections, the prepared statements
    results: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(args.rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            with variants[name]():
                results[name].append(run(args.pings))
    base = statistics.median(results["baseline"])
    print(f"CPU per ping, median of {args.rounds} rounds of {args.pings} pings (min–max), ratio to the baseline\n")
    print("| variant | ms CPU per ping | ratio |")
    print("|---|---|---|")
    for name, figures in results.items():
        median = statistics.median(figures)
        print(f"| {name} | {median:.3f} ({min(figures):.3f}–{max(figures):.3f}) | {median / base:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
