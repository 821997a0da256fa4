"""Real-time bidding: ask buyers' own endpoints for a price, all at once, within the deadline.

The calls of one ping go out together through the outbound client (:mod:`core.outbound`,
libcurl's multi interface driven by the thread that runs the auction): it sends every request,
computes the fixed prices while the answers travel, then waits in ``epoll`` (the GIL released)
until the last answer or the deadline (decision 25). The client vets the address of every
connection and never follows a redirect: a 3xx is ``rtb_error`` like any other non-2xx.

Each call has its own timeout (the contract's, cut to what is left of the auction's deadline).
An answer is a bid or a pass with its waterfall reason (DESIGN.md §7).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from core.money import CENT
from core.outbound import TIMEOUT, OutboundPending, OutboundRequest, OutboundResponse, http_collect, http_start
from exchange.auction.book import CompiledContract
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
    # A timeout within less time than the contract's ``rtb_timeout_ms``: the exchange itself was
    # late to call (overloaded, starting), so it says nothing of the buyer.
    cut: bool = False

    @property
    def healthy(self) -> bool:
        """A bid or a pass: the buyer's endpoint works."""
        return self.reason not in ("rtb_timeout", "rtb_error", "rtb_invalid")

    @property
    def failed(self) -> bool:
        """A failure counts toward the circuit breaker; a pass does not, nor a timeout the
        exchange cut short."""
        return not self.healthy and not self.cut


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
        if not bid.is_finite() or bid < 0:
            return RtbAnswer(contract_id, "rtb_invalid", latency_ms=latency_ms)
        # A buyer never pays more than it said: fractions of a cent are cut, not rounded up. A bid
        # too large to be money at all (1e40) is no bid; one merely above the ceiling is cut to it.
        bid = bid.quantize(CENT, rounding=ROUND_DOWN)
    except InvalidOperation:
        return RtbAnswer(contract_id, "rtb_invalid", latency_ms=latency_ms)
    return RtbAnswer(contract_id, None, bid, ref[:200], latency_ms)


# --- the calls -----------------------------------------------------------------------------------


def _answer(call: RtbCall, response: OutboundResponse) -> RtbAnswer:
    contract_id = call.contract.id
    if response.status is None:
        if response.error == TIMEOUT:
            cut = call.timeout_s * 1000 < call.contract.rtb_timeout_ms - 1
            return RtbAnswer(contract_id, "rtb_timeout", latency_ms=response.latency_ms, cut=cut)
        return RtbAnswer(contract_id, "rtb_error", latency_ms=response.latency_ms)
    # A redirect is not followed: its 3xx is an error like any other non-2xx.
    return _parse(contract_id, response.status, response.body, response.latency_ms)


@dataclass
class RtbPending:
    """Calls on their way; :func:`rtb_collect` them in the thread that started them."""

    calls: list[RtbCall]
    sent: OutboundPending


def rtb_start(calls: list[RtbCall], secrets: dict[int, str]) -> RtbPending:
    """Send every call now; the caller does other work and then :func:`rtb_collect`\\ s."""
    requests = [
        OutboundRequest(
            call.contract.rtb_url,
            call.body,
            signed_headers(secret=secrets[call.contract.organization_id], body=call.body),
            call.timeout_s,
            MAX_ANSWER_BYTES,
        )
        for call in calls
    ]
    return RtbPending(calls, http_start(requests))


def rtb_collect(pending: RtbPending, timeout_s: float) -> list[RtbAnswer]:
    """The answers, waiting at most ``timeout_s``; a call still open then is a timeout."""
    responses = http_collect(pending.sent, timeout_s)
    return [_answer(call, response) for call, response in zip(pending.calls, responses, strict=True)]
