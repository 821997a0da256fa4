#!/usr/bin/env python
"""Gavel's benchmark: open-loop pings against gunicorn on PostgreSQL and Redis (``make bench``).

    python tests/bench/run.py [--rate 200] [--seconds 10] [--warmup 2] [--scenarios hello,ping:300]

Sets up a clean world (database ``gavel_bench`` on the server of ``DATABASE_URL``, dropped and
created again; Redis database 9 on the server of ``REDIS_URL``, flushed), migrates it, loads the
scenarios' market files, starts gunicorn on a free local port, offers each scenario's load in
turn, stops gunicorn (always), and writes ``results/latest.json`` and ``results/latest.md``.
See README.md for what the figures mean.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: make ``tests.bench`` importable

import psycopg  # noqa: E402
import redis  # noqa: E402
from psycopg import sql  # noqa: E402

from tests.bench import loadgen  # noqa: E402
from tests.bench.scenarios import BASELINE, SCENARIOS, Scenario  # noqa: E402

HERE = ROOT / "tests" / "bench"
BENCH_DB = "gavel_bench"
BENCH_REDIS_DB = 9
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/gavel"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SETTINGS = "tests.bench.settings"
# Two workers, one per core of the reference machine (the classic 2 × cores + 1 would be 5, but
# the load generator, PostgreSQL and Redis share the same two cores, so more processes would only
# add context switches). gthread with four threads each: a thread waiting on PostgreSQL or Redis
# does not hold up the worker's other requests; 8 requests in progress at once and at most 8
# database connections (kept open: CONN_MAX_AGE). This is DESIGN.md §10's production server.
WORKERS = 2
THREADS = 4


class BenchError(Exception):
    pass


class BenchTimeout(BenchError):
    pass


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the world: database, Redis, schema, market ----------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise BenchError(f"DATABASE_URL must be a PostgreSQL URL, not {parts.scheme}://…")
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def database_recreate(url: str) -> str:
    """Drop and create the bench database; return the server's version."""
    admin = with_database(url, "postgres").replace("pgsql://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        name = sql.Identifier(BENCH_DB)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
        version = conn.execute("SHOW server_version").fetchone()
    return str(version[0]) if version else "?"


def redis_flush(url: str) -> str:
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        client.flushdb()
        return str(client.info("server").get("redis_version", "?"))
    finally:
        client.close()


def manage(env: dict[str, str], *args: str, timeout: float) -> str:
    command = [sys.executable, "manage.py", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


# --- the server ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gunicorn_start(env: dict[str, str], port: int, logfile: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "exchange.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(WORKERS),
        "--worker-class",
        "gthread",
        "--threads",
        str(THREADS),
        "--env",
        f"DJANGO_SETTINGS_MODULE={SETTINGS}",
        "--keep-alive",
        "5",
        "--backlog",
        "2048",
        "--timeout",
        "30",
        "--graceful-timeout",
        "5",
        "--log-level",
        "warning",
        "--error-logfile",
        "-",
    ]
    if Path("/dev/shm").is_dir():
        command += ["--worker-tmp-dir", "/dev/shm"]
    with logfile.open("wb") as out:
        # A session of its own: stopping it signals the master and its workers, nothing else.
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def gunicorn_wait(process: subprocess.Popen[bytes], base_url: str, logfile: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"gunicorn exited with {process.returncode}:\n{logfile.read_text()[-3000:]}")
        request = urllib.request.Request(
            base_url + SCENARIOS[BASELINE].path, data=b"{}", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise BenchError(f"gunicorn did not answer within {timeout:.0f} s:\n{logfile.read_text()[-3000:]}")


def gunicorn_stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=5)


# --- the report --------------------------------------------------------------------------------------


def git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return commit + (" (with uncommitted changes)" if git("status", "--porcelain") else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def ratios(results: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Each scenario's p50 and p99 over the baseline's, measured in the same run."""
    base = next((r for r in results if r["scenario"] == BASELINE), None)
    out: dict[str, dict[str, float | None]] = {}
    if base is None:
        return out
    for result in results:
        if result is base:
            continue
        out[result["scenario"]] = {
            q: (
                round(result["latency_ms"][q] / base["latency_ms"][q], 1)
                if result["latency_ms"][q] and base["latency_ms"][q]
                else None
            )
            for q in ("p50", "p99")
        }
    return out


COLUMNS = [
    ("scenario", "scenario"),
    ("offered/s", "offered_rate"),
    ("achieved/s", "throughput"),
    ("p50 ms", "p50"),
    ("p90 ms", "p90"),
    ("p99 ms", "p99"),
    ("max ms", "max"),
    ("errors", "errors"),
    ("non-200", "non_200"),
    ("bad", "bad_answers"),
]


def _cells(result: dict[str, Any]) -> list[str]:
    def fmt(value: Any) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
        return str(value)

    return [fmt(result["latency_ms"].get(key, result.get(key))) for _, key in COLUMNS]


def table_text(results: list[dict[str, Any]]) -> str:
    rows = [[h for h, _ in COLUMNS], *(_cells(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table_markdown(results: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(h for h, _ in COLUMNS) + " |"
    rule = "|" + "|".join(":--" if i == 0 else "--:" for i in range(len(COLUMNS))) + "|"
    return "\n".join([head, rule, *("| " + " | ".join(_cells(r)) + " |" for r in results)])


def ratio_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        f"{name} / {BASELINE}: p50 × {r['p50'] if r['p50'] is not None else '–'}, "
        f"p99 × {r['p99'] if r['p99'] is not None else '–'}"
        for name, r in report["ratios_to_baseline"].items()
    ]
    for result in report["results"]:
        if result["saturated"]:
            lines.append(
                f"{result['scenario']} is SATURATED: {result['throughput']:g}/s achieved of "
                f"{result['offered_rate']:g}/s offered; "
                + (
                    "its latencies measure a queue that grew all through the run, not the service time"
                    if result["ok"]
                    else f"no good answer within {report['parameters']['request_timeout']:g} s"
                )
                + " (lower its rate to find the knee)"
            )
    return lines


def markdown(report: dict[str, Any]) -> str:
    m, p = report["machine"], report["parameters"]
    lines = [
        "# Gavel benchmark — figures of record",
        "",
        "Written by `make bench` (`tests/bench/run.py`); see `tests/bench/README.md` for how to read it.",
        "",
        f"- Date: {report['date']}",
        f"- Commit: `{report['commit']}`",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['system']}; Python {m['python']}, "
        f"PostgreSQL {m['postgresql']}, Redis {m['redis']}; load average {m['load_average'][0]} before the run, "
        f"{m['load_average'][1]} after",
        f"- Server: gunicorn {m['gunicorn']} on 127.0.0.1, {p['workers']} workers × {p['threads']} threads "
        f"(gthread), Django {m['django']}, DRF {m['djangorestframework']}, DEBUG off",
        f"- Load: open loop (aiohttp {m['aiohttp']}), latency from each request's scheduled send time; "
        f"{p['seconds']:g} s measured after {p['warmup']:g} s warmup per scenario, at most "
        f"{p['max_in_flight']} requests in flight over {p['connections']} connections",
        f"- **The load generator, gunicorn, PostgreSQL and Redis share the machine's {m['nproc']} CPUs.**",
        "- Market: `tests/bench/market.yaml` — one offer (exclusive, first price), 30 buyers with one "
        "internally priced contract each (18 with filters), one seller",
        "",
        table_markdown(report["results"]),
        "",
        *(f"- {line}" for line in ratio_lines(report)),
    ]
    for result in report["results"]:
        lag = result["send_lag_ms"]
        extra = ", ".join(f"{k}: {v}" for k, v in {**result["error_kinds"], **result["bad_kinds"]}.items())
        lines.append(
            f"- {result['scenario']}: {result['requests']} requests measured, {result['ok']} good; "
            f"status codes {result['status_codes']}; generator send lag p99 {lag['p99']} ms"
            + (f"; {extra}" if extra else "")
        )
    return "\n".join(lines) + "\n"


# --- the run -------------------------------------------------------------------------------------------


def parse_scenarios(text: str, rate: float) -> list[tuple[Scenario, float]]:
    chosen = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, own_rate = item.partition(":")
        if name not in SCENARIOS:
            raise SystemExit(f"unknown scenario {name!r} (have: {', '.join(SCENARIOS)})")
        chosen.append((SCENARIOS[name], float(own_rate) if own_rate else rate))
    if not chosen:
        raise SystemExit("no scenario chosen")
    return chosen


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="offered requests/s per scenario (default 200)")
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per scenario (default 10)")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds first (default 2)")
    parser.add_argument(
        "--scenarios",
        default=f"{BASELINE},ping",
        help=f"comma-separated, in order, each NAME or NAME:RATE (have: {', '.join(SCENARIOS)})",
    )
    parser.add_argument("--max-in-flight", type=int, default=2000, help="beyond this, a request is dropped")
    parser.add_argument("--connections", type=int, default=256, help="client connection pool size")
    parser.add_argument("--request-timeout", type=float, default=10, help="seconds; a slower answer is an error")
    parser.add_argument("--timeout", type=float, default=None, help="hard limit for the whole run, seconds")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where latest.json/.md go")
    return parser.parse_args(argv)


def _alarm(signum: int, frame: Any) -> None:
    raise BenchTimeout("the run took longer than its hard time limit")


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    chosen = parse_scenarios(args.scenarios, args.rate)
    per_scenario = args.warmup + args.seconds + args.request_timeout + 5
    hard_limit = args.timeout or 180 + len(chosen) * per_scenario
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGTERM, _terminate)
    signal.alarm(int(hard_limit))

    database_url = with_database(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, BENCH_DB)
    redis_url = with_redis_db(os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL, BENCH_REDIS_DB)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEBUG": "1",
        "GAVEL_ALLOW_PRIVATE_URLS": "1",
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "PYTHONUNBUFFERED": "1",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    logfile = args.out / "gunicorn.log"
    server: subprocess.Popen[bytes] | None = None
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        log(f"database {BENCH_DB} (recreated), Redis db {BENCH_REDIS_DB} (flushed)")
        pg_version = database_recreate(database_url)
        redis_version = redis_flush(redis_url)
        manage(env, "migrate", "--noinput", "-v0", timeout=300)
        for market in dict.fromkeys(s.market for s, _ in chosen if s.market is not None):
            loaded = json.loads(manage(env, "load_market", str(market), timeout=120))
            counts = ", ".join(f"{len(loaded.get(k) or ())} {k}" for k in ("offers", "organizations", "contracts"))
            log(f"loaded {market.relative_to(ROOT)}: {counts}")
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log(f"gunicorn on {base_url}: {WORKERS} workers × {THREADS} threads (gthread), log {logfile}")
        server = gunicorn_start(env, port, logfile)
        gunicorn_wait(server, base_url, logfile)

        results = []
        for scenario, rate in chosen:
            spec = loadgen.LoadSpec(
                rate=rate,
                seconds=args.seconds,
                warmup=args.warmup,
                max_in_flight=args.max_in_flight,
                connections=args.connections,
                request_timeout=args.request_timeout,
            )
            log(f"{scenario.name}: {rate:g}/s to {scenario.path} for {args.warmup:g} + {args.seconds:g} s")
            result = asyncio.run(asyncio.wait_for(loadgen.run(base_url, scenario, spec), timeout=per_scenario + 10))
            results.append(result)
            if server.poll() is not None:
                raise BenchError(f"gunicorn died during {scenario.name}:\n{logfile.read_text()[-3000:]}")
            time.sleep(1)  # let the server settle between scenarios
    finally:
        if server is not None:
            gunicorn_stop(server)
            log("gunicorn stopped")
        signal.alarm(0)

    report = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "commit": git_commit(),
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": cpu_model(),
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "postgresql": pg_version,
            "redis": redis_version,
            # Other work on the box skews the figures: the 1-minute load average before and after.
            "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            **{p: version_of(p) for p in ("gunicorn", "django", "djangorestframework", "aiohttp")},
        },
        "parameters": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "scenarios": {s.name: r for s, r in chosen},
            "max_in_flight": args.max_in_flight,
            "connections": args.connections,
            "request_timeout": args.request_timeout,
            "workers": WORKERS,
            "threads": THREADS,
            "worker_class": "gthread",
            "database": BENCH_DB,
            "redis_db": BENCH_REDIS_DB,
        },
        "results": results,
        "ratios_to_baseline": ratios(results),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    (args.out / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "latest.md").write_text(markdown(report))
    print()
    print(table_text(results))
    for line in ratio_lines(report):
        print(line)
    print(f"\n{report['machine']['nproc']} CPUs shared by the load generator, gunicorn, PostgreSQL and Redis.")
    print(f"Written: {args.out / 'latest.json'}, {args.out / 'latest.md'} ({report['wall_seconds']} s)")
    failed = [r["scenario"] for r in results if r["errors"] or r["non_200"] or r["bad_answers"]]
    if failed:
        print(f"WARNING: errors, non-200 or unexpected answers in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
