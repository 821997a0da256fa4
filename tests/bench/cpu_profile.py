"""Where a post's and a ping's CPU goes, in one process: ``make profile`` (or
``.venv/bin/python tests/bench/cpu_profile.py [--requests 300]``).

A script, not a test. Its own world (the PostgreSQL database ``gavel_profile``, Redis database 11,
the benchmark's markets; the simulated buyers of ``tests/bench/buyers.py`` take the posts'
deliveries), then, through Django's whole request handling with the test client:

* the DRF hello, the ping and the post, each ``--requests`` times: the process's CPU per request
  (``time.process_time``), unprofiled;
* the same pings and posts again under ``cProfile`` with a CPU clock: the functions that cost the
  most, cumulative and own time.

It writes ``tests/bench/results/cpu-profile.md``. The HTTP server's share (gunicorn, sockets) is not in
it (``make bench`` measures that), and cProfile slows every call it counts, so read its figures as
shares, not times. The figures of decision 70 (the post's statements) came from this.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench import run as bench  # noqa: E402
from tests.bench.ablation import world  # noqa: E402
from tests.bench.scenarios import MARKET_POST  # noqa: E402

DATABASE = "gavel_profile"
REDIS_DB = 11
WARMUP = 30


def _top(profile: cProfile.Profile, key: str, limit: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats(key).print_stats(limit)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return "\n".join(line.replace(str(ROOT) + "/", "") for line in lines[start:] if line.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="requests of each kind (default 300)")
    parser.add_argument("--top", type=int, default=40, help="functions listed per table (default 40)")
    parser.add_argument("--out", type=Path, default=bench.HERE / "results" / "cpu-profile.md")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="gavel-profile-"))
    port = bench.free_port()
    buyers = bench.buyers_start(port, scratch / "buyers.log")
    try:
        buyers_url = f"http://127.0.0.1:{port}"
        bench.buyers_wait(buyers, buyers_url, scratch / "buyers.log")
        market = bench.market_render(MARKET_POST, buyers_url, scratch)
        os.environ.update(world(DATABASE, REDIS_DB, (market,)))
        return _profile(args)
    finally:
        buyers.terminate()
        buyers.wait(10)


def _profile(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.test import Client

    from tests.bench import scenarios as sc

    client = Client()
    n = args.requests
    consumers = range(WARMUP + 2 * n)  # the posts' pings: made first, their consumers all different

    def ping(i: int) -> bytes:
        response = client.post(
            "/api/v1/ping",
            sc.ping_body(i),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {sc.SELLER_KEY}",
        )
        assert response.status_code == 200, response.content
        return response.content

    post_pings = [
        client.post(
            "/api/v1/ping",
            sc.post_ping_body(i),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {sc.POST_SELLER_KEY}",
        ).content
        for i in consumers
    ]

    def post(i: int) -> bytes:
        response = client.post(
            "/api/v1/post",
            sc.post_body(i, post_pings[i]),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {sc.POST_SELLER_KEY}",
        )
        assert response.status_code == 200 and sc.post_check(200, response.content) is None, response.content
        return response.content

    def hello(i: int) -> bytes:
        return client.post("/bench/hello", sc.hello_body(i), content_type="application/json").content

    requests: dict[str, Callable[[int], bytes]] = {"hello": hello, "ping": ping, "post": post}
    cpu: dict[str, float] = {}
    profiles: dict[str, cProfile.Profile] = {}
    for name, send in requests.items():
        for i in range(WARMUP):
            send(i)
        began = time.process_time()
        for i in range(WARMUP, WARMUP + n):
            send(i)
        cpu[name] = (time.process_time() - began) / n * 1000
        if name == "hello":
            continue
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for i in range(WARMUP + n, WARMUP + 2 * n):
            send(i)
        profile.disable()
        profiles[name] = profile

    lines = [
        "# Where a ping's and a post's CPU goes, in one process",
        "",
        f"Written by `tests/bench/cpu_profile.py` ({time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}); "
        "see its docstring. The test client, no HTTP server.",
        "",
        "| request | CPU per request (unprofiled) | × the DRF hello |",
        "|---|---|---|",
        *(f"| {name} | {ms:.2f} ms | {ms / cpu['hello']:.1f} |" for name, ms in cpu.items()),
        "",
    ]
    for name, profile in profiles.items():
        for key, title in (("cumulative", "cumulative time"), ("tottime", "own time")):
            lines += [f"## {name}: by {title} ({n} requests, cProfile's CPU clock)", "", "```"]
            lines += [_top(profile, key, args.top), "```", ""]
    args.out.write_text("\n".join(lines))
    for name, ms in cpu.items():
        print(f"{name}: {ms:.2f} ms of CPU per request ({ms / cpu['hello']:.1f}× hello)")
    print(f"Written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
