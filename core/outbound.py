"""The one outbound HTTP client: every request Gavel sends to a buyer or a receiver goes through here
(RTB bid requests, lead deliveries, event webhooks, postbacks), under one SSRF guard.

What it guarantees, for every caller:

- **The address actually connected to is vetted**, when the socket is opened
  (``CURLOPT_OPENSOCKETFUNCTION``), not when the URL is read: a name that resolves to a public
  address when checked and to an inside one when called (DNS rebinding) is refused at the
  connection. Loopback, private, link-local, multicast, reserved and every other non-global
  address is refused, and so is an IPv6 address that carries one inside it (IPv4-mapped
  ``::ffff:0:0/96``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo ``2001::/32``), unless
  ``GAVEL_ALLOW_PRIVATE_URLS`` is on (the demo and the tests).
- **Redirects are never followed**: a 3xx is handed back as it came, with the target it named
  (``location``), and the caller decides what it means (RTB: ``rtb_error``; delivery: rejected
  with reason ``redirect``; webhooks: a failed attempt).
- **http and https only, TLS verified** (peer and host name) against the system's CA bundle, no
  proxy from the environment, no cookies, no compressed answers.
- **Answers are capped** (``max_body`` bytes kept, the rest not read) and **each request has one
  timeout for the whole exchange** (connect, send, answer), so a buyer that trickles bytes holds
  no one.

How: libcurl's multi interface (pycurl), driven by the calling thread. :func:`http_start` sends
every request of a batch at once and returns; the caller may do other work (the auction prices
its fixed contracts) and then :func:`http_collect`\\ s, waiting in ``epoll`` with the GIL
released until the last answer or the deadline. No thread per call and no hand-off to another
thread (decision 25). Each thread keeps one multi handle, whose connections stay open from call
to call. :func:`http_send_all` and :func:`http_send` are the same in one step.

:func:`url_check` is the same guard for a URL being saved (a webhook endpoint): it resolves the
name now and refuses it if any answer is an inside address.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pycurl
from django.conf import settings

USER_AGENT = "Gavel/1 (+https://www.standardwebhooks.com)"
ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_MAX_BODY = 64 * 1024

# Why a request got no HTTP answer (``OutboundResponse.error``).
TIMEOUT = "timeout"  # no complete answer within the request's timeout
REFUSED = "refused"  # the guard: an inside address, or not an http(s) URL
FAILED = "failed"  # connection refused or reset, TLS, a broken answer


class UnsafeUrl(ValueError):
    """An outbound URL Gavel must not call: bad scheme, no host, or an inside address."""


# --- the SSRF guard -------------------------------------------------------------------------------

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def private_allowed() -> bool:
    return bool(getattr(settings, "GAVEL_ALLOW_PRIVATE_URLS", False))


def _plain_unsafe(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        # Everything else IANA sets aside too (carrier-grade NAT 100.64/10, benchmarking, …).
        or not address.is_global
    )


def address_unsafe(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address an outbound request must never reach from the exchange.

    An IPv6 address that stands for an IPv4 one is judged as that IPv4 address: IPv4-mapped and
    NAT64 (the gateway forwards to it). One that tunnels to an IPv4 address (6to4, Teredo) is
    refused when that address is, and otherwise judged as itself: Python's own ``is_global``
    calls ``2002:7f00:1::`` (127.0.0.1 inside) global.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _plain_unsafe(address.ipv4_mapped)
        if address in _NAT64:
            return _plain_unsafe(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        inside: tuple[ipaddress.IPv4Address, ...] = ()
        if address.sixtofour is not None:
            inside = (address.sixtofour,)
        elif address.teredo is not None:
            inside = address.teredo  # (server, client)
        if any(_plain_unsafe(ipv4) for ipv4 in inside):
            return True
    return _plain_unsafe(address)


def _url_target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an outbound URL, or :class:`UnsafeUrl`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"Not a valid URL: {exc}.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeUrl("Only http and https URLs are allowed.")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def url_check(url: str) -> None:
    """Raise :class:`UnsafeUrl` unless ``url`` is http(s) on a host that resolves only to public addresses.

    For a URL being saved, so its owner hears at once. With ``GAVEL_ALLOW_PRIVATE_URLS`` on, only
    the scheme and host are checked (no DNS lookup). Sending does not rely on it: the address
    is vetted again when the connection is opened.
    """
    _, host, port = _url_target(url)
    if private_allowed():
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"Cannot resolve {host}.") from exc
    if not infos:
        raise UnsafeUrl(f"Cannot resolve {host}.")
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone index
        if address_unsafe(ipaddress.ip_address(text)):
            # One inside address is enough to refuse: the resolver may hand out any of them.
            raise UnsafeUrl(f"{host} resolves to a private or reserved address ({text}).")


# --- requests and answers -------------------------------------------------------------------------


# Not frozen (a frozen dataclass sets each field through object.__setattr__) and with slots: an
# RTB ping makes one request and one response per buyer. Neither is changed once made.
@dataclass(slots=True)
class OutboundRequest:
    url: str
    body: bytes | None  # None: a GET
    headers: Mapping[str, str]
    timeout_s: float  # the whole exchange: connect, send, answer
    max_body: int = DEFAULT_MAX_BODY
    keep_headers: bool = False  # the answer's headers (lower-cased names) in ``OutboundResponse.headers``


@dataclass(slots=True)
class OutboundResponse:
    status: int | None  # None: no HTTP answer, see ``error``
    body: bytes = b""  # at most the request's ``max_body`` bytes: the rest was not read
    error: str = ""  # TIMEOUT, REFUSED or FAILED when ``status`` is None
    detail: str = ""  # what went wrong, for people
    latency_ms: float = 0.0
    truncated: bool = False
    location: str = ""  # a redirect's target (not followed)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def redirect(self) -> bool:
        return self.status is not None and 300 <= self.status < 400


# --- the transfers --------------------------------------------------------------------------------


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


class _Transfer:
    """One request on its way: its answer as it arrives, and whether the guard refused an address."""

    __slots__ = ("chunks", "headers", "refused", "request", "size", "truncated")

    def __init__(self, request: OutboundRequest) -> None:
        self.request = request
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False
        self.refused = ""
        self.headers: dict[str, str] = {}

    def write(self, chunk: bytes) -> int:
        room = self.request.max_body - self.size
        if len(chunk) > room:
            self.chunks.append(chunk[:room])
            self.size, self.truncated = self.request.max_body, True
            return 0  # less than handed over: libcurl stops reading (CURLE_WRITE_ERROR)
        self.chunks.append(chunk)
        self.size += len(chunk)
        return len(chunk)

    def header(self, line: bytes) -> None:
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text.startswith("HTTP/"):
            self.headers = {}  # a new answer (after a 1xx): only the final one's headers count
        elif ":" in text:
            name, value = text.split(":", 1)
            self.headers[name.strip().lower()] = value.strip()

    def socket_open(self, purpose: int, address: Any) -> Any:
        """Open a socket for a new connection, only to a public address unless private ones are
        allowed: checked on the address libcurl resolved and is about to connect to, so a DNS
        answer that changed since the URL was checked cannot aim the call at the inside network."""
        family, socktype, protocol, addr = address
        if not private_allowed():
            if family not in (socket.AF_INET, socket.AF_INET6):
                self.refused = "a non-IP address"
                return pycurl.SOCKET_BAD
            text = str(addr[0]).split("%", 1)[0]  # drop an IPv6 zone index
            if address_unsafe(ipaddress.ip_address(text)):
                # libcurl tries the name's next address, if it has one; remembered for the message.
                self.refused = text
                return pycurl.SOCKET_BAD
        return _Descriptor(socket.socket(family, socktype, protocol).detach())


def _discard(chunk: bytes) -> None:
    return None


def _ca_bundle() -> tuple[str | None, str | None]:
    """The system's CA file and directory, as OpenSSL (and Python's ``ssl``) find them, honouring
    ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``: one answer for every client in the process, where
    the libcurl inside the pycurl wheel would otherwise probe a list of known places itself."""
    paths = ssl.get_default_verify_paths()
    return paths.cafile, paths.capath


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
        self.running: dict[pycurl.Curl, _Transfer] = {}
        self.done: dict[pycurl.Curl, tuple[int, str]] = {}  # curl error code (0: none), its message
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

    @staticmethod
    def _handle_new() -> pycurl.Curl:
        curl = pycurl.Curl()
        curl.setopt(pycurl.NOSIGNAL, 1)  # threads: no SIGALRM for timeouts
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.FOLLOWLOCATION, 0)
        curl.setopt(pycurl.PROXY, "")  # an empty proxy: none, whatever the environment says
        curl.setopt(pycurl.SSL_VERIFYPEER, 1)
        curl.setopt(pycurl.SSL_VERIFYHOST, 2)
        cafile, capath = _ca_bundle()
        if cafile:
            curl.setopt(pycurl.CAINFO, cafile)
        if capath:
            curl.setopt(pycurl.CAPATH, capath)
        curl.setopt(pycurl.USERAGENT, USER_AGENT)
        return curl

    def _handle(self, request: OutboundRequest, transfer: _Transfer) -> pycurl.Curl:
        curl = self.idle.pop() if self.idle else self._handle_new()
        curl.setopt(pycurl.URL, request.url)
        if request.body is None:
            curl.setopt(pycurl.HTTPGET, 1)
        else:
            curl.setopt(pycurl.POSTFIELDS, request.body)
        # "Expect:" stops libcurl from waiting for a 100 Continue before sending a large body.
        curl.setopt(pycurl.HTTPHEADER, [*(f"{k}: {v}" for k, v in request.headers.items()), "Expect:"])
        curl.setopt(pycurl.TIMEOUT_MS, max(int(request.timeout_s * 1000), 1))
        curl.setopt(pycurl.WRITEFUNCTION, transfer.write)
        curl.setopt(pycurl.OPENSOCKETFUNCTION, transfer.socket_open)
        if request.keep_headers:
            curl.setopt(pycurl.HEADERFUNCTION, transfer.header)
        return curl

    def start(self, requests: Sequence[OutboundRequest]) -> None:
        if self.running:  # a batch that was never collected (its caller failed): drop it
            self.finish(0.0)
        for request in requests:
            transfer = _Transfer(request)
            curl = self._handle(request, transfer)
            self.running[curl] = transfer
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
                self.done[curl] = (0, "")
            for curl, code, message in failed:
                self.done[curl] = (code, message)
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

    def finish(self, elapsed_ms: float) -> list[OutboundResponse]:
        """Every request's answer in order (one still open is a timeout), and the handles back to
        the pool."""
        responses = []
        for curl, transfer in self.running.items():
            outcome = self.done.get(curl)
            if outcome is None:
                responses.append(OutboundResponse(None, error=TIMEOUT, detail="timed out", latency_ms=elapsed_ms))
            else:
                responses.append(_response(curl, transfer, *outcome))
            self.multi.remove_handle(curl)  # an unfinished transfer's connection is closed
            curl.setopt(pycurl.WRITEFUNCTION, _discard)
            if transfer.request.keep_headers:
                curl.unsetopt(pycurl.HEADERFUNCTION)
            transfer.chunks = []
            self.idle.append(curl)
        self.running.clear()
        self.done.clear()
        return responses


def _response(curl: pycurl.Curl, transfer: _Transfer, code: int, message: str) -> OutboundResponse:
    latency_ms = curl.getinfo(pycurl.TOTAL_TIME) * 1000
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return OutboundResponse(None, error=TIMEOUT, detail="timed out", latency_ms=latency_ms)
    if code == pycurl.E_COULDNT_CONNECT and transfer.refused:
        detail = f"{transfer.refused} is a private or reserved address"
        return OutboundResponse(None, error=REFUSED, detail=detail, latency_ms=latency_ms)
    if code in (pycurl.E_UNSUPPORTED_PROTOCOL, pycurl.E_URL_MALFORMAT):
        return OutboundResponse(None, error=REFUSED, detail="not an http(s) URL", latency_ms=latency_ms)
    if code and not (code == pycurl.E_WRITE_ERROR and transfer.truncated):
        return OutboundResponse(None, error=FAILED, detail=message or f"libcurl error {code}", latency_ms=latency_ms)
    status = curl.getinfo(pycurl.RESPONSE_CODE)
    location = (curl.getinfo(pycurl.REDIRECT_URL) or "") if 300 <= status < 400 else ""
    return OutboundResponse(
        status,
        b"".join(transfer.chunks),
        latency_ms=latency_ms,
        truncated=transfer.truncated,
        location=location,
        headers=transfer.headers,
    )


_local = threading.local()


def _transfers() -> _Transfers:
    transfers: _Transfers | None = getattr(_local, "transfers", None)
    if transfers is None or transfers.pid != os.getpid():
        transfers = _local.transfers = _Transfers()
    return transfers


@dataclass
class OutboundPending:
    """Requests on their way; :func:`http_collect` them in the thread that started them."""

    transfers: _Transfers
    started: float = field(default_factory=time.perf_counter)


def http_start(requests: Sequence[OutboundRequest]) -> OutboundPending:
    """Send every request now; the caller does other work and then :func:`http_collect`\\ s.

    A thread has one batch on its way at a time: starting another drops the first. Never call
    it inside a database transaction.
    """
    transfers = _transfers()
    pending = OutboundPending(transfers)
    transfers.start(requests)
    return pending


def http_collect(pending: OutboundPending, timeout_s: float) -> list[OutboundResponse]:
    """The answers, in the order of the requests, waiting at most ``timeout_s`` (each request's
    own timeout also holds); a request still open then is a timeout."""
    transfers = pending.transfers
    try:
        transfers.wait(time.perf_counter() + max(timeout_s, 0.0))
    finally:
        responses = transfers.finish((time.perf_counter() - pending.started) * 1000)
    return responses


def http_send_all(requests: Sequence[OutboundRequest]) -> list[OutboundResponse]:
    """Send every request at once and return their answers in order, each within its own timeout."""
    if not requests:
        return []
    # libcurl ends each transfer at its own timeout; the margin only bounds the wait if it did not.
    return http_collect(http_start(requests), max(r.timeout_s for r in requests) + 0.1)


def http_send(request: OutboundRequest) -> OutboundResponse:
    """Send one request and return its answer, within its timeout."""
    return http_send_all([request])[0]
