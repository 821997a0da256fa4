"""Two web nodes on one PostgreSQL and one Redis (docs/deployment.md, several nodes): two real
gunicorn instances of ``exchange.wsgi``, each on its own port, serve the test's database and
Redis. 200 posts split between them at once sell exactly a contract's daily cap, with the money
exact; a buyer's contract change made on one node reaches the other node's book within a second.

Each node is one gunicorn worker (its own process, so its own contract book) with a few threads;
the servers are the benchmark's (tests/bench/run.py), with the benchmark's settings (Django's
``DEBUG`` off, as in production). Their logs are in the test's tmp_path."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from django.conf import settings
from django.db import connection

from accounts.tenancy import market_scope
from contracts.models import CapCounter
from exchange.models import Sale
from tests.bench.run import gunicorn_start, gunicorn_stop, gunicorn_wait
from tests.exchange.builder import BUYER_KEY_PREFIX, SELLER_KEY, buyer, load, ping_body, post_body
from tests.ledger import ZERO, balance, held, ledger_is_consistent
from tests.waiting import free_port

pytestmark = [
    pytest.mark.django_db(transaction=True),  # committed: the servers read and write the same rows
    pytest.mark.slow,
    pytest.mark.skipif(not settings.REDIS_URL or connection.vendor != "postgresql", reason="Redis, PostgreSQL"),
]

THREADS = 4  # per node
CAP = 20
POSTS = 200
PRICE = Decimal("10.00")  # the seller's payout at the offer's 20 % margin: 8.00
BALANCE = Decimal("1000.00")  # enough for 100 leads: the cap, not the funds, stops the sales
BUYER_KEY = f"{BUYER_KEY_PREFIX}capped_000000"
CHANGE_WITHIN_S = 1.0


class Node:
    def __init__(self, name: str, process: Any, url: str, log: Path) -> None:
        self.name, self.process, self.url, self.log = name, process, url, log

    def log_tail(self) -> str:
        return f"--- {self.name} ({self.log}) ---\n" + self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def nodes(transactional_db: None, tmp_path: Path) -> Iterator[list[Node]]:
    """Two gunicorn instances on the test's database and Redis, stopped (always) at the end."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DEBUG": "1",  # the development secrets, as the test process has them; Django's DEBUG is off
        "GAVEL_ALLOW_PRIVATE_URLS": "1",  # the simulated buyer is on 127.0.0.1
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
    }
    started: list[Node] = []
    try:
        for name in ("a", "b"):
            port, log = free_port(), tmp_path / f"node-{name}.log"
            process = gunicorn_start(env, port, log, workers=1, threads=THREADS)
            started.append(Node(name, process, f"http://127.0.0.1:{port}", log))
        print("node logs:", *(n.log for n in started))  # shown with a failure
        for node in started:
            gunicorn_wait(node.process, node.url, node.log)
        yield started
    finally:
        for node in started:
            gunicorn_stop(node.process)


