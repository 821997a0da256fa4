"""Finding and blanking one consumer's email and phone inside free text and JSON (a deletion request).

A privacy deletion (``leads.privacy``) erases the fields that hold PII by design; logs that merely
*may* echo it (a buyer's delivery answer, a webhook receiver's reply, a stored idempotent
response, a seller's tracking values) are cleaned with :func:`consumer_pattern` and
:func:`scrub`: every occurrence of the consumer's email (any letter case) or phone (its ten
national digits, with or without ``+1``/``1`` and with any of ``space . - ( )`` between the digits,
so ``+14155550100``, ``(415) 555-0100`` and ``415.555.0100`` all match) is replaced by
:data:`ERASED`. Django-free, like :mod:`core.pii`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

ERASED = "[erased]"
_SEPARATOR = r"[\s.\-()]{0,3}"


def _phone_regex(e164: str) -> str:
    digits = re.sub(r"\D", "", e164)
    if len(digits) == 11 and digits.startswith("1"):  # NANP: the country code is optional
        prefix, digits = r"(?:\+?1" + _SEPARATOR + ")?", digits[1:]
    else:
        prefix = r"(?:\+" + _SEPARATOR + ")?"
    return r"(?<!\d)" + prefix + _SEPARATOR.join(digits) + r"(?!\d)"


def consumer_pattern(*, emails: Iterable[str] = (), phones: Iterable[str] = ()) -> re.Pattern[str] | None:
    """A pattern matching any of the (normalized or as-sent) ``emails`` and (E.164) ``phones``;
    None when there is nothing to look for."""
    parts = [re.escape(e.strip()) for e in sorted(set(emails)) if e and e.strip()]
    parts += [_phone_regex(p) for p in sorted(set(phones)) if p and re.sub(r"\D", "", p)]
    if not parts:
        return None
    return re.compile("|".join(parts), re.IGNORECASE)


def consumer_probes(*, emails: Iterable[str] = (), phones: Iterable[str] = ()) -> list[str]:
    """Plain substrings any text :func:`consumer_pattern` matches must contain one of (the emails in
    lower case, each phone's last four digits): a database can look for them (``icontains``) to
    narrow a scan of a large log before :func:`scrub` runs on what it found."""
    probes = {e.strip().lower() for e in emails if e and e.strip()}
    probes |= {re.sub(r"\D", "", p)[-4:] for p in phones if len(re.sub(r"\D", "", p)) >= 4}
    return sorted(probes)


def scrub(value: Any, pattern: re.Pattern[str] | None) -> Any:
    """``value`` (a string, or JSON: dicts, lists, scalars) with every match of ``pattern`` in its
    strings (keys included) replaced by :data:`ERASED`; the same object when nothing matched."""
    if pattern is None:
        return value
    if isinstance(value, str):
        return pattern.sub(ERASED, value)
    if isinstance(value, dict):
        return {scrub(k, pattern): scrub(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, pattern) for v in value]
    return value


def contains(value: Any, pattern: re.Pattern[str] | None) -> bool:
    """Whether :func:`scrub` would change ``value``."""
    return pattern is not None and scrub(value, pattern) != value
