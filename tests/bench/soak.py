#!/usr/bin/env python
"""Gavel's soak: mixed traffic at a steady rate for a long time, watching for growth.

    python tests/bench/soak.py [--minutes 30] [--rate 20] [--sample-seconds 30] [--name soak-DATE]

Not a test, and not part of ``make test``. It sets up its own world like ``run.py`` (database
``gavel_soak`` on the server of ``DATABASE_URL``, dropped and created; Redis database
``--redis-db`` on the server of ``REDIS_URL``, flushed), loads the benchmark's market with a
seller who can sign in and buyers with keys and a return window, starts gunicorn (run.py's
production layout) and one Celery worker, then for ``--minutes`` offers ``--rate`` operations a
second, mixed as ``--mix`` says: pings (each accepted one posted: a sale), returns of bought leads
(by their buyer's key), and portal reads (the seller's portal home and leads page, signed in; a
buyer's purchase list over the API). Every ``--sample-seconds`` it samples: each gunicorn
worker's and the Celery worker's RSS, the database's connections (``pg_stat_activity``), Redis's
``used_memory``, the Celery queue's length, and the interval's operations, errors and latency. It
prints the table as it goes and writes ``results/NAME.md``: flat columns are the pass mark.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: make ``tests.bench`` importable

import psycopg  # noqa: E402
import redis  # noqa: E402
import yaml  # noqa: E402
from psycopg import sql  # noqa: E402

from tests.bench.run import (  # noqa: E402
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    BenchError,
    _children,
    free_port,
    gunicorn_start,
    gunicorn_stop,
    gunicorn_wait,
    log,
    manage,
    redis_flush,
    with_database,
    with_redis_db,
)
from tests.bench.scenarios import MARKET, SELLER_KEY, ping_body  # noqa: E402

HERE = ROOT / "tests" / "bench"
SOAK_DB = "gavel_soak"
PASSWORD = "soak-password-1"  # noqa: S105 - a throwaway user of the throwaway soak database
SELLER_EMAIL = "seller@soak.test"
QUEUE = "gavel"  # settings.CELERY_TASK_DEFAULT_QUEUE
WORKERS, THREADS = 2, 4


def buyer_key(slug: str) -> str:
    return f"gvl_soak_{slug.replace('-', '_')}".ljust(29, "0")


def market_render(out: Path) -> tuple[Path, list[str]]:
    """The benchmark's market, with a seller user who can sign in to the portal, a purchases key
    for each buyer and a 72-hour return window on each contract."""
    data = yaml.safe_load(MARKET.read_text())
    buyers = []
    for org in data["organizations"]:
        if "seller" in org["roles"]:
            org["users"] = [{"email": SELLER_EMAIL, "password": PASSWORD, "role": "owner"}]
        if "buyer" in org["roles"]:
            org["api_keys"] = [{"name": "soak", "scopes": ["purchases"], "key": buyer_key(org["slug"])}]
            org["rate_limit_per_second"] = 100000
            for contract in org.get("contracts", []):
                contract["return_window_hours"] = 72
            buyers.append(org["slug"])
    path = out / "soak-market.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, buyers


def database_recreate(url: str, name: str) -> None:
    admin = with_database(url, "postgres").replace("pgsql://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def celery_start(env: dict[str, str], logfile: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "celery", "-A", "exchange", "worker", "--pool", "solo", "-Q", QUEUE]
    with logfile.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [*command, "--loglevel", "WARNING", "--hostname", f"soak-{os.getpid()}@localhost"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class Traffic:
    """The operations, each a call on a thread of the pool; counts per sampling interval."""

    def __init__(self, base_url: str, buyers: list[str]) -> None:
        self.base_url = base_url
        self.buyers = buyers
        self.lock = threading.Lock()
        self.n = 0
        self.returned: set[str] = set()
        self.counts: dict[str, int] = {}
        self.outcomes: dict[str, int] = {}  # the whole run's answers by kind and outcome
        self.errors: dict[str, int] = {}
        self.latencies: list[float] = []
        self.portal = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def _call(self, method: str, path: str, body: Any = None, key: str | None = None, opener: Any = None) -> Any:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        started = time.monotonic()
        try:
            with (opener.open if opener else urllib.request.urlopen)(request, timeout=10) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
        except (urllib.error.URLError, OSError):  # refused, reset or timed out: counted as status 0
            status, text = 0, b""
        with self.lock:
            self.latencies.append(time.monotonic() - started)
        return status, text

    def _count(self, kind: str, ok: bool, what: str = "") -> None:
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.outcomes[f"{kind} {what}"] = self.outcomes.get(f"{kind} {what}", 0) + 1
            if not ok:
                label = f"{kind}:{what}"
                self.errors[label] = self.errors.get(label, 0) + 1

    def sign_in(self) -> None:
        status, page = self._call("GET", "/login/", opener=self.portal)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if status != 200 or token is None:
            raise BenchError(f"the login page answered {status}")
        form = f"username={SELLER_EMAIL}&password={PASSWORD}&csrfmiddlewaretoken={token.group(1).decode()}"
        request = urllib.request.Request(
            self.base_url + "/login/",
            data=form.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Referer": self.base_url + "/login/"},
        )
        with self.portal.open(request, timeout=10) as response:
            if "/login/" in response.geturl():
                raise BenchError("the soak seller could not sign in")

    def sale(self) -> None:
        with self.lock:
            self.n += 1
            n = self.n
        status, text = self._call("POST", "/api/v1/ping", ping_body(n, consumer="soak"), SELLER_KEY)
        answer = json.loads(text) if status == 200 else {}
        if answer.get("status") != "accepted":
            self._count("ping", status == 200, str(status))
            return
        self._count("ping", True, "accepted")
        ping = json.loads(ping_body(n, consumer="soak"))
        lead = {**ping["lead"], "email": f"soak.{n}@example.com", "phone": f"+1{2015550000 + n}"}
        consent = {"text": "I agree to be contacted.", "captured_at": "2026-11-22T10:00:00Z", "ip": "203.0.113.9"}
        body = {"ping_id": answer["ping_id"], "lead": lead, "consent": consent}
        status, text = self._call("POST", "/api/v1/post", body, SELLER_KEY)
        answer = json.loads(text) if text.startswith(b"{") else {}
        posted = answer.get("status") if status == 200 else (answer.get("error") or {}).get("code")
        self._count("post", status == 200 and posted in ("sold", "pending", "unsold"), f"{status}:{posted}")

    def give_back(self) -> None:
        with self.lock:
            slug = self.buyers[self.n % len(self.buyers)]
        status, text = self._call("GET", "/api/v1/purchases?limit=20", key=buyer_key(slug))
        if status != 200:
            self._count("return", False, f"list:{status}")
            return
        with self.lock:
            todo = [p["sale_id"] for p in json.loads(text)["results"] if p["sale_id"] not in self.returned]
            if todo:
                self.returned.add(todo[0])
        if not todo:
            self._count("return", True, "nothing-to-return")  # the buyer's purchase list was the read
            return
        body = {"reason": "bad_phone", "note": "soak"}
        status, _ = self._call("POST", f"/api/v1/purchases/{todo[0]}/return", body, buyer_key(slug))
        self._count("return", status in (201, 422), str(status))  # 422: outside the contract's policy

    def read(self) -> None:
        with self.lock:
            self.n += 1
            n = self.n
        path = ("/portal/", "/portal/leads/")[n % 2]
        status, _ = self._call("GET", path, opener=self.portal)
        self._count("portal", status == 200, f"{path} {status}")

    def take(self) -> dict[str, Any]:
        with self.lock:
            counts, errors, latencies = self.counts, self.errors, sorted(self.latencies)
            self.counts, self.errors, self.latencies = {}, {}, []
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else None
        return {"ops": counts, "errors": errors, "p99_ms": round(p99, 1) if p99 is not None else None}


def sample(server: subprocess.Popen[bytes], worker: subprocess.Popen[bytes], database_url: str, redis_url: str) -> dict:
    workers = sorted(_children(server.pid))
    try:  # PostgreSQL may be restarting (tests/faults/drill_postgres_restart.sh): no figure then
        with psycopg.connect(database_url.replace("pgsql://", "postgresql://", 1), connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
    except psycopg.OperationalError:
        row = None
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        memory = client.info("memory")["used_memory"]
        queue = client.llen(QUEUE)
    finally:
        client.close()
    return {
        "rss_mb": [rss_mb(pid) for pid in workers],
        "celery_rss_mb": rss_mb(worker.pid),
        "pg_connections": int(row[0]) if row else None,
        "redis_mb": round(memory / 1024 / 1024, 2),
        "queue": queue,
    }


COLUMNS = (
    "| t (s) | ops (ping/post/return/portal) | errors | p99 ms | gunicorn RSS MB | Celery RSS MB | PG conns "
    "| Redis MB | queue |"
)


def row(t: float, s: dict[str, Any]) -> str:
    ops = "/".join(str(s["ops"].get(k, 0)) for k in ("ping", "post", "return", "portal"))
    errors = sum(s["errors"].values())
    rss = " ".join(f"{r:g}" for r in s["rss_mb"] if r is not None)
    return (
        f"| {t:.0f} | {ops} | {errors} | {s['p99_ms']} | {rss} | {s['celery_rss_mb']} | {s['pg_connections']} | "
        f"{s['redis_mb']} | {s['queue']} |"
    )


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=20.0, help="operations a second, all kinds together")
    parser.add_argument("--mix", default="sale:6,return:1,read:3", help="weights of sale, return and read")
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument("--database", default=SOAK_DB)
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--name", default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    return parser.parse_args(argv)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    signal.signal(signal.SIGTERM, _terminate)
    name = args.name or f"soak-{dt.datetime.now(dt.UTC).strftime('%Y%m%d-%H%M')}"
    database_url = with_database(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, args.database)
    redis_url = with_redis_db(os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL, args.redis_db)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEBUG": "1",
        "GAVEL_ALLOW_PRIVATE_URLS": "1",
        "DJANGO_SETTINGS_MODULE": "tests.bench.settings",
        "PYTHONUNBUFFERED": "1",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    weights = {k: float(v) for k, v in (part.split(":") for part in args.mix.split(","))}
    server = worker = None
    traffic: Traffic | None = None
    lines: list[str] = []
    samples: list[tuple[float, dict[str, Any]]] = []
    try:
        log(f"database {args.database} (recreated), Redis db {args.redis_db} (flushed)")
        database_recreate(database_url, args.database)
        redis_flush(redis_url)
        manage(env, "migrate", "--noinput", "-v0", timeout=300)
        work = Path(tempfile.mkdtemp(prefix="gavel-soak-"))  # the market file and the servers' logs
        log(f"market file and logs in {work}")
        market, buyers = market_render(work)
        manage(env, "load_market", str(market), timeout=120)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server = gunicorn_start(env, port, work / "gunicorn.log", workers=WORKERS, threads=THREADS)
        gunicorn_wait(server, base_url, work / "gunicorn.log")
        worker = celery_start(env, work / "celery.log")
        traffic = Traffic(base_url, buyers)
        traffic.sign_in()
        plan = [kind for kind, weight in weights.items() for _ in range(int(weight))]
        calls = {"sale": traffic.sale, "return": traffic.give_back, "read": traffic.read}
        log(
            f"{args.rate:g} operations/s ({args.mix}) for {args.minutes:g} min, sampled every {args.sample_seconds:g} s"
        )
        print(COLUMNS + "\n|" + "---|" * 9, flush=True)
        begun = time.monotonic()
        end = begun + args.minutes * 60
        next_sample = time.monotonic() + args.sample_seconds
        i = 0
        with ThreadPoolExecutor(max_workers=16) as pool:
            tick = time.monotonic()
            while time.monotonic() < end:
                pool.submit(calls[plan[i % len(plan)]])
                i += 1
                tick += 1 / args.rate
                pause = tick - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # the steady rate: open loop, one operation every 1/rate s
                if time.monotonic() >= next_sample:
                    next_sample += args.sample_seconds
                    if server.poll() is not None or worker.poll() is not None:
                        raise BenchError(f"gunicorn or the Celery worker died: see the logs in {work}")
                    taken = {**traffic.take(), **sample(server, worker, database_url, redis_url)}
                    samples.append((time.monotonic() - begun, taken))
                    lines.append(row(time.monotonic() - begun, taken))
                    print(lines[-1], flush=True)
    finally:
        if server is not None:
            gunicorn_stop(server)
        if worker is not None:
            gunicorn_stop(worker)  # SIGTERM to its own session, then SIGKILL
    outcomes = dict(sorted(traffic.outcomes.items())) if traffic is not None else {}
    errors: dict[str, int] = {}
    for _, s in samples:
        for label, count in s["errors"].items():
            errors[label] = errors.get(label, 0) + count
    report = [
        f"# Soak {name}",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {args.minutes:g} min at {args.rate:g} operations/s "
        f"(mix {args.mix}), gunicorn {WORKERS} × {THREADS} threads, one Celery worker (solo), "
        f"{os.cpu_count()} CPUs shared with PostgreSQL and Redis. One row per {args.sample_seconds:g} s: "
        "the interval's operations, errors and p99, then the state at its end.",
        "",
        COLUMNS,
        "|" + "---|" * 9,
        *lines,
        "",
        f"Errors by kind: {json.dumps(errors) if errors else 'none'}.",
        "",
        f"Answers over the run, by operation and outcome: {json.dumps(outcomes)}.",
        "",
    ]
    path = args.out / f"{name}.md"
    path.write_text("\n".join(report))
    print(f"Written: {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        sys.exit(130)
