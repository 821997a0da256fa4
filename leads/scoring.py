"""The lead quality score: a deterministic 0-100 number computed at ping time.

It uses only what a ping carries, so a buyer can check it against the ping it was shown, and the
rule (:data:`SCORE_RULES`) is published in the API docs. Contracts filter on it
(``below_min_score``, DESIGN.md section 8).

This module must not import Django: the ping path and the tools share it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from core.schema import FieldSpec

__all__ = ["SCORE_RULES", "quality_score"]

SCORE_RULES = (
    "Every lead starts at 40 points. +20 if the consent carries a TrustedForm certificate URL "
    "(trusted_form_cert_url) or a Jornaya LeadiD (jornaya_leadid), +10 more if it carries both. "
    "+10 if the consumer has a well-formed email hash (email_sha256) and +10 if a well-formed "
    "phone hash (phone_sha256), a well-formed hash being 64 lowercase hexadecimal characters; "
    "malformed hashes count for nothing. Up to +10 for the share of the offer's optional ping "
    "fields the ping fills in (10 times the share, rounded half up; a field counts when it is "
    "present with a value other than null or an empty string; the full 10 when the offer has no "
    "optional ping fields). The score is capped at 100."
)

_BASE = 40
_ONE_CONSENT_PROOF = 20
_BOTH_CONSENT_PROOFS = 10
_HASH_POINTS = 10
_OPTIONAL_FIELDS_POINTS = 10
_MAX = 100
_CONSENT_PROOFS = ("trusted_form_cert_url", "jornaya_leadid")
_CONSUMER_HASHES = ("email_sha256", "phone_sha256")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _has_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_sha256_hex(value: object) -> bool:
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


def _is_filled(value: object) -> bool:
    return value is not None and value != ""


def quality_score(
    *,
    lead: Mapping[str, object],
    fields: Mapping[str, FieldSpec],
    consumer: Mapping[str, str | None],
    consent: Mapping[str, object] | None,
    tracking: Mapping[str, object] | None,
) -> int:
    """Return the ping's quality score, an int from 40 to 100, by the rule of :data:`SCORE_RULES`.

    - 40 to start;
    - +20 if ``consent`` has a non-blank ``trusted_form_cert_url`` or ``jornaya_leadid`` string,
      +10 more if it has both;
    - +10 if ``consumer["email_sha256"]`` and +10 if ``consumer["phone_sha256"]`` is 64 lowercase
      hex characters (anything else, e.g. upper case or the wrong length, counts for nothing);
    - + round_half_up(10 * present / total) over the offer's ``ping: optional`` fields, where a
      field is present when ``lead`` has it with a value other than None or ``""``; +10 when the
      offer has no optional ping fields;
    - capped at 100.

    Deterministic: the same arguments always give the same score. ``tracking`` does not count
    (sub ids say where a lead came from, not how good it is); it is taken so that callers pass
    the whole ping. Keys of ``lead`` that are not optional ping fields do not count either.
    """
    score = _BASE

    proofs = sum(1 for name in _CONSENT_PROOFS if consent is not None and _has_text(consent.get(name)))
    if proofs >= 1:
        score += _ONE_CONSENT_PROOF
    if proofs == len(_CONSENT_PROOFS):
        score += _BOTH_CONSENT_PROOFS

    score += _HASH_POINTS * sum(1 for name in _CONSUMER_HASHES if _is_sha256_hex(consumer.get(name)))

    optional = [name for name, spec in fields.items() if spec.ping == "optional"]
    if optional:
        present = sum(1 for name in optional if _is_filled(lead.get(name)))
        # round_half_up(points * present / total) in integers: no float ties to get wrong.
        total = len(optional)
        score += (2 * _OPTIONAL_FIELDS_POINTS * present + total) // (2 * total)
    else:
        score += _OPTIONAL_FIELDS_POINTS

    return min(score, _MAX)
