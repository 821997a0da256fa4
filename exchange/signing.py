"""Signed outbound requests (Standard Webhooks, DESIGN.md §7).

Every request Gavel sends to a buyer or a webhook receiver is signed as the Standard Webhooks
spec (https://www.standardwebhooks.com) says, so receivers verify it with any Standard Webhooks
library: ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature:
v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` keyed with the base64-decoded ``whsec_``
secret. Several space-separated signatures are allowed, which is how a rotated secret keeps
working for a grace period.

This module knows nothing of webhooks, RTB or lead delivery; all three use it. Sending, and
the SSRF guard, are :mod:`core.outbound`'s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import datetime

from core.ids import public_id_new

SECRET_PREFIX = "whsec_"  # nosec B105  # a prefix, not a secret
SECRET_BYTES = 32
# The Standard Webhooks libraries refuse timestamps further than this from their clock.
TIMESTAMP_TOLERANCE_SECONDS = 5 * 60


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
