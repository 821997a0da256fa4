"""The lead quality score: a deterministic 0-100 number and the signals it is the sum of.

A score is ``BASE`` plus the points of each signal, clamped to 0-100. The signals are stored with
the ping (``Ping.quality_signals``) and the lead (``Lead.quality_signals``) as a JSON object of
signal name -> points, so the operator sees why a lead scored what it did; buyers see the score.
The method, each signal's points and why, is in docs/auction.md ("Quality score").

Two stages:

* :func:`ping_signals` — what a ping carries, plus what the exchange knows of its source and of
  the consumer's recent pings (passed in: this module does no I/O): completeness, ZIP–state
  consistency, TrustedForm/Jornaya presence, the campaign's return and delivery-reject rates,
  velocity across sellers. The offer's and the contracts' ``min_score`` apply to this score at
  the auction.
* :func:`post_signals` — what only the full lead carries: phone type, email (disposable
  domains), name sanity, and the certificate verifier's answer. Added to the ping's, they make
  the lead's score, to which the offer's and the contracts' ``min_score`` apply again at the post.

This module must not import Django: the ping path and the tools share it. Its offline data (ZIP
codes, disposable domains) is loaded once per process (:func:`scoring_warm`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

import disposable_email_domains
import phonenumbers
import zipcodes

from core.schema import FieldSpec

__all__ = [
    "BASE",
    "SCORE_RULES",
    "SIGNAL_LABELS",
    "SourceRates",
    "post_signals",
    "ping_signals",
    "quality_score",
    "score_of",
    "scoring_warm",
]

BASE = 50

# --- points (docs/auction.md "Quality score" explains each) --------------------------------------
COMPLETENESS_POINTS = 10
ZIP_STATE_MATCH = 5
ZIP_STATE_MISMATCH = -20
TRUSTED_FORM_POINTS = 10
JORNAYA_POINTS = 5
CERTIFICATE_VERIFIED = 5
CERTIFICATE_INVALID = -25
RETURNS_MAX_PENALTY = -15  # at a 30 % return rate or more: -1 point per 2 % returned
REJECTS_MAX_PENALTY = -10  # at a 50 % delivery-reject rate or more: -1 point per 5 % rejected
RATES_MIN_SAMPLE = 20  # fewer sales (deliveries) in the window: the rate says nothing yet
VELOCITY_PER_SELLER = -10
VELOCITY_MAX_PENALTY = -30
PHONE_POINTS = {"mobile": 10, "fixed_line_or_mobile": 8, "fixed_line": 5, "voip": -5, "invalid": -20}
PHONE_OTHER = 0  # toll free, pager, personal number... valid but not a consumer's line
EMAIL_OK = 5
EMAIL_DISPOSABLE = -20
EMAIL_INVALID = -20
NAME_OK = 5
NAME_SUSPECT = -15

SCORE_RULES = (
    f"Every lead starts at {BASE} points; each signal adds or takes points and the sum is kept "
    "within 0-100. At the ping: completeness (up to +10: the share of the offer's optional ping "
    "fields present), ZIP-state consistency (+5 when the ZIP is in the state, -20 when it is in "
    "another; 0 when unknown), TrustedForm certificate (+10) and Jornaya LeadiD (+5) present, the "
    "source's return rate over 30 days (-1 per 2 %, at most -15) and delivery-reject rate (-1 per "
    "5 %, at most -10) once it has 20 sales or deliveries, velocity (-10 for each other seller that "
    "sent the same email, phone or IP in the last hour, at most -30). At the post: phone type "
    "(mobile +10, mobile or landline +8, landline +5, VoIP -5), email (+5; a disposable domain "
    "-20), name (+5; empty, 'test', digits or keyboard mash -15) and the certificate verifier when "
    "one is set (+5 verified, -25 invalid). Offer and contract minimums apply at the ping and again "
    "to the lead's score at the post."
)


# Each signal in words, for the operator's waterfall (the admin's ping page).
SIGNAL_LABELS = {
    "base": "Starting points",
    "completeness": "Optional ping fields filled in",
    "zip_state": "ZIP code and state agree",
    "trusted_form": "TrustedForm certificate present",
    "jornaya": "Jornaya LeadiD present",
    "source_returns": "Source's return rate (30 days)",
    "source_rejects": "Source's delivery-reject rate (30 days)",
    "velocity": "Same consumer from other sellers in the last hour",
    "phone": "Phone type",
    "email": "Email (disposable domain?)",
    "name": "Name looks real",
    "certificate": "Consent certificate verified",
}


@dataclass(frozen=True)
class SourceRates:
    """A campaign's recent return and delivery-reject rates (0-1) and the counts behind them."""

    return_rate: float = 0.0
    sales: int = 0
    reject_rate: float = 0.0
    deliveries: int = 0


