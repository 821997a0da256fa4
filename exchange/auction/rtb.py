"""Real-time bidding: ask buyers' own endpoints for a price, all at once, within the deadline.

The calls of one ping go out together through libcurl's multi interface (pycurl), driven by the
thread that runs the auction: it sends every request, computes the fixed prices while the answers
travel, then waits in ``epoll`` (the GIL released) until the last answer or the deadline. No
thread per call and no hand-off to another thread: an earlier design ran them on a process-wide
asyncio loop, and the wake-ups between the two threads cost more CPU than the calls (decision 25).
Each thread keeps one multi handle, whose connections to buyers stay open from ping to ping.

Each call has its own timeout (the contract's, cut to what is left of the auction's deadline).
An answer is a bid or a pass with its waterfall reason (DESIGN.md §7).
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

import pycurl

from billing.money import CENT
from exchange.auction.book import CompiledContract
from exchange.signing import USER_AGENT, address_unsafe, private_allowed, signed_headers

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


# --- the transfers -------------------------------------------------------------------------------


class _Answer:
    """One call's answer as it arrives: at most MAX_ANSWER_BYTES are kept, the rest is not read."""

    __slots__ = ("call", "chunks", "size", "truncated")

    def __init__(self, call: RtbCall) -> None:
        self.call = call
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def write(self, chunk: bytes) -> int:
        room = MAX_ANSWER_BYTES - self.size
        if len(chunk) > room:
            self.chunks.append(chunk[:room])
            self.size, self.truncated = MAX_ANSWER_BYTES, True
            return 0  # less than handed over: libcurl stops reading (CURLE_WRITE_ERROR)
        self.chunks.append(chunk)
        self.size += len(chunk)
        return len(chunk)


