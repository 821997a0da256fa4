"""Signed outbound requests (Standard Webhooks) and the SSRF guard (DESIGN.md §7).

Every request Gavel sends to a buyer or a webhook receiver is signed as the Standard Webhooks
spec (https://www.standardwebhooks.com) says, so receivers verify it with any Standard Webhooks
library: ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature:
v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` keyed with the base64-decoded ``whsec_``
secret. Several space-separated signatures are allowed, which is how a rotated secret keeps
working for a grace period.

Outbound URLs are refused when their scheme is not http(s) or their host resolves to a
loopback, private, link-local, multicast, reserved or unspecified address, unless
``GAVEL_ALLOW_PRIVATE_URLS`` is on (the demo and the tests). :func:`http_post` connects to the
very address it vetted, so a DNS answer that changes between the check and the connection
(DNS rebinding) cannot point a request at the inside network.

This module knows nothing of webhooks, RTB or lead delivery; all three use it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import ipaddress
import secrets
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from exchange.ids import public_id_new

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# The Standard Webhooks libraries refuse timestamps further than this from their clock.
TIMESTAMP_TOLERANCE_SECONDS = 5 * 60
ALLOWED_SCHEMES = frozenset({"http", "https"})
USER_AGENT = "Gavel/1 (+https://www.standardwebhooks.com)"


class UnsafeUrl(ValueError):
    """An outbound URL Gavel must not call: bad scheme, no host, or an inside address."""


class SignatureInvalid(ValueError):
    """A signed request that does not verify: missing headers, stale timestamp or bad signature."""


def secret_new() -> str:
    """A fresh signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the prefix is optional, as in the reference libraries)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        # The reference libraries accept unpadded base64; so do we.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("A signing secret is 'whsec_' followed by base64.") from exc
    if not key:
        raise ValueError("A signing secret may not be empty.")
    return key


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "msg_id.timestamp.body">`` keyed with the secret."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(
    *,
    secret: str,
    body: bytes,
    msg_id: str | None = None,
    now: datetime | float | None = None,
    extra_secrets: Iterable[str] = (),
) -> dict[str, str]:
    """The Standard Webhooks headers for ``body`` (and ``content-type: application/json``).

    ``msg_id`` defaults to a fresh ``msg_…`` id; pass the same one on every retry of one message
    so receivers can drop duplicates. ``extra_secrets`` add signatures (a rotated-out secret
    during its grace period): a receiver holding any one of the secrets verifies the request.
    """
    if now is None:
        now = time.time()
    timestamp = int(now.timestamp() if isinstance(now, datetime) else now)
    msg_id = msg_id or public_id_new("msg_")
    signatures = [sign(secret=s, msg_id=msg_id, timestamp=timestamp, body=body) for s in (secret, *extra_secrets)]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }


def verify(
    *,
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
    tolerance: int = TIMESTAMP_TOLERANCE_SECONDS,
) -> None:
    """Raise :class:`SignatureInvalid` unless ``headers`` sign ``body`` with ``secret`` recently.

    For our own receivers (simulated buyers, tests); third parties use a Standard Webhooks library.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    timestamp_text = lowered.get("webhook-timestamp", "")
    signature_header = lowered.get("webhook-signature", "")
    if not (msg_id and timestamp_text and signature_header):
        raise SignatureInvalid("Missing webhook-id, webhook-timestamp or webhook-signature.")
    try:
        timestamp = int(timestamp_text)
    except ValueError as exc:
        raise SignatureInvalid("webhook-timestamp is not a Unix time.") from exc
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise SignatureInvalid("webhook-timestamp is too old or too new.")
    expected = sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body)
    if not any(hmac.compare_digest(expected, given) for given in signature_header.split(" ")):
        raise SignatureInvalid("No matching signature.")


# --- SSRF guard -------------------------------------------------------------------------------


def private_allowed() -> bool:
    return bool(getattr(settings, "GAVEL_ALLOW_PRIVATE_URLS", False))


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


def address_unsafe(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address an outbound request must never reach from the exchange."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
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


def _addresses_vetted(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, all of them safe, or :class:`UnsafeUrl`."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"Cannot resolve {host}.") from exc
    addresses: list[str] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone index
        if address_unsafe(ipaddress.ip_address(text)):
            # One inside address is enough to refuse: the resolver may hand out any of them.
            raise UnsafeUrl(f"{host} resolves to a private or reserved address ({text}).")
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise UnsafeUrl(f"Cannot resolve {host}.")
    return addresses


def url_check(url: str) -> None:
    """Raise :class:`UnsafeUrl` unless ``url`` is http(s) on a host that resolves only to public addresses.

    With ``GAVEL_ALLOW_PRIVATE_URLS`` on, only the scheme and host are checked (no DNS lookup).
    Call it when a URL is saved; :func:`http_post` checks again at send time.
    """
    _, host, port = _url_target(url)
    if not private_allowed():
        _addresses_vetted(host, port)


# --- Outbound POST ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    body: bytes  # at most ``max_body`` bytes: the rest is not read
    headers: dict[str, str]  # lower-cased names
    latency_ms: int


def http_post(
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    max_body: int = 64 * 1024,
) -> OutboundResponse:
    """POST ``body`` to ``url`` under the SSRF guard; redirects are not followed.

    ``timeout`` bounds the whole exchange (connect, send, and reading the answer), not each
    socket operation, so a receiver that trickles bytes cannot hold a worker. Raises
    :class:`UnsafeUrl`, :class:`TimeoutError`, :class:`OSError` (connection, TLS) or
    :class:`http.client.HTTPException`; any HTTP status is a response, not an error.
    Never call it inside a database transaction.
    """
    scheme, host, port = _url_target(url)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    deadline = started + timeout
    pinned = None if private_allowed() else _addresses_vetted(host, port)[0]
    connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    connection = connection_class(host, port, timeout=timeout)
    if pinned is not None:
        # Connect to the address just vetted while keeping the host name for the Host header,
        # TLS SNI and certificate checks; http.client resolves the name again otherwise.
        def _connect_pinned(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
            return socket.create_connection((pinned, address[1]), *args, **kwargs)

        connection._create_connection = _connect_pinned  # type: ignore[attr-defined]
    try:
        connection.request("POST", target, body=body, headers={"user-agent": USER_AGENT, **headers})
        response = connection.getresponse()
        chunks: list[bytes] = []
        size = 0
        while size < max_body:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"No complete answer within {timeout:g} s.")
            if connection.sock is not None:
                connection.sock.settimeout(remaining)
            chunk = response.read1(min(16 * 1024, max_body - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return OutboundResponse(
            status=response.status,
            body=b"".join(chunks),
            headers={name.lower(): value for name, value in response.getheaders()},
            latency_ms=round((time.monotonic() - started) * 1000),
        )
    finally:
        connection.close()
