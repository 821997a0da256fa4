"""Naming a consumer to suppress: an email, a phone or one of their SHA-256 hashes, normalized as
the ping's ``consumer`` hashes are (core.pii), so every way of writing one consumer is one row.

``" John.Doe@Example.COM "`` is ``john.doe@example.com``; ``"(201) 555-0101"``,
``"201-555-0101"`` and ``"+1 201-555-0101"`` are ``+12015550101`` (a number without ``+`` is
read as a US number). Only the hash is ever stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.pii import PiiInvalid, email_hash, phone_hash

HASH_RE = re.compile(r"^[0-9a-f]{64}$")
IDENTIFIERS = ("email", "phone", "email_sha256", "phone_sha256")


@dataclass(frozen=True)
class Consumer:
    """A consumer as the opt-out lists know them: the kind of contact and its hash."""

    kind: str  # "email" or "phone"
    hash: str


def consumer_of(field: str, value: object) -> Consumer:
    """The consumer ``value`` names, read as ``field`` (one of :data:`IDENTIFIERS`); raises
    :class:`PiiInvalid` with a message fit for the person who wrote it."""
    if not isinstance(value, str):
        raise PiiInvalid("Must be a string.")
    if field == "email":
        return Consumer("email", email_hash(value))
    if field == "phone":
        return Consumer("phone", phone_hash(value))
    if field in ("email_sha256", "phone_sha256"):
        digest = value.strip().lower()
        if not HASH_RE.match(digest):
            raise PiiInvalid("Must be a SHA-256 hex digest (64 hexadecimal characters) of the normalized value.")
        return Consumer(field.removesuffix("_sha256"), digest)
    raise ValueError(f"Not a consumer identifier: {field}")


def consumer_guess(value: str) -> Consumer:
    """The consumer a bare value names (a CSV cell, a search box): an email when it has an ``@``,
    a hash when it is 64 hexadecimal characters (kind unknown: ``""``), else a phone."""
    text = value.strip()
    if "@" in text:
        return consumer_of("email", text)
    if HASH_RE.match(text.lower()):
        return Consumer("", text.lower())
    return consumer_of("phone", text)