class _Descriptor:
    """A new socket's descriptor handed to libcurl, which keeps a duplicate; this one closes with
    the object (a socket object would warn that it was never closed)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def __del__(self) -> None:
        os.close(self.fd)


def _socket_open(purpose: int, address: Any) -> Any:
    """Open a socket for a new connection, only to a public address unless private ones are allowed
    (checked on the address libcurl resolved, so a DNS answer that changes after the URL was saved
    cannot aim a call at the inside network)."""
    family, socktype, protocol, addr = address
    if not private_allowed() and address_unsafe(ipaddress.ip_address(str(addr[0]).split("%", 1)[0])):
        return pycurl.SOCKET_BAD
    return _Descriptor(socket.socket(family, socktype, protocol).detach())


_EPOLL_OF = {
    pycurl.POLL_IN: select.EPOLLIN,
    pycurl.POLL_OUT: select.EPOLLOUT,
    pycurl.POLL_INOUT: select.EPOLLIN | select.EPOLLOUT,
}


class _Transfers:
    """A thread's libcurl multi handle driven through epoll (its socket and timer callbacks), and
    the easy handles it reuses."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.multi = pycurl.CurlMulti()
        self.epoll = select.epoll()
        self.watched: set[int] = set()
        self.timer_at: float | None = None
        self.idle: list[pycurl.Curl] = []
        self.running: dict[pycurl.Curl, _Answer] = {}
        self.done: dict[pycurl.Curl, tuple[int, float]] = {}  # curl error code (0: none), seconds
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)

    def _on_socket(self, what: int, fd: int, multi: Any, data: Any) -> None:
        if what == pycurl.POLL_REMOVE:
            if fd in self.watched:
                self.watched.discard(fd)
                try:
                    self.epoll.unregister(fd)
                except OSError:  # libcurl closed it already
                    pass
            return
        if fd in self.watched:
            self.epoll.modify(fd, _EPOLL_OF[what])
        else:
            self.epoll.register(fd, _EPOLL_OF[what])
            self.watched.add(fd)

    def _on_timer(self, timeout_ms: int) -> None:
        self.timer_at = None if timeout_ms < 0 else time.perf_counter() + timeout_ms / 1000

    def _handle(self, call: RtbCall, secret: str) -> pycurl.Curl:
        curl = self.idle.pop() if self.idle else self._handle_new()
        headers = signed_headers(secret=secret, body=call.body)
        curl.setopt(pycurl.URL, call.contract.rtb_url)
        curl.setopt(pycurl.POSTFIELDS, call.body)
        # "Expect:" stops libcurl from waiting for a 100 Continue before sending a large body.
        curl.setopt(pycurl.HTTPHEADER, [*(f"{k}: {v}" for k, v in headers.items()), "Expect:"])
        curl.setopt(pycurl.TIMEOUT_MS, max(int(call.timeout_s * 1000), 1))
        return curl

    def _handle_new(self) -> pycurl.Curl:
        curl = pycurl.Curl()
        curl.setopt(pycurl.NOSIGNAL, 1)  # threads: no SIGALRM for timeouts
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.FOLLOWLOCATION, 0)
        curl.setopt(pycurl.USERAGENT, USER_AGENT)
        curl.setopt(pycurl.OPENSOCKETFUNCTION, _socket_open)
        return curl

    def start(self, calls: list[RtbCall], secrets: dict[int, str]) -> None:
        if self.running:  # a ping that failed between start and collect: drop its calls
            self.finish(0.0)
        for call in calls:
            answer = _Answer(call)
            curl = self._handle(call, secrets[call.contract.organization_id])
            curl.setopt(pycurl.WRITEFUNCTION, answer.write)
            self.running[curl] = answer
            self.multi.add_handle(curl)
        # Connects, or on a kept-alive connection sends the request, before the caller moves on.
        self._act(pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, events: int) -> None:
        while True:
            result, _ = self.multi.socket_action(fd, events)
            if result != pycurl.E_CALL_MULTI_PERFORM:
                break
        while True:
            queued, ok, failed = self.multi.info_read()
            for curl in ok:
                self.done[curl] = (0, curl.getinfo(pycurl.TOTAL_TIME))
            for curl, code, _message in failed:
                self.done[curl] = (code, curl.getinfo(pycurl.TOTAL_TIME))
            if not queued:
                break

    def wait(self, deadline: float) -> None:
        """Drive the transfers until all are done or ``deadline`` (``perf_counter``) has passed."""
        while len(self.done) < len(self.running):
            now = time.perf_counter()
            if now >= deadline:
                return
            until = deadline if self.timer_at is None else min(deadline, self.timer_at)
            events = self.epoll.poll(max(until - now, 0.0))
            for fd, mask in events:
                flags = (pycurl.CSELECT_IN if mask & (select.EPOLLIN | select.EPOLLHUP) else 0) | (
                    pycurl.CSELECT_OUT if mask & select.EPOLLOUT else 0
                )
                self._act(fd, flags | (pycurl.CSELECT_ERR if mask & select.EPOLLERR else 0))
            if self.timer_at is not None and time.perf_counter() >= self.timer_at:
                self.timer_at = None
                self._act(pycurl.SOCKET_TIMEOUT, 0)

    def finish(self, elapsed_ms: float) -> list[RtbAnswer]:
        """Every call's answer (a call still open is a timeout), and the handles back to the pool."""
        answers = []
        for curl, answer in self.running.items():
            call = answer.call
            contract_id = call.contract.id
            cut = call.timeout_s * 1000 < call.contract.rtb_timeout_ms - 1
            outcome = self.done.get(curl)
            if outcome is None:
                answers.append(RtbAnswer(contract_id, "rtb_timeout", latency_ms=elapsed_ms, cut=cut))
            else:
                code, seconds = outcome
                latency_ms = seconds * 1000
                if code == pycurl.E_OPERATION_TIMEDOUT:
                    answers.append(RtbAnswer(contract_id, "rtb_timeout", latency_ms=latency_ms, cut=cut))
                elif code and not (code == pycurl.E_WRITE_ERROR and answer.truncated):
                    answers.append(RtbAnswer(contract_id, "rtb_error", latency_ms=latency_ms))
                else:
                    status = curl.getinfo(pycurl.RESPONSE_CODE)
                    answers.append(_parse(contract_id, status, b"".join(answer.chunks), latency_ms))
            self.multi.remove_handle(curl)  # an unfinished transfer's connection is closed
            curl.setopt(pycurl.WRITEFUNCTION, _discard)
            self.idle.append(curl)
        self.running.clear()
        self.done.clear()
        return answers


def _discard(chunk: bytes) -> None:
    return None


_local = threading.local()


def _transfers() -> _Transfers:
    transfers: _Transfers | None = getattr(_local, "transfers", None)
    if transfers is None or transfers.pid != os.getpid():
        transfers = _local.transfers = _Transfers()
    return transfers


@dataclass
class RtbPending:
    """Calls on their way; :func:`rtb_collect` them in the thread that started them."""

    transfers: _Transfers
    started: float = field(default_factory=time.perf_counter)


def rtb_start(calls: list[RtbCall], secrets: dict[int, str]) -> RtbPending:
    """Send every call now; the caller does other work and then :func:`rtb_collect`\\ s."""
    transfers = _transfers()
    pending = RtbPending(transfers)
    transfers.start(calls, secrets)
    return pending


def rtb_collect(pending: RtbPending, timeout_s: float) -> list[RtbAnswer]:
    """The answers, waiting at most ``timeout_s``; a call still open then is a timeout."""
    transfers = pending.transfers
    try:
        transfers.wait(time.perf_counter() + max(timeout_s, 0.0))
    finally:
        answers = transfers.finish((time.perf_counter() - pending.started) * 1000)
    return answers
