"""Real-time bidding: ask buyers' own endpoints for a price, all at once, within the deadline.

Every call of one ping runs concurrently on the process's outbound loop (one shared connection
pool); each has its own timeout (the contract's, cut to what is left of the auction's deadline).
An answer is a bid or a pass with its waterfall reason (DESIGN.md §7).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

import aiohttp

from billing.money import CENT
from exchange.auction.book import CompiledContract
from exchange.outbound import loop_get, session_get
from exchange.signing import signed_headers

MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class RtbCall:
    contract: CompiledContract
    body: bytes
    timeout_s: float


@dataclass(frozen=True)
class RtbAnswer:
    contract_id: int
    reason: str | None  # None: a bid
    bid: Decimal | None = None
    ref: str = ""
    latency_ms: float = 0.0

    @property
    def failed(self) -> bool:
        """A failure counts toward the circuit breaker; a pass does not."""
        return self.reason in ("rtb_timeout", "rtb_error", "rtb_invalid")


def rtb_body(
    *,
    ping_id: str,
    offer: str,
    contract: CompiledContract,
    lead: dict[str, Any],
    quality_score: int,
    source: str,
    tmax_ms: int,
    test: bool,
) -> bytes:
    return json.dumps(
        {
            "ping_id": ping_id,
            "offer": offer,
            "contract": contract.public_id,
            "lead": lead,
            "quality_score": quality_score,
            "source": source,
            "tmax_ms": tmax_ms,
            "test": test,
        },
        separators=(",", ":"),
    ).encode()


def _parse(contract_id: int, status: int, payload: bytes, latency_ms: float) -> RtbAnswer:
    if status == 204:
        return RtbAnswer(contract_id, "rtb_no_bid", latency_ms=latency_ms)
    if not 200 <= status < 300:
        return RtbAnswer(contract_id, "rtb_error", latency_ms=latency_ms)
    try:
        answer = json.loads(payload)
    except ValueError:
        return RtbAnswer(contract_id, "rtb_invalid", latency_ms=latency_ms)
    if not isinstance(answer, dict) or "bid" not in answer:
        return RtbAnswer(contract_id, "rtb_invalid", latency_ms=latency_ms)
    raw, ref = answer["bid"], answer.get("ref") or ""
    if raw is None:
        return RtbAnswer(contract_id, "rtb_no_bid", latency_ms=latency_ms)
    if isinstance(raw, bool) or not isinstance(raw, str | int | float) or not isinstance(ref, str):
        return RtbAnswer(contract_id, "rtb_invalid", latency_ms=latency_ms)
    try:
        bid = Decimal(str(raw))
    except InvalidOperation:
        return RtbAnswer(contract_id, "rtb_invalid", latency_ms=latency_ms)
    if not bid.is_finite() or bid < 0:
        return RtbAnswer(contract_id, "rtb_invalid", latency_ms=latency_ms)
    # A buyer never pays more than it said: fractions of a cent are cut, not rounded up.
    return RtbAnswer(contract_id, None, bid.quantize(CENT, rounding=ROUND_DOWN), ref[:200], latency_ms)


async def _call(session: aiohttp.ClientSession, call: RtbCall, secret: str) -> RtbAnswer:
    started = time.perf_counter()
    contract_id = call.contract.id
    try:
        async with asyncio.timeout(call.timeout_s):
            headers = signed_headers(secret=secret, body=call.body)
            async with session.post(call.contract.rtb_url, data=call.body, headers=headers) as response:
                payload = await response.content.read(MAX_ANSWER_BYTES)
                status = response.status
    except TimeoutError:
        return RtbAnswer(contract_id, "rtb_timeout", latency_ms=(time.perf_counter() - started) * 1000)
    except (aiohttp.ClientError, OSError, ValueError):
        return RtbAnswer(contract_id, "rtb_error", latency_ms=(time.perf_counter() - started) * 1000)
    return _parse(contract_id, status, payload, (time.perf_counter() - started) * 1000)


async def _fanout(calls: list[RtbCall], secrets: dict[int, str]) -> list[RtbAnswer]:
    session = session_get()
    return list(await asyncio.gather(*(_call(session, c, secrets[c.contract.organization_id]) for c in calls)))


def rtb_start(calls: list[RtbCall], secrets: dict[int, str]) -> concurrent.futures.Future[list[RtbAnswer]]:
    """Send every call now; the caller does other work and then :func:`rtb_collect`\\ s."""
    return asyncio.run_coroutine_threadsafe(_fanout(calls, secrets), loop_get())


def rtb_collect(
    future: concurrent.futures.Future[list[RtbAnswer]], calls: list[RtbCall], timeout_s: float
) -> list[RtbAnswer]:
    """The answers, waiting at most ``timeout_s``; a call still open then is a timeout."""
    try:
        return future.result(timeout=max(timeout_s, 0.0) + 0.02)
    except concurrent.futures.TimeoutError:
        future.cancel()
        return [RtbAnswer(c.contract.id, "rtb_timeout", latency_ms=c.timeout_s * 1000) for c in calls]