async def _send(session: aiohttp.ClientSession, method: str, url: str, body: Any, key: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with session.request(method, url, json=body, headers=headers) as response:
        text = await response.text()
        try:
            return response.status, await response.json(content_type=None)
        except ValueError:
            return response.status, text


def at_once(requests: list[tuple[str, str, Any]], key: str = SELLER_KEY) -> list[tuple[int, Any]]:
    """Send every (method, url, body) at once; the (status, answer) of each, in order."""

    async def run() -> list[tuple[int, Any]]:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            return list(await asyncio.gather(*(_send(session, m, u, b, key) for m, u, b in requests)))

    return asyncio.run(run())


def anonymous_ping(tag: str) -> dict[str, Any]:
    """A ping of no known consumer (no hashes: no buyer's dedup applies), its body unique by
    ``tag`` (an identical body within the bid lifetime gets the earlier answer)."""
    body = ping_body(0)
    del body["consumer"]
    body["tracking"] = {"sub_id1": tag}
    return body


def first_accepted_ping(node: Node, since: float, timeout: float = 10.0) -> float:
    """Ping ``node`` until one is accepted; the seconds from ``since`` (a perf_counter time) to
    that answer. Fails after ``timeout`` seconds."""

    async def run() -> float:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            deadline = since + timeout
            attempt = 0
            while time.perf_counter() < deadline:
                attempt += 1
                body = anonymous_ping(f"poll-{node.name}-{attempt}")
                status, answer = await _send(session, "POST", f"{node.url}/api/v1/ping", body, SELLER_KEY)
                assert status == 200, (status, answer)
                if answer["status"] == "accepted":
                    return time.perf_counter() - since
            raise AssertionError(f"node {node.name}: no ping accepted within {timeout:.0f} s of the change")

    return asyncio.run(run())


def midday_zone() -> str:
    """A time zone where it is about noon now: the buyer's day (its cap's period) does not end
    while the test runs, whenever it runs."""
    offset = 12 - dt.datetime.now(dt.UTC).hour  # -11 … +12 hours from UTC
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"  # the Etc zones' signs are POSIX's: inverted


def test_two_nodes_sell_exactly_the_cap_and_share_a_contract_change(nodes, buyers):
    a = nodes[0]  # where the buyer changes its contract
    delivery = {"method": "webhook", "url": buyers.url("capped", "deliver")}
    delivery["accept"] = {"path": "status", "equals": "accepted"}
    capped = buyer("capped", str(PRICE), balance=str(BALANCE), caps={"day": CAP}, delivery=delivery)
    capped["timezone"] = midday_zone()
    load(capped, reauction_cycles=0)  # a lead the capped contract cannot take ends unsold at once

    # Every lead pinged on one node and posted on the other (a load balancer keeps no seller on a
    # node); before any sale, every ping gets the contract's bid.
    pings = at_once([("POST", f"{nodes[n % 2].url}/api/v1/ping", ping_body(n)) for n in range(POSTS)])
    logs = "\n".join(n.log_tail() for n in nodes)
    assert [status for status, _ in pings] == [200] * POSTS, logs
    assert {(p["status"], p["payout"]) for _, p in pings} == {("accepted", "8.00")}

    started = time.perf_counter()
    posts = at_once(
        [
            ("POST", f"{nodes[(n + 1) % 2].url}/api/v1/post", post_body(p["ping_id"], n))
            for n, (_, p) in enumerate(pings)
        ]
    )
    posting_s = time.perf_counter() - started
    logs = "\n".join(n.log_tail() for n in nodes)
    assert [status for status, _ in posts] == [200] * POSTS, logs
    sold = [p for _, p in posts if p["status"] == "sold"]
    rest = [p for _, p in posts if p["status"] != "sold"]
    assert len(sold) == CAP, (len(sold), logs)
    assert {p["payout"] for p in sold} == {"8.00"}
    assert {(p["status"], p["reason"], p["payout"]) for p in rest} == {("unsold", "no_buyers", "0.00")}
    sold_on = [nodes[(n + 1) % 2].name for n, (_, p) in enumerate(posts) if p["status"] == "sold"]

    with market_scope():
        sales = list(Sale.objects.filter(contract__slug="capped-c").values_list("status", "price"))
        counters = list(CapCounter.objects.filter(contract__slug="capped-c").values_list("period", "count"))
    assert sales == [("sold", PRICE)] * CAP
    assert counters == [("day", CAP)]
    assert len(buyers.requests("capped", "delivery")) == CAP
    assert (balance("capped"), held("capped")) == (BALANCE - CAP * PRICE, ZERO)
    assert balance("seller", "seller_payable") == CAP * Decimal("8.00")
    ledger_is_consistent(settled=True)

    # The cap is reached on both nodes: no bid.
    before = at_once([("POST", f"{node.url}/api/v1/ping", anonymous_ping(f"before-{node.name}")) for node in nodes])
    assert [(s, p["status"], p["reason"]) for s, p in before] == [(200, "rejected", "no_buyers")] * 2

    # The buyer raises its cap on node a; both nodes' books bid again within a second of the answer.
    change = at_once([("PATCH", f"{a.url}/api/v1/contracts/ctr_capped", {"caps": {"day": CAP + 10}})], BUYER_KEY)
    changed = time.perf_counter()
    assert change[0][0] == 200, change
    assert change[0][1]["caps"]["day"] == CAP + 10

    async def both() -> list[float]:
        return list(await asyncio.gather(*(asyncio.to_thread(first_accepted_ping, n, changed) for n in nodes)))

    seen = asyncio.run(both())
    print(
        f"{POSTS} posts in {posting_s:.2f} s, sold on a {sold_on.count('a')}, on b {sold_on.count('b')};"
        f" the change seen on a after {seen[0] * 1000:.0f} ms, on b after {seen[1] * 1000:.0f} ms"
    )
    assert max(seen) <= CHANGE_WITHIN_S, seen