NO_RATES = SourceRates()


@functools.cache
def _zip_states() -> dict[str, str]:
    """ZIP code -> state, from the ``zipcodes`` package's offline data (built once: ~0.4 s)."""
    return {z["zip_code"]: z["state"] for z in zipcodes.list_all()}


@functools.cache
def _disposable() -> frozenset[str]:
    return frozenset(disposable_email_domains.blocklist)


def scoring_warm() -> None:
    """Load the offline data now (a web process at start), not on the first ping."""
    _zip_states()
    _disposable()


def _is_filled(value: object) -> bool:
    return value is not None and value != ""


def _has_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _completeness(lead: Mapping[str, object], fields: Mapping[str, FieldSpec]) -> int:
    optional = [name for name, spec in fields.items() if spec.ping == "optional"]
    if not optional:
        return COMPLETENESS_POINTS
    present = sum(1 for name in optional if _is_filled(lead.get(name)))
    total = len(optional)
    # round_half_up(points * present / total) in integers: no float ties to get wrong.
    return (2 * COMPLETENESS_POINTS * present + total) // (2 * total)


def _zip_state(lead: Mapping[str, object], fields: Mapping[str, FieldSpec]) -> int | None:
    """+5 / -20 / None (no ZIP or state field, or a ZIP the data does not know)."""
    zip_value = next((lead.get(n) for n, s in fields.items() if s.type == "zip" and _is_filled(lead.get(n))), None)
    state = next((lead.get(n) for n, s in fields.items() if s.type == "state" and _is_filled(lead.get(n))), None)
    if not isinstance(zip_value, str) or not isinstance(state, str):
        return None
    known = _zip_states().get(zip_value[:5])
    if known is None:
        return None
    return ZIP_STATE_MATCH if known == state.upper() else ZIP_STATE_MISMATCH


def _rate_penalty(rate: float, count: int, per_point: float, floor: int) -> int:
    if count < RATES_MIN_SAMPLE or rate <= 0:
        return 0
    return max(floor, -int(rate / per_point))


def ping_signals(
    *,
    lead: Mapping[str, object],
    fields: Mapping[str, FieldSpec],
    consent: Mapping[str, object] | None,
    rates: SourceRates = NO_RATES,
    other_sellers: int = 0,
) -> dict[str, int]:
    """The ping's signals, name -> points (a signal that does not apply is left out).

    ``rates``: the source campaign's (refreshed by a periodic task, read from the contract book);
    ``other_sellers``: how many other sellers sent this consumer (email hash, phone hash or IP) in
    the last hour (``exchange.velocity``)."""
    signals = {"base": BASE, "completeness": _completeness(lead, fields)}
    zip_state = _zip_state(lead, fields)
    if zip_state is not None:
        signals["zip_state"] = zip_state
    if consent is not None and _has_text(consent.get("trusted_form_cert_url")):
        signals["trusted_form"] = TRUSTED_FORM_POINTS
    if consent is not None and _has_text(consent.get("jornaya_leadid")):
        signals["jornaya"] = JORNAYA_POINTS
    returns = _rate_penalty(rates.return_rate, rates.sales, 0.02, RETURNS_MAX_PENALTY)
    if returns:
        signals["source_returns"] = returns
    rejects = _rate_penalty(rates.reject_rate, rates.deliveries, 0.05, REJECTS_MAX_PENALTY)
    if rejects:
        signals["source_rejects"] = rejects
    if other_sellers > 0:
        signals["velocity"] = max(VELOCITY_MAX_PENALTY, VELOCITY_PER_SELLER * other_sellers)
    return signals


_PHONE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE: "mobile",
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    phonenumbers.PhoneNumberType.FIXED_LINE: "fixed_line",
    phonenumbers.PhoneNumberType.VOIP: "voip",
}


