#!/usr/bin/env python
"""Gavel's benchmark: open-loop pings against gunicorn on PostgreSQL and Redis (``make bench``).

    python tests/bench/run.py [--scenarios hello:200,ping:40,ping-rtb:40,ping-tree:10]
                              [--seconds 20] [--warmup 2] [--name latest] [--database gavel_bench]

Sets up a clean world (database ``gavel_bench``, or ``--database``, on the server of
``DATABASE_URL``, dropped and created again; Redis database 9, or ``BENCH_REDIS_DB``, on the
server of ``REDIS_URL``, flushed), migrates it, starts the simulated buyers (``buyers.py``, a
process of their own on a free local port) when a scenario needs them, loads the scenarios'
market files (those of such scenarios rendered with the buyers' URL), starts gunicorn on a free
local port, offers each scenario's load in turn (waiting for the server to drain between them;
a ``post`` first gets its pings answered, unmeasured), stops gunicorn and the buyers (always),
and writes ``results/NAME.json`` and ``results/NAME.md``. See README.md for what the figures mean.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import uvloop

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: make ``tests.bench`` importable

import psycopg  # noqa: E402
import redis  # noqa: E402
import yaml  # noqa: E402
from psycopg import sql  # noqa: E402

from tests.bench import loadgen  # noqa: E402
from tests.bench.scenarios import (  # noqa: E402
    BASELINE,
    BUYER_LATENCY_MS,
    MARKET_RTB,
    POST_OFFER,
    RTB_CAMPAIGN,
    SCENARIOS,
    Scenario,
)

HERE = ROOT / "tests" / "bench"
BENCH_DB = "gavel_bench"  # --database names another: two people's runs on one server stay apart
BENCH_REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "9"))  # another db keeps a parallel run apart
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/gavel"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SETTINGS = "tests.bench.settings"
# Four workers (two per core of the reference machine) of eight threads (gthread): an RTB ping
# holds its thread for the buyers' 50 ms, so 200 pings/s keep a dozen requests in progress, and
# threads waiting on PostgreSQL, Redis or a buyer do not hold up the others. More processes and
# fewer threads each share out the GIL: 2 × 16 saturated at 175 RTB pings/s where 4 × 8 reached
# 188 (8 × 4 added context switches). At most 32 database connections (kept open: CONN_MAX_AGE).
# This is docs/deployment.md's production server.
WORKERS = 4
THREADS = 8
EXTERNALS_NICE = -5
DEFAULT_SCENARIOS = "hello:200,ping:40,ping-rtb:40,ping-tree:10"
# Between scenarios, wait until the server has drained (a saturated scenario leaves a backlog
# that gunicorn works through after its clients gave up): the baseline answered within SETTLE_MS
# three times in a row, and in the last SETTLE_QUIET seconds gunicorn used less than
# SETTLE_ACTIVITY CPU seconds and the buyers got no request; for at most SETTLE_MAX seconds.
SETTLE_MS = 50
SETTLE_MAX = 120
SETTLE_QUIET = 1.0
SETTLE_ACTIVITY = 0.1
# The sequential ping tree against the fan-out: the pair compared, and the targets.
RTB, TREE = "ping-rtb", "ping-tree"
TARGET_P50_OVER_BUYERS_MS = 10
TARGET_P99_OVER_DEADLINE_MS = 20


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


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def database_recreate(url: str) -> str:
    """Drop and create the bench database (the one ``url`` names); return the server's version."""
    admin = with_database(url, "postgres").replace("pgsql://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        name = sql.Identifier(database_name(url))
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


def gunicorn_start(
    env: dict[str, str], port: int, logfile: Path, *, workers: int = WORKERS, threads: int = THREADS
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "exchange.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
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
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # The exchange runs at the normal priority even when the generator does not.
            preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, 0),
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


def server_settle(base_url: str, activity: Callable[[], float], max_wait: float = SETTLE_MAX) -> float:
    """Wait until the server has worked through its backlog; the seconds waited.

    Drained means: the baseline answered within SETTLE_MS three times in a row, and ``activity``
    (the server's CPU seconds plus the buyers' request count, say) grew by less than
    SETTLE_ACTIVITY over the last SETTLE_QUIET seconds. The baseline alone is not enough: each
    gunicorn worker has its queue of accepted connections, and a quick answer from an idle worker
    says nothing of the other's.
    """
    started = time.monotonic()
    fast = 0
    marks = [(started, activity())]
    while time.monotonic() - started < max_wait:
        request = urllib.request.Request(
            base_url + SCENARIOS[BASELINE].path, data=b"{}", headers={"Content-Type": "application/json"}
        )
        sent = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=max(1.0, max_wait)) as response:
                response.read()
                fast = fast + 1 if (time.monotonic() - sent) * 1000 < SETTLE_MS else 0
        except (OSError, urllib.error.URLError):
            fast = 0
        now = time.monotonic()
        marks.append((now, activity()))
        older = [m for m in marks if m[0] <= now - SETTLE_QUIET]
        if fast >= 3 and older and marks[-1][1] - older[-1][1] < SETTLE_ACTIVITY:
            break
        time.sleep(0.1)
    return round(time.monotonic() - started, 1)


