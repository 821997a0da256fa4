#!/usr/bin/env python
"""The RTB benchmark's simulated buyers: ``python tests/bench/buyers.py --port N [--latency-ms 50]``.

One process (started and stopped by ``run.py``, so its event loop does not compete with the load
generator's) serving the five RTB buyers of ``market_rtb.yaml`` on 127.0.0.1 with the exchange's
own :class:`~demo.buyers.BuyerSimulator`. Each buyer answers every bid request after
``--latency-ms`` (50 ms), with a price of its own for the lead: a draw from the buyer's range,
seeded by the buyer's name and the ping id (so a replayed ping gets the same price), or a pass
(204) for a share of them. The ranges straddle the best fixed prices of the market's 25 internal
contracts (41.80 to 43.15), so RTB buyers win some auctions and lose others.

Lead deliveries (``POST /deliver/NAME``, the ``post`` scenario's buyers) are accepted at once,
whatever the name: the post's figures are the exchange's, not a buyer's.

Unlike the test suite's simulator it keeps no copy of each request (a long run would hold
hundreds of thousands), only counts, and it measures its own lateness: how much later than
``latency_ms`` after a request arrived its answer went out (a late answer means this process was
short of CPU, and the exchange's RTB figures include that). ``GET /stats`` reports both;
``GET /stats?reset=1`` reports and starts counting again.

Imports aiohttp and the simulator only, not Django.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: make ``exchange`` importable

from demo.buyers import Behaviour, BuyerSimulator  # noqa: E402

CENT = Decimal("0.01")


@dataclass(frozen=True)
class BidRange:
    """A buyer's price for a lead: uniform in [low, high], or a pass for ``pass_share`` of pings."""

    low: Decimal
    high: Decimal
    pass_share: float = 0.0

    def draw(self, buyer: str, ping_id: str) -> Decimal | None:
        digest = hashlib.sha256(f"{buyer}:{ping_id}".encode()).digest()
        if int.from_bytes(digest[:4]) / 2**32 < self.pass_share:
            return None
        share = Decimal(int.from_bytes(digest[4:8])) / Decimal(2**32)
        return (self.low + (self.high - self.low) * share).quantize(CENT)


# rtb-5's contract has max_price 45.00: its bids above that are cut to it by the exchange.
BUYERS: dict[str, BidRange] = {
    "rtb-1": BidRange(Decimal("20.00"), Decimal("46.00")),
    "rtb-2": BidRange(Decimal("25.00"), Decimal("44.00")),
    "rtb-3": BidRange(Decimal("30.00"), Decimal("43.00")),
    "rtb-4": BidRange(Decimal("15.00"), Decimal("45.00"), pass_share=0.3),
    "rtb-5": BidRange(Decimal("25.00"), Decimal("50.00")),
}


def _percentile(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))]


class BenchBuyers(BuyerSimulator):
    """The simulator's server with lead-priced answers, counters and a ``/stats`` endpoint."""

    def __init__(self, bids: dict[str, BidRange], *, latency_ms: float, port: int) -> None:
        super().__init__({name: Behaviour(latency_ms=latency_ms) for name in bids}, port=port)
        self.bids = bids
        self.latency_ms = latency_ms
        self._reset()

    def _reset(self) -> None:
        self.calls: Counter[str] = Counter()
        self.deliveries: Counter[str] = Counter()
        self.answers: Counter[str] = Counter()
        self.late_ms: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def _rtb(self, request: web.Request) -> web.StreamResponse:
        arrived = time.perf_counter()
        name = request.match_info["name"]
        self.calls[name] += 1
        behaviour, bids = self.behaviours.get(name), self.bids.get(name)
        if behaviour is None or bids is None:
            return web.json_response({"error": "unknown buyer"}, status=404)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = await request.read()
            await asyncio.sleep(behaviour.latency_ms / 1000)
            try:
                ping_id = str(json.loads(body).get("ping_id", ""))
            except (ValueError, AttributeError):
                self.answers["bad_request"] += 1
                return web.json_response({"error": "bad request"}, status=400)
            bid = bids.draw(name, ping_id)
            self.late_ms.append((time.perf_counter() - arrived) * 1000 - behaviour.latency_ms)
            if bid is None:
                self.answers["pass"] += 1
                return web.Response(status=204)
            self.answers["bid"] += 1
            return web.json_response({"bid": str(bid), "ref": f"{name}-{ping_id}"})
        finally:
            self.in_flight -= 1

    async def _deliver(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        await request.read()
        self.deliveries[name] += 1
        return web.json_response({"status": "accepted", "id": f"{name}-{self.deliveries[name]}"})

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        late = sorted(self.late_ms)
        stats = {
            "calls": dict(sorted(self.calls.items())),
            "total": sum(self.calls.values()),
            "deliveries": dict(sorted(self.deliveries.items())),
            "answers": dict(self.answers),
            "latency_ms": self.latency_ms,
            "late_ms": {
                "p50": _percentile(late, 50),
                "p99": _percentile(late, 99),
                "max": late[-1] if late else None,
            },
            "max_in_flight": self.max_in_flight,
        }
        if request.query.get("reset"):
            self._reset()
        return web.json_response(stats)

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/stats", self._stats)
        return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    BenchBuyers(BUYERS, latency_ms=args.latency_ms, port=args.port).serve_forever()


if __name__ == "__main__":
    main()
