"""Encryption at rest of a lead's PII, under the Fernet keys of ``settings.GAVEL_PII_KEYS``.

``GAVEL_PII_KEYS`` lists Fernet keys newest first (DESIGN.md section 4). New tokens are always
encrypted under the newest key; any listed key can decrypt. To retire a key: put a new key
first, run ``manage.py pii_rotate`` (re-encrypts every lead under the newest key), then drop the
old key from the list.

A token is a Fernet token (authenticated AES-128-CBC + HMAC-SHA256) of the PII serialized as
compact JSON with sorted keys; it carries no plaintext.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Mapping
from decimal import Decimal

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["PiiKeyError", "pii_decrypt", "pii_encrypt", "pii_rotate"]


class PiiKeyError(Exception):
    """A PII token cannot be decrypted: no configured key opens it, or it is corrupt."""


_UNREADABLE = (
    "PII token cannot be decrypted with any key in GAVEL_PII_KEYS: it was encrypted under a key "
    "that is no longer configured, or it is corrupt."
)


@functools.lru_cache(maxsize=8)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    # Keyed on the keys themselves, not built once: settings change under override_settings and
    # during a rotation, and a stale MultiFernet would silently encrypt under a retired key.
    if not keys:
        raise ImproperlyConfigured("GAVEL_PII_KEYS is empty: configure at least one Fernet key.")
    fernets = []
    for index, key in enumerate(keys):
        try:
            fernets.append(Fernet(key))
        except (TypeError, ValueError):
            # "from None" and no key in the message: the key must not reach logs or tracebacks.
            raise ImproperlyConfigured(
                f"GAVEL_PII_KEYS[{index}] is not a valid Fernet key (32 url-safe base64-encoded bytes)."
            ) from None
    return MultiFernet(fernets)


def _current() -> MultiFernet:
    keys = settings.GAVEL_PII_KEYS
    if isinstance(keys, str | bytes):
        raise ImproperlyConfigured("GAVEL_PII_KEYS must be a list of Fernet keys, not a single string.")
    return _multifernet(tuple(keys))


def _json_default(value: object) -> str:
    # datetime is a date subclass, so it is covered too.
    if isinstance(value, Decimal | datetime.date):
        return str(value)
    raise TypeError(f"PII value of type {type(value).__name__} is not JSON serializable")


def pii_encrypt(data: Mapping[str, object]) -> str:
    """Encrypt ``data`` under the newest key of ``GAVEL_PII_KEYS`` and return the token.

    ``data`` is serialized as JSON with sorted keys and compact separators; ``Decimal`` and
    ``date`` / ``datetime`` values become their ``str()`` (so they decrypt as strings). Any other
    non-JSON value raises ``TypeError``. The token is ASCII and contains no plaintext; two calls
    with the same data give different tokens. Raises ``ImproperlyConfigured`` if the keys are
    missing or invalid.
    """
    payload = json.dumps(dict(data), sort_keys=True, separators=(",", ":"), default=_json_default)
    return _current().encrypt(payload.encode()).decode("ascii")


def pii_decrypt(token: str) -> dict[str, object]:
    """Return the PII dict that :func:`pii_encrypt` encrypted into ``token``.

    Any key of ``GAVEL_PII_KEYS`` may open the token. Raises :class:`PiiKeyError` if none does,
    or the token is corrupt or tampered with (Fernet cannot tell these apart); the message never
    contains the token or a key.
    """
    try:
        plaintext = _current().decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        raise PiiKeyError(_UNREADABLE) from None
    data = json.loads(plaintext)
    if not isinstance(data, dict):
        raise PiiKeyError("PII token decrypts to something other than a PII object.")
    return data


def pii_rotate(token: str) -> str:
    """Return ``token`` re-encrypted under the newest key of ``GAVEL_PII_KEYS``.

    The plaintext and the token's original timestamp are kept. Raises :class:`PiiKeyError`
    like :func:`pii_decrypt` when no configured key opens the token.
    """
    try:
        rotated = _current().rotate(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        raise PiiKeyError(_UNREADABLE) from None
    return rotated.decode("ascii")