# --- where the CPU went ------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used; 0 when it is gone or unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def postgres_backends(database_url: str) -> list[int]:
    """The server processes of the bench database's connections (gunicorn's), this one's not."""
    try:
        with psycopg.connect(database_url.replace("pgsql://", "postgresql://", 1), connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (database_name(database_url),),
            ).fetchall()
    except psycopg.Error:
        return []
    return [int(row[0]) for row in rows]


def cpu_snapshot(groups: dict[str, list[int]]) -> dict[str, Any]:
    """The machine's busy and total CPU seconds so far (/proc/stat), and each group's processes'
    CPU seconds so far. Linux only; empty elsewhere."""
    try:
        jiffies = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return {}
    user, nice, system, idle, iowait, irq, softirq, steal = jiffies
    return {
        "busy": (user + nice + system + irq + softirq + steal) / CLOCK_TICKS,
        "total": sum(jiffies) / CLOCK_TICKS,
        "groups": {name: {pid: _process_cpu(pid) for pid in pids} for name, pids in groups.items()},
    }


def cpu_used(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """Between two snapshots: how busy the machine was (percent of all its CPUs, whoever used
    them), how many cores each group used on average (a process new since the first snapshot
    counts from zero), and the rest: everything else on the machine, other people's work too."""
    if not before or not after:
        return {}
    total = after["total"] - before["total"]
    wall = total / (os.cpu_count() or 1)
    if total <= 0:
        return {}
    busy_cores = (after["busy"] - before["busy"]) / wall
    used: dict[str, float] = {"box_busy_percent": round(100 * (after["busy"] - before["busy"]) / total, 1)}
    ours = 0.0
    for name, pids in after["groups"].items():
        seconds = sum(max(cpu - before["groups"].get(name, {}).get(pid, 0.0), 0.0) for pid, cpu in pids.items())
        used[f"{name}_cores"] = round(seconds / wall, 2)
        ours += seconds / wall
    used["rest_cores"] = round(max(busy_cores - ours, 0.0), 2)
    used["seconds"] = round(wall, 1)
    return used


# --- the simulated RTB buyers ------------------------------------------------------------------------


def buyers_start(port: int, logfile: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(HERE / "buyers.py"), "--port", str(port), "--latency-ms", f"{BUYER_LATENCY_MS:g}"]
    with logfile.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def buyers_stats(base_url: str, *, reset: bool = False) -> dict[str, Any]:
    with urllib.request.urlopen(base_url + "/stats" + ("?reset=1" if reset else ""), timeout=5) as response:
        return dict(json.loads(response.read()))


def buyers_wait(process: subprocess.Popen[bytes], base_url: str, logfile: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the buyer simulator exited with {process.returncode}:\n{logfile.read_text()[-3000:]}")
        try:
            buyers_stats(base_url)
            return
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
    raise BenchError(f"the buyer simulator did not answer within {timeout:.0f} s:\n{logfile.read_text()[-3000:]}")


def market_render(template: Path, buyers_url: str, out: Path) -> Path:
    """The market file with the simulated buyers' base URL filled in (``$BUYERS``)."""
    rendered = out / f"{template.stem}.rendered{template.suffix}"
    rendered.write_text(Template(template.read_text()).substitute(BUYERS=buyers_url))
    return rendered


def market_timeouts(market: Path) -> dict[str, Any]:
    """The RTB market's ping deadline and its RTB contracts' timeouts, as the report states them."""
    data = yaml.safe_load(market.read_text())
    contracts = [c for o in data["organizations"] for c in o.get("contracts") or ()]
    return {
        "ping_timeout_ms": data["offers"][0]["ping_timeout_ms"],
        "rtb_timeout_ms": sorted({c["rtb_timeout_ms"] for c in contracts if c.get("rtb_url")}),
        "internal_contracts": sum(1 for c in contracts if not c.get("rtb_url")),
        "rtb_contracts": sum(1 for c in contracts if c.get("rtb_url")),
    }


WATERFALL_REASONS = """
    SELECT c.public_id, s.step->>'reason', count(*),
           percentile_disc(0.5) WITHIN GROUP (ORDER BY (s.step->>'latency_ms')::float),
           percentile_disc(0.99) WITHIN GROUP (ORDER BY (s.step->>'latency_ms')::float)
    FROM exchange_ping p
    JOIN contracts_campaign k ON k.id = p.campaign_id
    CROSS JOIN LATERAL jsonb_array_elements(p.waterfall) AS s(step)
    JOIN contracts_buyercontract c ON c.public_id = s.step->>'contract'
    WHERE k.public_id = %(campaign)s AND c.rtb_url <> ''
    GROUP BY 1, 2 ORDER BY 1, 2
"""
PINGS = """
    SELECT count(*), count(*) FILTER (WHERE p.status = 'accepted'),
           count(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM jsonb_array_elements(p.waterfall) s
               JOIN contracts_buyercontract c ON c.public_id = s->>'contract'
               WHERE s->>'reason' = 'won' AND c.rtb_url <> '')),
           percentile_disc(0.5) WITHIN GROUP (ORDER BY p.latency_ms),
           percentile_disc(0.99) WITHIN GROUP (ORDER BY p.latency_ms),
           max(p.latency_ms)
    FROM exchange_ping p JOIN contracts_campaign k ON k.id = p.campaign_id
    WHERE k.public_id = %(campaign)s
"""
RTB_WON_SAMPLES = """
    SELECT p.public_id, p.lead, p.waterfall FROM exchange_ping p
    JOIN contracts_campaign k ON k.id = p.campaign_id
    WHERE k.public_id = %(campaign)s AND EXISTS (
        SELECT 1 FROM jsonb_array_elements(p.waterfall) s
        JOIN contracts_buyercontract c ON c.public_id = s->>'contract'
        WHERE s->>'reason' = 'won' AND c.rtb_url <> '')
    ORDER BY p.id DESC LIMIT 3
"""


def rtb_pings_read(database_url: str) -> dict[str, Any]:
    """What the exchange stored for the RTB market's pings (warmup included): who won, each RTB
    contract's reasons and latencies in the waterfalls, the server's own ping latency, and whether
    the circuit breaker paused an RTB contract."""
    with psycopg.connect(database_url.replace("pgsql://", "postgresql://", 1), connect_timeout=10) as conn:
        total, accepted, rtb_won, p50, p99, most = conn.execute(PINGS, {"campaign": RTB_CAMPAIGN}).fetchone() or (
            0,
            0,
            0,
            None,
            None,
            None,
        )
        reasons: dict[str, dict[str, Any]] = {}
        for contract, reason, count, lat50, lat99 in conn.execute(WATERFALL_REASONS, {"campaign": RTB_CAMPAIGN}):
            reasons.setdefault(contract, {})[reason] = {
                "count": count,
                "latency_ms_p50": round(lat50, 1),
                "latency_ms_p99": round(lat99, 1),
            }
        samples = [
            {
                "ping": ping_id,
                "lead": lead,
                "waterfall": [
                    f"{s['contract']} {s['reason']} {s['price'] or '–'} {s['latency_ms']:.1f} ms"
                    for s in waterfall
                    if not s["reason"].startswith("filtered")
                ],
            }
            for ping_id, lead, waterfall in conn.execute(RTB_WON_SAMPLES, {"campaign": RTB_CAMPAIGN})
        ]
        paused = [
            row[0]
            for row in conn.execute(
                "SELECT public_id FROM contracts_buyercontract WHERE rtb_url <> '' AND status <> 'active'"
            )
        ]
    return {
        "pings": total,
        "accepted": accepted,
        "won_by_rtb": rtb_won,
        "server_latency_ms": {
            "p50": None if p50 is None else round(p50, 1),
            "p99": None if p99 is None else round(p99, 1),
            "max": None if most is None else round(most, 1),
        },
        "rtb_waterfall": reasons,
        "rtb_paused": paused,
        "rtb_won_samples": samples,
    }


# --- the post: its pings first, then what the exchange stored -----------------------------------------

POST = "post"
TARGET_POST_P99_MS = 25  # issue 18: the post's p99, the buyer's own delivery time excluded


def follow_ups(base_url: str, scenario: Scenario, count: int) -> list[bytes]:
    """The bodies of a follow-up scenario's ``count`` requests (the posts), made from the answers to
    its ``pinged`` scenario's requests, sent now, before its measured run; every one must be good."""
    pinged, follow = scenario.pinged, scenario.follow
    assert pinged is not None and follow is not None
    started = time.monotonic()
    answers = uvloop.run(asyncio.wait_for(loadgen.answers(base_url, pinged, count), timeout=60 + count / 20))
    refused = [(status, body) for status, body in answers if status != 200 or pinged.check(status, body)]
    if refused:
        status, body = refused[0]
        raise BenchError(
            f"{scenario.name}: {len(refused)} of its {count} pings were not accepted; "
            f"the first: {status} {body[:300]!r}"
        )
    log(f"{scenario.name}: {count} {pinged.name}s answered in {time.monotonic() - started:.1f} s (not measured)")
    return [follow(i, body) for i, (_, body) in enumerate(answers)]


def _percentiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    return {
        q: round(loadgen.percentile(ordered, p) or 0.0, 2) if ordered else None
        for q, p in (("p50", 50), ("p90", 90), ("p99", 99))
    } | {"max": round(ordered[-1], 2) if ordered else None}


POST_SALES = """
    SELECT c.slug, c.cap_day, count(*) FILTER (WHERE s.status = 'sold'), count(*) FILTER (WHERE s.status = 'reserved'),
           coalesce(sum(s.price) FILTER (WHERE s.status IN ('sold', 'reserved')), 0),
           (SELECT count(*) FROM exchange_bid b WHERE b.contract_id = c.id AND b.status = 'won')
    FROM contracts_buyercontract c JOIN exchange_offer o ON o.id = c.offer_id
    LEFT JOIN exchange_sale s ON s.contract_id = c.id
    WHERE o.slug = %(offer)s GROUP BY c.id, c.slug, c.cap_day ORDER BY c.slug
"""
POST_COUNTERS = """
    SELECT c.slug, k.period, sum(k.count), sum(k.spend)
    FROM contracts_capcounter k JOIN contracts_buyercontract c ON c.id = k.contract_id
    JOIN exchange_offer o ON o.id = c.offer_id WHERE o.slug = %(offer)s GROUP BY 1, 2
"""
POST_LEADS = """
    SELECT l.public_id, l.status FROM leads_lead l JOIN exchange_offer o ON o.id = l.offer_id
    WHERE o.slug = %(offer)s
"""
# Every ledger account of the bench database: cached balance and hold against its entries (all,
# and those of sale bookings) and against the sales it should reflect.
POST_ACCOUNTS = """
    SELECT coalesce(g.slug, 'exchange'), a.kind, a.balance, a.held, a.credit_limit,
           (SELECT coalesce(sum(e.amount), 0) FROM billing_ledgerentry e WHERE e.account_id = a.id),
           (SELECT coalesce(sum(e.amount), 0) FROM billing_ledgerentry e
              JOIN billing_ledgertransaction t ON t.id = e.transaction_id
              WHERE e.account_id = a.id AND t.kind = 'sale'),
           CASE a.kind
             WHEN 'buyer_balance' THEN -(SELECT coalesce(sum(s.price), 0) FROM exchange_sale s
                                         WHERE s.organization_id = a.organization_id AND s.status = 'sold')
             WHEN 'seller_payable' THEN (SELECT coalesce(sum(s.payout), 0) FROM exchange_sale s
                                         WHERE s.seller_id = a.organization_id AND s.status = 'sold')
             WHEN 'platform_revenue' THEN (SELECT coalesce(sum(s.margin), 0) FROM exchange_sale s
                                           WHERE s.status = 'sold')
             ELSE 0 END,
           (SELECT coalesce(sum(s.price), 0) FROM exchange_sale s
              WHERE s.organization_id = a.organization_id AND s.status = 'reserved' AND a.kind = 'buyer_balance')
    FROM billing_ledgeraccount a LEFT JOIN accounts_organization g ON g.id = a.organization_id ORDER BY a.id
"""
POST_BOOKINGS = """
    SELECT (SELECT count(*) FROM exchange_sale WHERE status = 'sold'),
           (SELECT count(*) FROM billing_ledgertransaction WHERE kind = 'sale'),
           (SELECT count(*) FROM exchange_sale s WHERE s.status = 'sold' AND NOT EXISTS (
               SELECT 1 FROM billing_ledgertransaction t WHERE t.idempotency_key = 'sale:' || s.public_id)),
           (SELECT count(*) FROM exchange_sale s JOIN exchange_bid b ON b.id = s.bid_id
              WHERE s.status = 'sold' AND b.status <> 'won')
"""
POST_DELIVERIES = """
    SELECT l.public_id, sum(a.latency_ms), count(*) FROM exchange_deliveryattempt a
    JOIN exchange_sale s ON s.id = a.sale_id JOIN leads_lead l ON l.id = s.lead_id
    JOIN exchange_offer o ON o.id = s.offer_id WHERE o.slug = %(offer)s GROUP BY 1
"""


def post_read(database_url: str, keyed: list[list[Any]], result: dict[str, Any]) -> dict[str, Any]:
    """After the post scenario (the server drained): each measured post's time without its
    delivery (the exchange's own measure of the buyer's answer, stored on the delivery attempt),
    and whether caps and money are exact — every post answered sold is one sold lead, one sale and
    one ledger booking; every cap counter is its contract's sales, within its cap; every account's
    balance is the sum of its entries and the sales it should reflect, no hold left, no buyer
    below its credit limit. ``keyed``: [lead id, latency ms, measured] of every good answer (a post
    the generator gave up on may still have been sold: the database is the reference)."""
    problems: list[str] = []
    offer = {"offer": POST_OFFER}
    with psycopg.connect(database_url.replace("pgsql://", "postgresql://", 1), connect_timeout=10) as conn:
        statuses = dict(conn.execute(POST_LEADS, offer).fetchall())
        sales = conn.execute(POST_SALES, offer).fetchall()
        counters = {(slug, period): (count, spend) for slug, period, count, spend in conn.execute(POST_COUNTERS, offer)}
        accounts = conn.execute(POST_ACCOUNTS).fetchall()
        sold, booked, unbooked, to_stand_in = conn.execute(POST_BOOKINGS).fetchone() or (0, 0, 0, 0)
        deliveries = {lead: (float(ms), n) for lead, ms, n in conn.execute(POST_DELIVERIES, offer)}
    leads = dict(Counter(statuses.values()))
    not_sold = sum(1 for lead, _, _ in keyed if statuses.get(lead) != "sold")
    if not_sold:
        problems.append(f"{not_sold} posts answered sold are not sold leads")
    if sold != leads.get("sold", 0) or booked != sold or unbooked:
        problems.append(
            f"{leads.get('sold', 0)} sold leads, {sold} sales sold, {booked} sale bookings, {unbooked} unbooked"
        )
    contracts = []
    for slug, cap_day, n_sold, n_reserved, spend, won in sales:
        count, counted = counters.get((slug, "day"), (0, 0))
        if (count, counted) != (n_sold + n_reserved, spend):
            problems.append(f"{slug}: counter day {count} / {counted}, its sales {n_sold + n_reserved} / {spend}")
        if n_reserved:
            problems.append(f"{slug}: {n_reserved} sales still reserved")
        if cap_day is not None and n_sold > cap_day:
            problems.append(f"{slug}: {n_sold} sold past its cap of {cap_day}")
        contracts.append({"contract": slug, "cap_day": cap_day, "won_at_ping": won, "sold": n_sold})
    for owner, kind, balance, held, credit, ledger, from_sales, expected, reserved in accounts:
        if balance != ledger:
            problems.append(f"{owner} {kind}: balance {balance}, its entries sum to {ledger}")
        if from_sales != expected:
            problems.append(f"{owner} {kind}: sale bookings {from_sales}, its sales {expected}")
        if held != reserved:
            problems.append(f"{owner} {kind}: held {held}, its reserved sales {reserved}")
        if kind == "buyer_balance" and balance < -credit:
            problems.append(f"{owner}: balance {balance} below its credit limit {credit}")
    lean = next((a for a in accounts if a[0] == "post-lean" and a[1] == "buyer_balance"), None)
    measured = [(lead, latency) for lead, latency, flag in keyed if flag]
    missing = sum(1 for lead, _ in measured if lead not in deliveries)
    if missing:
        problems.append(f"{missing} measured posts have no delivery stored")
    delivery_ms = [deliveries[lead][0] for lead, _ in measured if lead in deliveries]
    own = _percentiles([latency - deliveries[lead][0] for lead, latency in measured if lead in deliveries])
    clean = not (problems or result["errors"] or result["non_200"] or result["bad_answers"])
    attempts = sum(n for _, n in deliveries.values())
    return {
        "answered_sold": len(keyed),
        "leads": leads,
        "sold": sold,
        "booked": booked,
        "sold_to_a_stand_in": to_stand_in,
        "contracts": contracts,
        "lean_balance": None if lean is None else str(lean[2]),
        "delivery_ms": _percentiles(delivery_ms),
        "post_minus_delivery_ms": own,
        "deliveries_per_post": round(attempts / len(deliveries), 2) if deliveries else None,
        "exact": not problems,
        "problems": problems[:20],
        "target_met": clean and own["p99"] is not None and own["p99"] <= TARGET_POST_P99_MS,
    }


def post_lines(report: dict[str, Any]) -> list[str]:
    post = report.get("post")
    result = next((r for r in report["results"] if r["scenario"] == POST), None)
    if not post or result is None:
        return []
    own, delivery = post["post_minus_delivery_ms"], post["delivery_ms"]
    hello = next((r for r in report["results"] if r["scenario"] == BASELINE), None)
    cpu = (result.get("cpu") or {}).get("gunicorn_ms_per_request")
    base_cpu = ((hello or {}).get("cpu") or {}).get("gunicorn_ms_per_request")
    met = {True: "met", False: "**NOT met**"}
    seen = result["latency_ms"]
    lines = [
        "Market `tests/bench/market_post.yaml`: the pings were answered before the run (not measured); each "
        "post is delivered to its buyer's endpoint (`tests/bench/buyers.py`), which accepts at once",
        f"{POST} ({result['offered_rate']:g}/s): p50 {seen['p50']} ms, p99 {seen['p99']} ms as the seller sees it; "
        f"the buyer's delivery as the exchange measured it p50 {delivery['p50']} ms, "
        f"p99 {delivery['p99']} ms; **each post less its own delivery: p50 {own['p50']} ms, p99 {own['p99']} ms** "
        f"(target p99 ≤ {TARGET_POST_P99_MS} ms: {met[bool(post['target_met'])]})",
    ]
    if cpu is not None:
        lines.append(
            f"{POST}: gunicorn {cpu:g} ms of CPU per post"
            + (f", {cpu / base_cpu:.1f}× {BASELINE}'s {base_cpu:g} ms in the same run" if base_cpu else "")
        )
    lines.append(
        f"After the run: {post['answered_sold']} posts answered sold; the leads stored {post['leads']}, "
        f"{post['sold']} sales sold and {post['booked']} sale bookings; "
        f"{post['sold_to_a_stand_in']} sold to a stand-in bid after the winner was refused; "
        + ", ".join(
            f"{c['contract']} won {c['won_at_ping']} at ping, sold {c['sold']}"
            + (f" (cap {c['cap_day']} a day)" if c["cap_day"] and c["cap_day"] < 1000 else "")
            for c in post["contracts"]
            if c["contract"] in ("post-capped-c", "post-lean-c")
        )
        + f" (post-lean's balance now {post['lean_balance']})"
    )
    lines.append(
        "Caps and money: **exact** (cap counters = sales, balances = ledger entries = sales, no hold left, "
        "no buyer under its credit limit)"
        if post["exact"]
        else "Caps and money: **NOT exact**: " + "; ".join(post["problems"])
    )
    return lines


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


def rtb_summary(results: list[dict[str, Any]], market: dict[str, Any]) -> dict[str, Any] | None:
    """The fan-out against the sequential ping tree, and against the issue's targets."""
    by_name = {r["scenario"]: r for r in results}
    rtb, tree = by_name.get(RTB), by_name.get(TREE)
    if rtb is None and tree is None:
        return None
    deadline = market["ping_timeout_ms"]
    summary: dict[str, Any] = {
        **market,
        "buyer_latency_ms": BUYER_LATENCY_MS,
        "targets": {
            "p50_minus_buyers_ms_at_most": TARGET_P50_OVER_BUYERS_MS,
            "p99_ms_at_most": deadline + TARGET_P99_OVER_DEADLINE_MS,
        },
    }
    if rtb is not None and tree is not None:
        summary["rtb_over_tree"] = {
            q: (
                round(rtb["latency_ms"][q] / tree["latency_ms"][q], 2)
                if rtb["latency_ms"][q] and tree["latency_ms"][q]
                else None
            )
            for q in ("p50", "p99")
        }
    if rtb is not None:
        p50, p99 = rtb["latency_ms"]["p50"], rtb["latency_ms"]["p99"]
        clean = not (rtb["errors"] or rtb["non_200"] or rtb["bad_answers"])
        summary["rtb_rate"] = rtb["offered_rate"]
        summary["p50_minus_buyers_ms"] = None if p50 is None else round(p50 - BUYER_LATENCY_MS, 1)
        summary["p99_minus_deadline_ms"] = None if p99 is None else round(p99 - deadline, 1)
        summary["p50_target_met"] = clean and p50 is not None and p50 - BUYER_LATENCY_MS <= TARGET_P50_OVER_BUYERS_MS
        summary["p99_target_met"] = clean and p99 is not None and p99 <= deadline + TARGET_P99_OVER_DEADLINE_MS
    return summary


def rtb_lines(report: dict[str, Any]) -> list[str]:
    summary, stored = report.get("rtb"), report.get("rtb_pings")
    if not summary:
        return []
    by_name = {r["scenario"]: r for r in report["results"]}
    rtb, tree = by_name.get(RTB), by_name.get(TREE)
    met = {True: "met", False: "**NOT met**"}
    lines = [
        f"Market `{MARKET_RTB.relative_to(ROOT)}`: {summary['internal_contracts']} internal + "
        f"{summary['rtb_contracts']} RTB contracts; the RTB buyers (`tests/bench/buyers.py`, a process of "
        f"their own on the same machine) answer in {summary['buyer_latency_ms']:g} ms; ping deadline "
        f"{summary['ping_timeout_ms']} ms, RTB timeout {', '.join(map(str, summary['rtb_timeout_ms']))} ms",
    ]
    if rtb is not None and tree is not None and summary.get("rtb_over_tree"):
        ratio = summary["rtb_over_tree"]

        def shown(value: Any) -> str:
            return "–" if value is None else f"{value:g}"

        lines.append(
            f"{RTB} ({rtb['offered_rate']:g}/s) / {TREE} ({tree['offered_rate']:g}/s): "
            + ", ".join(
                f"{q} {shown(rtb['latency_ms'][q])} / {shown(tree['latency_ms'][q])} ms = × {shown(ratio[q])}"
                for q in ("p50", "p99")
            )
            + (f" (the sequential tree takes {1 / ratio['p50']:.1f}× as long at the median)" if ratio["p50"] else "")
        )
    if rtb is not None and summary.get("p50_minus_buyers_ms") is not None:
        lines.append(
            f"{RTB} p50 − the buyers' {summary['buyer_latency_ms']:g} ms = {summary['p50_minus_buyers_ms']} ms "
            f"(target ≤ {TARGET_P50_OVER_BUYERS_MS} ms): {met[summary['p50_target_met']]} at "
            f"{summary['rtb_rate']:g}/s offered"
        )
        lines.append(
            f"{RTB} p99 = {rtb['latency_ms']['p99']} ms (target ≤ deadline + {TARGET_P99_OVER_DEADLINE_MS} ms = "
            f"{summary['targets']['p99_ms_at_most']} ms): {met[summary['p99_target_met']]} at "
            f"{summary['rtb_rate']:g}/s offered"
        )
    ping = by_name.get("ping")
    if (
        rtb is not None
        and ping is not None
        and rtb["offered_rate"] == ping["offered_rate"]
        and not rtb["saturated"]
        and not ping["saturated"]
        and rtb["latency_ms"]["p50"]
        and ping["latency_ms"]["p50"]
    ):
        lines.append(
            f"{RTB} p50 − ping p50 (30 internal contracts, {ping['offered_rate']:g}/s) = "
            f"{rtb['latency_ms']['p50'] - ping['latency_ms']['p50']:.1f} ms: what asking the RTB buyers adds to a "
            f"ping, their {summary['buyer_latency_ms']:g} ms included"
        )
    for result in (r for r in (rtb, tree) if r is not None and r.get("buyers")):
        buyers, late = result["buyers"], result["buyers"]["late_ms"]
        lines.append(
            f"{result['scenario']}: the simulated buyers got {buyers['total']} bid requests "
            f"({buyers['per_request']} per request sent; {buyers['answers']}); their own lateness p99 "
            f"{late['p99'] or 0:.1f} ms, max {late['max'] or 0:.1f} ms; at most {buyers['max_in_flight']} in flight"
            if buyers["total"]
            else f"{result['scenario']}: the simulated buyers got NO bid request"
        )
    if tree is not None and tree.get("tallies"):
        lines.append(f"{TREE} winners: {tree['tallies']}")
    if stored:
        share = f"{100 * stored['won_by_rtb'] / stored['pings']:.0f} %" if stored["pings"] else "–"
        lat = stored["server_latency_ms"]
        lines.append(
            f"{RTB} pings stored (warmup included): {stored['pings']}, {stored['accepted']} accepted, "
            f"{stored['won_by_rtb']} won by an RTB buyer ({share}); the server's own ping time p50 "
            f"{lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms"
        )
        for contract, reasons in stored["rtb_waterfall"].items():
            lines.append(
                f"{contract} in the waterfalls: "
                + ", ".join(
                    f"{reason} {r['count']} (p50 {r['latency_ms_p50']} ms, p99 {r['latency_ms_p99']} ms)"
                    for reason, r in reasons.items()
                )
            )
        lines.append("RTB contracts paused by the circuit breaker: " + (", ".join(stored["rtb_paused"]) or "none"))
    return lines


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


def cpu_text(cpu: dict[str, float]) -> str:
    cores = ", ".join(
        f"{name.removesuffix('_cores').replace('rest', 'the rest')} {value:g}"
        for name, value in cpu.items()
        if name.endswith("_cores")
    )
    per_request = cpu.get("gunicorn_ms_per_request")
    return f"the machine {cpu['box_busy_percent']:g} % busy; cores used by {cores}" + (
        f"; gunicorn {per_request:g} ms of CPU per request" if per_request is not None else ""
    )


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
        "- **The load generator, gunicorn, PostgreSQL, Redis"
        + (" and the simulated buyers" if report.get("rtb") or report.get("post") else "")
        + f" share the machine's {m['nproc']} CPUs.**"
        + (
            f" The generator and the buyers run at nice {EXTERNALS_NICE} (`--externals-first`), ahead of the "
            "exchange, standing in for machines of their own."
            if p.get("externals_first")
            else ""
        ),
        "- Markets: `tests/bench/market.yaml` (ping) — one offer (exclusive, first price), 30 buyers with one "
        "internally priced contract each (18 with filters), one seller"
        + (
            "; `tests/bench/market_rtb.yaml` (ping-rtb, ping-tree) — one offer, 25 internally priced "
            "contracts and 5 RTB buyers, one seller"
            if report.get("rtb")
            else ""
        )
        + (
            "; `tests/bench/market_post.yaml` (post) — one offer, 8 buyers whose contracts are delivered to their "
            "endpoints, one seller"
            if report.get("post")
            else ""
        ),
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
            + (f"; CPU: {cpu_text(result['cpu'])}" if result.get("cpu") else "")
            + (
                f"; the server took {result['settle_seconds']:g} s to drain its backlog after it"
                if result.get("settle_seconds", 0) > SETTLE_QUIET + 1
                else ""
            )
        )
    if report.get("rtb"):
        lines += ["", "## RTB: the parallel fan-out against the sequential ping tree", ""]
        lines += [f"- {line}" for line in rtb_lines(report)]
    if report.get("post"):
        lines += ["", "## The post: its own time, and caps and money after the run", ""]
        lines += [f"- {line}" for line in post_lines(report)]
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
    parser.add_argument(
        "--rate", type=float, default=200, help="offered requests/s of a scenario given without :RATE (default 200)"
    )
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds per scenario (default 20)")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds first (default 2)")
    parser.add_argument(
        "--scenarios",
        default=DEFAULT_SCENARIOS,
        help=(
            f"comma-separated, in order, each NAME or NAME:RATE (have: {', '.join(SCENARIOS)}; "
            f"default {DEFAULT_SCENARIOS})"
        ),
    )
    parser.add_argument("--workers", type=int, default=WORKERS, help=f"gunicorn workers (default {WORKERS})")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"threads per worker (default {THREADS})")
    parser.add_argument(
        "--externals-first",
        action="store_true",
        help="run the load generator and the simulated buyers at a higher priority (nice -5) than the exchange, "
        "standing in for machines of their own (needs the right to lower a nice value)",
    )
    parser.add_argument("--max-in-flight", type=int, default=2000, help="beyond this, a request is dropped")
    parser.add_argument("--connections", type=int, default=256, help="client connection pool size")
    parser.add_argument("--request-timeout", type=float, default=10, help="seconds; a slower answer is an error")
    parser.add_argument("--timeout", type=float, default=None, help="hard limit for the whole run, seconds")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where the report goes")
    parser.add_argument("--name", default="latest", help="the report's file name: NAME.json and NAME.md")
    parser.add_argument(
        "--database",
        default=BENCH_DB,
        help=f"the bench database's name on DATABASE_URL's server, dropped and created again (default {BENCH_DB})",
    )
    return parser.parse_args(argv)


