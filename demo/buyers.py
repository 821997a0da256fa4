"""Simulated buyers: a real HTTP server that answers RTB bid requests and takes lead deliveries.

One server hosts any number of named buyers, each with its own behaviour (bid, latency, failure
rate, accept or reject). Tests run it in a thread; the demo and the benchmark run it as
``manage.py buyer_sim``. It is a stand-in for buyers' systems, not part of the exchange.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import uvloop
from aiohttp import web


@dataclass
class Behaviour:
    """How one simulated buyer answers."""

    bid: str | None = "20.00"  # None passes (204)
    latency_ms: float = 0.0
    failure_rate: float = 0.0  # share of bid requests answered 500
    answer: Any = None  # a raw JSON answer to send instead of a bid (malformed answers)
    accept: bool = True  # deliveries
    reject_rate: float = 0.0  # share of deliveries rejected even when accepting
    reject_reason: str = "duplicate in our CRM"
    delivery_latency_ms: float = 0.0
    seed: int = 1
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Behaviour:
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__ and k != "rng"}
        behaviour = cls(**known)
        behaviour.rng.seed(behaviour.seed)
        return behaviour


@dataclass
class Received:
    buyer: str
    kind: str  # rtb | delivery
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class BuyerSimulator:
    """``start()`` serves on 127.0.0.1 (a free port unless given); ``url(name)`` is a buyer's RTB
    endpoint and ``url(name, "deliver")`` its delivery endpoint."""

    def __init__(self, behaviours: dict[str, Behaviour] | None = None, *, port: int = 0) -> None:
        self.behaviours = behaviours or {}
        self.received: list[Received] = []
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def url(self, name: str, kind: str = "rtb") -> str:
        return f"http://127.0.0.1:{self.port}/{kind}/{name}"

    def requests(self, name: str | None = None, kind: str | None = None) -> list[Received]:
        return [r for r in self.received if (name is None or r.buyer == name) and (kind is None or r.kind == kind)]

    async def _rtb(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await request.read()
        self.received.append(Received(name, "rtb", dict(request.headers), body))
        behaviour = self.behaviours.get(name)
        if behaviour is None:
            return web.json_response({"error": "unknown buyer"}, status=404)
        if behaviour.latency_ms:
            await asyncio.sleep(behaviour.latency_ms / 1000)
        if behaviour.failure_rate and behaviour.rng.random() < behaviour.failure_rate:
            return web.json_response({"error": "internal error"}, status=500)
        if behaviour.answer is not None:
            text = behaviour.answer if isinstance(behaviour.answer, str) else json.dumps(behaviour.answer)
            return web.Response(text=text, content_type="application/json")
        if behaviour.bid is None:
            return web.Response(status=204)
        ping_id = json.loads(body).get("ping_id", "")
        return web.json_response({"bid": behaviour.bid, "ref": f"{name}-{ping_id}"})

    async def _deliver(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await request.read()
        self.received.append(Received(name, "delivery", dict(request.headers), body))
        behaviour = self.behaviours.get(name, Behaviour())
        if behaviour.delivery_latency_ms:
            await asyncio.sleep(behaviour.delivery_latency_ms / 1000)
        if behaviour.accept and not (behaviour.reject_rate and behaviour.rng.random() < behaviour.reject_rate):
            return web.json_response({"status": "accepted", "id": f"{name}-{len(self.received)}"})
        return web.json_response({"status": "rejected", "message": behaviour.reject_reason})

    async def _configure(self, request: web.Request) -> web.StreamResponse:
        self.behaviours[request.match_info["name"]] = Behaviour.from_dict(await request.json())
        return web.json_response({"ok": True})

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.post("/rtb/{name}", self._rtb),
                web.post("/deliver/{name}", self._deliver),
                web.put("/config/{name}", self._configure),
            ]
        )
        return app

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def start(self) -> BuyerSimulator:
        """Serve in a daemon thread; returns once the port is open."""
        self._loop = uvloop.new_event_loop()
        started = threading.Event()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._serve())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="buyer-sim", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = None

    def serve_forever(self) -> None:
        """Serve in the calling thread (``manage.py buyer_sim``)."""
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._serve())
        loop.run_forever()
