import hashlib

import pytest

from core.schema import FieldSpec
from leads.scoring import SCORE_RULES, quality_score

EMAIL_HASH = hashlib.sha256(b"jane.doe@example.com").hexdigest()
PHONE_HASH = hashlib.sha256(b"+14155550100").hexdigest()
CONSENT = {"trusted_form_cert_url": "https://cert.trustedform.com/abc", "jornaya_leadid": "LEADID-123"}


def specs(*fields: FieldSpec) -> dict[str, FieldSpec]:
    return {spec.name: spec for spec in fields}


# state and zip required, three optional ping fields, PII only at post.
FIELDS = specs(
    FieldSpec(name="state", type="state", ping="required", required=True),
    FieldSpec(name="zip", type="zip", ping="required", required=True),
    FieldSpec(name="age", type="integer", ping="optional"),
    FieldSpec(name="homeowner", type="boolean", ping="optional"),
    FieldSpec(name="credit", type="choice", ping="optional", choices=("good", "fair", "poor")),
    FieldSpec(name="income", type="decimal", ping="no"),
    FieldSpec(name="email", type="email", pii=True, required=True),
)
NO_OPTIONAL_FIELDS = specs(FieldSpec(name="state", type="state", ping="required", required=True))


def score(*, lead=None, fields=FIELDS, consumer=None, consent=None, tracking=None) -> int:
    return quality_score(
        lead=lead if lead is not None else {"state": "CA", "zip": "94107"},
        fields=fields,
        consumer=consumer if consumer is not None else {},
        consent=consent,
        tracking=tracking,
    )


def test_bare_ping_scores_the_minimum_40():
    assert score() == 40


def test_complete_ping_scores_100():
    lead = {"state": "CA", "zip": "94107", "age": 34, "homeowner": False, "credit": "good"}

    assert (
        score(
            lead=lead,
            consumer={"email_sha256": EMAIL_HASH, "phone_sha256": PHONE_HASH},
            consent=CONSENT,
            tracking={"sub_id1": "fb-123"},
        )
        == 100
    )


@pytest.mark.parametrize(
    ("consent", "expected"),
    [
        (None, 40),
        ({}, 40),
        ({"trusted_form_cert_url": "https://cert.trustedform.com/abc"}, 60),
        ({"jornaya_leadid": "LEADID-123"}, 60),
        (CONSENT, 70),
        ({"trusted_form_cert_url": "", "jornaya_leadid": "   "}, 40),
        ({"trusted_form_cert_url": None, "jornaya_leadid": "LEADID-123"}, 60),
        ({"trusted_form_cert_url": 123, "jornaya_leadid": ["x"]}, 40),
    ],
    ids=["none", "empty", "trustedform", "jornaya", "both", "blank", "null-and-one", "not-strings"],
)
def test_consent_proofs(consent, expected):
    assert score(consent=consent) == expected


@pytest.mark.parametrize(
    ("consumer", "expected"),
    [
        ({"email_sha256": EMAIL_HASH}, 50),
        ({"phone_sha256": PHONE_HASH}, 50),
        ({"email_sha256": EMAIL_HASH, "phone_sha256": PHONE_HASH}, 60),
        ({"email_sha256": EMAIL_HASH.upper(), "phone_sha256": PHONE_HASH}, 50),
        ({"email_sha256": EMAIL_HASH[:-1], "phone_sha256": PHONE_HASH + "0"}, 40),
        ({"email_sha256": "g" * 64, "phone_sha256": f" {PHONE_HASH[1:]}"}, 40),
        ({"email_sha256": f"{EMAIL_HASH}\n", "phone_sha256": None}, 40),
        ({"email_sha256": "", "phone_sha256": ""}, 40),
    ],
    ids=["email", "phone", "both", "uppercase", "wrong-length", "not-hex", "trailing-newline", "empty"],
)
def test_consumer_hashes_and_malformed_ones_ignored(consumer, expected):
    assert score(consumer=consumer) == expected


@pytest.mark.parametrize(
    ("optional_values", "expected"),
    [
        ({}, 40),
        ({"age": 34}, 43),  # 10 * 1/3 = 3.33 -> 3
        ({"age": 34, "homeowner": False}, 47),  # 10 * 2/3 = 6.67 -> 7
        ({"age": 34, "homeowner": False, "credit": "fair"}, 50),
        ({"age": None, "homeowner": "", "credit": "fair"}, 43),  # null and "" are absent
        ({"age": 0, "homeowner": False}, 47),  # falsy values are present
    ],
)
def test_share_of_optional_ping_fields(optional_values, expected):
    assert score(lead={"state": "CA", "zip": "94107", **optional_values}) == expected


@pytest.mark.parametrize(
    ("present", "total", "expected"),
    [(1, 4, 43), (3, 4, 48), (1, 8, 41), (3, 8, 44), (5, 8, 46), (1, 20, 41), (1, 21, 40)],
    ids=["2.5-up", "7.5-up", "1.25-down", "3.75-up", "6.25-down", "0.5-up", "0.48-down"],
)
def test_optional_share_rounds_half_up(present, total, expected):
    fields = specs(*(FieldSpec(name=f"f{i}", type="string", ping="optional") for i in range(total)))
    lead = {f"f{i}": "x" for i in range(present)}

    assert score(lead=lead, fields=fields) == expected


def test_offer_without_optional_ping_fields_gets_the_full_10():
    assert score(lead={"state": "CA"}, fields=NO_OPTIONAL_FIELDS) == 50


def test_only_optional_ping_fields_count():
    # Required ping fields, post-only fields, PII and unknown keys add nothing.
    lead = {"state": "CA", "zip": "94107", "income": "52000", "email": "jane@example.com", "extra": 1}

    assert score(lead=lead) == 40


def test_score_is_capped_at_100_whatever_else_the_ping_carries():
    consumer = {"email_sha256": EMAIL_HASH, "phone_sha256": PHONE_HASH, "other_sha256": PHONE_HASH}
    consent = {**CONSENT, "text": "By clicking…", "ip": "203.0.113.7"}

    assert score(lead={"state": "CA"}, fields=NO_OPTIONAL_FIELDS, consumer=consumer, consent=consent) == 100


def test_tracking_does_not_change_the_score():
    args = {"consumer": {"email_sha256": EMAIL_HASH}, "consent": {"jornaya_leadid": "L"}}

    assert score(**args, tracking=None) == score(**args, tracking={"sub_id1": "fb-123", "sub_id2": None}) == 70


def test_score_is_deterministic():
    args = {"lead": {"state": "CA", "age": 34}, "consumer": {"phone_sha256": PHONE_HASH}, "consent": CONSENT}

    assert {score(**args) for _ in range(5)} == {83}


def test_rules_are_published():
    assert "40" in SCORE_RULES
    assert "capped at 100" in SCORE_RULES
    assert "\n" not in SCORE_RULES