def _alarm(signum: int, frame: Any) -> None:
    raise BenchTimeout("the run took longer than its hard time limit")


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    chosen = parse_scenarios(args.scenarios, args.rate)
    per_scenario = args.warmup + args.seconds + args.request_timeout + 5
    hard_limit = args.timeout or 180 + len(chosen) * (per_scenario + SETTLE_MAX)
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGTERM, _terminate)
    signal.alarm(int(hard_limit))
    if args.externals_first:
        os.setpriority(os.PRIO_PROCESS, 0, EXTERNALS_NICE)  # this process: the load generator

    database_url = with_database(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, args.database)
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
    buyers_log = args.out / "buyers.log"
    server: subprocess.Popen[bytes] | None = None
    buyers: subprocess.Popen[bytes] | None = None
    buyers_url = ""
    rtb_market: dict[str, Any] | None = None
    rtb_pings: dict[str, Any] | None = None
    post: dict[str, Any] | None = None
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        log(f"database {args.database} (recreated), Redis db {BENCH_REDIS_DB} (flushed)")
        pg_version = database_recreate(database_url)
        redis_version = redis_flush(redis_url)
        manage(env, "migrate", "--noinput", "-v0", timeout=300)
        templates = {s.market for s, _ in chosen if s.buyers}  # market files naming the buyers' URL
        if templates:
            buyers_url = f"http://127.0.0.1:{free_port()}"
            log(f"simulated buyers on {buyers_url} (RTB {BUYER_LATENCY_MS:g} ms, deliveries at once), log {buyers_log}")
            buyers = buyers_start(int(buyers_url.rsplit(":", 1)[1]), buyers_log)
            if args.externals_first:
                os.setpriority(os.PRIO_PROCESS, buyers.pid, EXTERNALS_NICE)
            buyers_wait(buyers, buyers_url, buyers_log)
        for market in dict.fromkeys(s.market for s, _ in chosen if s.market is not None):
            path = market_render(market, buyers_url, args.out) if market in templates else market
            if market == MARKET_RTB:
                rtb_market = market_timeouts(path)
            loaded = json.loads(manage(env, "load_market", str(path), timeout=120))
            counts = ", ".join(f"{len(loaded.get(k) or ())} {k}" for k in ("offers", "organizations", "contracts"))
            log(f"loaded {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {counts}")
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log(f"gunicorn on {base_url}: {args.workers} workers × {args.threads} threads (gthread), log {logfile}")
        server = gunicorn_start(env, port, logfile, workers=args.workers, threads=args.threads)
        gunicorn_wait(server, base_url, logfile)

        def cpu_groups() -> dict[str, list[int]]:
            assert server is not None
            groups = {
                "gunicorn": [server.pid, *_children(server.pid)],
                "postgres": postgres_backends(database_url),
                "generator": [os.getpid()],
            }
            if buyers is not None:
                groups["buyers"] = [buyers.pid]
            return groups

        def activity() -> float:
            """gunicorn's CPU seconds so far, plus the bid requests and deliveries the buyers have had."""
            assert server is not None
            cpu = sum(_process_cpu(pid) for pid in [server.pid, *_children(server.pid)])
            if buyers is None:
                return cpu
            stats = buyers_stats(buyers_url)
            return cpu + stats["total"] + sum(stats["deliveries"].values())

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
            bodies = None
            if scenario.pinged is not None:
                bodies = follow_ups(base_url, scenario, loadgen.request_count(spec))
                server_settle(base_url, activity)
            log(f"{scenario.name}: {rate:g}/s to {scenario.path} for {args.warmup:g} + {args.seconds:g} s")
            if buyers is not None:
                buyers_stats(buyers_url, reset=True)
            cpu_before = cpu_snapshot(cpu_groups())
            result = uvloop.run(
                asyncio.wait_for(loadgen.run(base_url, scenario, spec, bodies=bodies), timeout=per_scenario + 10)
            )
            result["cpu"] = cpu = cpu_used(cpu_before, cpu_snapshot(cpu_groups()))
            sent = math.ceil(rate * (args.warmup + args.seconds)) - result["error_kinds"].get("dropped", 0)
            if cpu and sent:
                # gunicorn's CPU per request sent (the warmup's included, as in the CPU window).
                cpu["gunicorn_ms_per_request"] = round(1000 * cpu["gunicorn_cores"] * cpu["seconds"] / sent, 1)
            if server.poll() is not None:
                raise BenchError(f"gunicorn died during {scenario.name}:\n{logfile.read_text()[-3000:]}")
            # A saturated scenario leaves requests queued in gunicorn, which it still works through
            # (and which still call the buyers): wait for them before the next scenario and before
            # counting the buyers' requests.
            result["settle_seconds"] = server_settle(base_url, activity)
            if result["settle_seconds"] > SETTLE_QUIET + 1:
                log(f"{scenario.name}: the server drained its backlog in {result['settle_seconds']:g} s")
            if buyers is not None:
                if buyers.poll() is not None:
                    tail = buyers_log.read_text()[-3000:]
                    raise BenchError(f"the buyer simulator died during {scenario.name}:\n{tail}")
                stats = buyers_stats(buyers_url)
                stats["per_request"] = round(stats["total"] / sent, 2) if sent else None
                result["buyers"] = stats
            if scenario.name == POST:
                post = post_read(database_url, result.pop("keyed"), result)
            results.append(result)
            time.sleep(1)  # let the server settle between scenarios
        if rtb_market is not None and any(s.name == RTB for s, _ in chosen):
            rtb_pings = rtb_pings_read(database_url)
    finally:
        if server is not None:
            gunicorn_stop(server)
            log("gunicorn stopped")
        if buyers is not None:
            gunicorn_stop(buyers)  # the same: SIGTERM to its own session, then SIGKILL
            log("buyer simulator stopped")
        signal.alarm(0)

    report: dict[str, Any] = {
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
            "workers": args.workers,
            "threads": args.threads,
            "externals_first": args.externals_first,
            "worker_class": "gthread",
            "database": args.database,
            "redis_db": BENCH_REDIS_DB,
        },
        "results": results,
        "ratios_to_baseline": ratios(results),
        "rtb": rtb_summary(results, rtb_market) if rtb_market is not None else None,
        "rtb_pings": rtb_pings,
        "post": post,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    json_path, md_path = args.out / f"{args.name}.json", args.out / f"{args.name}.md"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    md_path.write_text(markdown(report))
    print()
    print(table_text(results))
    for result in results:
        if result.get("cpu"):
            print(f"{result['scenario']} CPU: {cpu_text(result['cpu'])}")
    for line in ratio_lines(report) + rtb_lines(report) + post_lines(report):
        print(line.replace("**", ""))
    print(f"\n{report['machine']['nproc']} CPUs shared by the generator, gunicorn, PostgreSQL, Redis and the buyers.")
    print(f"Written: {json_path}, {md_path} ({report['wall_seconds']} s)")
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
