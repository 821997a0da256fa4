"""Normalization and hashing of a consumer's personal data (email, phone).

The exchange never compares raw PII: a ping carries the SHA-256 of the *normalized* email and
phone (DESIGN.md section 6), and the post's PII must hash to the same values. Everything that
normalizes or hashes a consumer identifier goes through this module so both sides agree.

Fictional phone numbers
-----------------------
NANPA reserves 555-0100 through 555-0199 in every area code for fictional use. With the
``phonenumbers`` metadata in this project (9.0.x) every one of them is a *valid* number for
:func:`phone_normalize`, in all the area codes of :data:`EXAMPLE_AREA_CODES` (checked
exhaustively by the tests), e.g. ``+1 201 555 0123``, ``+14155550100`` (the example in the
design document) and ``(415) 555-0199``. Other 555 lines (e.g. ``+14155552671``) are valid too
but are not reserved as fictional, so tests and demo data should use :func:`example_phone`,
which only hands out 555-01xx numbers. Numbers that are *not* valid: area codes that are not
assigned (``+1 555 555 0100``, ``+1 200 555 0100``, ``+1 123 456 7890``), N11 codes
(``+1 911 555 0100``) and numbers with the wrong length (``555-0100``, ``+1 415 555 010``).

This module must not import Django: it is used by the ingestion path and by tools alike.
"""

from __future__ import annotations

import hashlib

import phonenumbers

__all__ = [
    "EXAMPLE_AREA_CODES",
    "PiiInvalid",
    "consumer_hash",
    "email_hash",
    "email_normalize",
    "example_phone",
    "phone_hash",
    "phone_normalize",
]

# Long-established US geographic area codes; each has all of 555-0100..555-0199 valid.
EXAMPLE_AREA_CODES: tuple[str, ...] = tuple(
    """
    201 202 203 205 206 207 208 212 213 214 215 216 217 218 219 301 302 303 304 305
    307 308 309 312 313 314 315 316 317 318 319 401 402 404 405 406 407 408 409 410
    412 413 414 415 417 419 501 502 503 504 505 507 508 509 512 513 515 516 517 518
    601 602 603 605 606 607 608 609 612 614 615 616 617 618 619 701 702 703 704 706
    707 708 712 713 714 715 716 717 718 719 801 802 803 804 805 806 808 810 812 813
    """.split()
)
_FICTIONAL_LINES = 100  # 555-0100 .. 555-0199


class PiiInvalid(ValueError):
    """A value is not a usable email address or phone number."""


def email_normalize(value: str) -> str:
    """Return the canonical form of an email address: trimmed and lower-cased.

    Guarantees the result has exactly one ``@``, a non-empty local part, a domain made of
    non-empty dot-separated labels (at least two), and no whitespace or control characters.
    Raises :class:`PiiInvalid` otherwise (also for a non-string).
    """
    if not isinstance(value, str):
        raise PiiInvalid("Email must be a string.")
    email = value.strip().lower()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in email):
        raise PiiInvalid("Email must not contain spaces or control characters.")
    if email.count("@") != 1:
        raise PiiInvalid("Email must contain exactly one @.")
    local, domain = email.split("@")
    if not local:
        raise PiiInvalid("Email must have a name before the @.")
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels):
        raise PiiInvalid("Email must have a domain such as example.com after the @.")
    return email


def phone_normalize(value: str, region: str = "US") -> str:
    """Return a phone number in E.164 form, e.g. ``"+14155550100"``.

    ``region`` is the default country for numbers written without ``+``. The number must be
    valid per ``phonenumbers.is_valid_number`` (see the module docstring for which fictional
    numbers pass) and carry no extension. Raises :class:`PiiInvalid` otherwise (also for a
    non-string).
    """
    if not isinstance(value, str):
        raise PiiInvalid("Phone must be a string.")
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise PiiInvalid("Phone is not a phone number.") from exc
    if not phonenumbers.is_valid_number(number):
        raise PiiInvalid("Phone is not a valid number.")
    # E.164 has no room for an extension; dropping it silently would change the number.
    if number.extension:
        raise PiiInvalid("Phone must not have an extension.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def consumer_hash(value: str) -> str:
    """Return the SHA-256 hex digest (64 lower-case hex chars) of an already-normalized value.

    The value is hashed as UTF-8 exactly as given; normalize it first (or use
    :func:`email_hash` / :func:`phone_hash`).
    """
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def email_hash(raw: str) -> str:
    """Normalize an email with :func:`email_normalize` and return its :func:`consumer_hash`.

    Raises :class:`PiiInvalid` if the email is invalid.
    """
    return consumer_hash(email_normalize(raw))


def phone_hash(raw: str) -> str:
    """Normalize a (US by default) phone with :func:`phone_normalize` and return its hash.

    Raises :class:`PiiInvalid` if the phone is invalid.
    """
    return consumer_hash(phone_normalize(raw))


def example_phone(n: int) -> str:
    """Return the ``n``-th fictional, valid US phone number in E.164 form.

    Deterministic and distinct for ``0 <= n < 10000``: numbers run through 555-0100..555-0199
    of each area code of :data:`EXAMPLE_AREA_CODES` in turn, so ``example_phone(0)`` is
    ``"+12015550100"``, ``example_phone(99)`` is ``"+12015550199"`` and ``example_phone(100)``
    is ``"+12025550100"``. Every result passes :func:`phone_normalize` unchanged. Raises
    :class:`ValueError` for ``n`` outside that range (there are no more reserved numbers).
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError("n must be an int.")
    limit = len(EXAMPLE_AREA_CODES) * _FICTIONAL_LINES
    if not 0 <= n < limit:
        raise ValueError(f"n must be between 0 and {limit - 1}.")
    area_code = EXAMPLE_AREA_CODES[n // _FICTIONAL_LINES]
    line = 100 + n % _FICTIONAL_LINES
    return f"+1{area_code}555{line:04d}"
