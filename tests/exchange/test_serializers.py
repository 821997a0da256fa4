"""The ping's quick validation agrees with DRF's PingInput wherever it answers
(exchange/api/serializers.py: ping_input_quick)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from exchange.api.serializers import PingInput, ping_input_quick
from tests.exchange.builder import ping_body, sha

HASH = sha("consumer@example.com")
WILD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.just([]),
    st.just({}),
    st.sampled_from(["", " ", "a" * 256, "a\x00b", "\ud800", "x" * 101, HASH.upper(), "https://cert.example/1"]),
    st.text(max_size=40),
)
# Text DRF takes: no NUL character, no lone surrogate.
TEXT = st.one_of(
    st.sampled_from(["fb-123", " padded ", "a" * 100, "é", "", " ", None]),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30),
)
HASHES = st.sampled_from([HASH, f" {HASH} ", f"{HASH}\n", None])


def _object(values: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=values)


# Pings the quick check must answer: every part valid as DRF sees it, optional parts present or not.
VALID = st.fixed_dictionaries(
    {
        "campaign": st.sampled_from(["cmp_seller", " cmp_seller ", "c" * 64, "é"]),
        "lead": st.dictionaries(st.text(max_size=8), st.one_of(WILD, TEXT), max_size=4),
    },
    optional={
        "test": st.booleans(),
        "consumer": _object({"email_sha256": HASHES, "phone_sha256": HASHES}),
        "tracking": _object({"sub_id1": TEXT, "sub_id5": TEXT, "click_id": TEXT}),
        "consent": _object(
            {
                "jornaya_leadid": TEXT.filter(lambda t: t is None or len(t.strip()) <= 100),
                "trusted_form_cert_url": st.sampled_from(["", " ", None]),
            }
        ),
    },
)
PARTS = ["campaign", "lead", "test", "consumer", "tracking", "consent", "unknown"]
# The same with one part, or one field of a nested part, replaced by anything at all.
SPOILED = st.one_of(
    st.tuples(VALID, st.sampled_from(PARTS), WILD).map(lambda t: {**t[0], t[1]: t[2]}),
    st.tuples(
        VALID,
        st.sampled_from(PARTS[3:6]),
        st.sampled_from(["email_sha256", "sub_id1", "jornaya_leadid", "trusted_form_cert_url", "other"]),
        WILD,
    ).map(lambda t: {**t[0], t[1]: {**(t[0].get(t[1]) or {}), t[2]: t[3]}}),
)


def _drf(data: object) -> dict[str, Any] | None:
    serializer = PingInput(data=data)
    return serializer.validated_data if serializer.is_valid() else None


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALID)
def test_a_valid_ping_takes_the_quick_path_to_drfs_answer(data):
    assert ping_input_quick(data) == _drf(data) is not None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SPOILED)
def test_wherever_the_quick_check_answers_drf_answers_the_same(data):
    quick = ping_input_quick(data)
    if quick is not None:
        assert quick == _drf(data)
    event("quick" if quick is not None else "left to DRF")


@given(st.one_of(WILD, st.lists(WILD, max_size=2)))
def test_what_is_not_an_object_is_left_to_drf(data):
    assert ping_input_quick(data) is None


def test_the_pings_sellers_send_take_the_quick_path():
    full = {
        **ping_body(1),
        "test": True,
        "tracking": {"sub_id1": " fb-123 ", "click_id": None, "sub_id2": ""},
        "consent": {"jornaya_leadid": "LEAD-1", "trusted_form_cert_url": ""},
    }
    for data in (ping_body(0), full, {**ping_body(2), "consumer": {"email_sha256": None}}):
        quick = ping_input_quick(data)
        assert quick is not None and quick == _drf(data)
    assert ping_input_quick(full)["tracking"] == {"sub_id1": "fb-123", "click_id": None, "sub_id2": ""}


def test_a_trusted_form_url_is_left_to_drfs_url_check():
    data = {**ping_body(3), "consent": {"trusted_form_cert_url": "https://cert.trustedform.com/abc"}}
    assert ping_input_quick(data) is None
    assert _drf(data)["consent"] == {"trusted_form_cert_url": "https://cert.trustedform.com/abc"}