def phone_kind(value: str) -> str:
    """``mobile``, ``fixed_line_or_mobile`` (what the data says of most US numbers), ``fixed_line``,
    ``voip``, ``other`` (valid: toll free, pager...) or ``invalid``, by phonenumbers' offline data."""
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException:
        return "invalid"
    if not phonenumbers.is_valid_number(number):
        return "invalid"
    return _PHONE_TYPES.get(phonenumbers.number_type(number), "other")


_EMAIL = re.compile(r"[^@\s]+@([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)")


def email_kind(value: str) -> str:
    """``ok``, ``disposable`` (its domain, or a parent domain, is on the disposable list) or ``invalid``."""
    match = _EMAIL.fullmatch(value.strip())
    if match is None:
        return "invalid"
    labels = match.group(1).lower().split(".")
    blocked = _disposable()
    if any(".".join(labels[i:]) in blocked for i in range(len(labels) - 1)):
        return "disposable"
    return "ok"


_TEST_WORDS = frozenset({"test", "testing", "tester", "asdf", "qwerty", "fake", "none", "na", "n/a", "xxx", "abc"})
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_VOWELS = frozenset("aeiouy")


def _mashed(word: str) -> bool:
    """Keyboard mash: 4+ letters along a keyboard row, one letter repeated 3+ times, or 5+ letters
    with no vowel (Latin letters only: a name in another script is not judged)."""
    if not word.isascii():
        return False
    if any(len(word) >= 4 and word in row for row in _KEYBOARD_ROWS):
        return True
    if re.search(r"(.)\1\1", word):
        return True
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 5 and not any(c in _VOWELS for c in letters)


def name_is_sane(*parts: str) -> bool:
    """Not empty; no digits; not "test"-like; not keyboard mash."""
    words = [w for part in parts for w in re.split(r"[\s\-'.]+", part.strip().lower()) if w]
    if not words:
        return False
    if any(ch.isdigit() for w in words for ch in w):
        return False
    if all(w in _TEST_WORDS for w in words) or any(w in ("test", "testing") for w in words):
        return False
    return not any(_mashed(w) for w in words)


_NAME_FIELDS = ("first_name", "last_name", "name", "full_name")


def post_signals(
    *, values: Mapping[str, object], fields: Mapping[str, FieldSpec], certificate: str | None = None
) -> dict[str, int]:
    """The post's signals, name -> points: phone type (each phone field: the first), email (the
    first email field), name sanity (over ``first_name``/``last_name``/``name``/``full_name`` present
    in the offer), and the certificate verifier's answer (``verified``/``invalid``; anything else,
    e.g. ``unreachable`` or None, counts nothing)."""
    signals: dict[str, int] = {}
    phone = next((values.get(n) for n, s in fields.items() if s.type == "phone" and _has_text(values.get(n))), None)
    if isinstance(phone, str):
        signals["phone"] = PHONE_POINTS.get(phone_kind(phone), PHONE_OTHER)
    email = next((values.get(n) for n, s in fields.items() if s.type == "email" and _has_text(values.get(n))), None)
    if isinstance(email, str):
        kind = email_kind(email)
        signals["email"] = EMAIL_OK if kind == "ok" else EMAIL_DISPOSABLE if kind == "disposable" else EMAIL_INVALID
    names = [n for n in _NAME_FIELDS if n in fields]
    if names:
        parts = [str(values.get(n) or "") for n in names]
        signals["name"] = NAME_OK if name_is_sane(*parts) else NAME_SUSPECT
    if certificate == "verified":
        signals["certificate"] = CERTIFICATE_VERIFIED
    elif certificate == "invalid":
        signals["certificate"] = CERTIFICATE_INVALID
    return signals


def score_of(signals: Mapping[str, int]) -> int:
    """The score of a set of signals (``base`` included): their sum, clamped to 0-100."""
    return max(0, min(100, sum(signals.values())))


def quality_score(
    *,
    lead: Mapping[str, object],
    fields: Mapping[str, FieldSpec],
    consumer: Mapping[str, str | None] | None = None,
    consent: Mapping[str, object] | None,
    tracking: Mapping[str, object] | None = None,
) -> int:
    """A ping's score from what the ping alone carries (no source rates, no velocity): for tools
    that score a sample ping (the contract tester). ``consumer`` and ``tracking`` do not count."""
    return score_of(ping_signals(lead=lead, fields=fields, consent=consent))
