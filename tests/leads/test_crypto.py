import datetime
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from leads.crypto import PiiKeyError, pii_decrypt, pii_encrypt, pii_rotate

EMAIL = "jane.doe@example.com"
PII = {"email": EMAIL, "phone": "+14155550100", "first_name": "Jane"}


def new_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def key(settings):
    key = new_key()
    settings.GAVEL_PII_KEYS = [key]
    return key


def test_round_trip_keeps_values_and_strs_decimals_and_dates(key):
    data = {
        **PII,
        "income": Decimal("52000.50"),
        "birth_date": datetime.date(1990, 2, 28),
        "consented_at": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "age": 34,
        "homeowner": True,
        "middle_name": None,
    }

    token = pii_encrypt(data)

    assert isinstance(token, str)
    assert pii_decrypt(token) == {
        **PII,
        "income": "52000.50",
        "birth_date": "1990-02-28",
        "consented_at": "2026-01-02 03:04:05+00:00",
        "age": 34,
        "homeowner": True,
        "middle_name": None,
    }


def test_token_carries_no_plaintext(key):
    token = pii_encrypt(PII)

    substrings = {EMAIL[i : i + 6] for i in range(len(EMAIL) - 5)}
    assert [s for s in substrings if s in token] == []
    assert "Jane" not in token
    assert "4155550100" not in token


def test_same_data_gives_different_tokens(key):
    assert pii_encrypt(PII) != pii_encrypt(PII)


def test_unserializable_value_is_a_type_error(key):
    with pytest.raises(TypeError, match="set"):
        pii_encrypt({"tags": {"a"}})


def test_rotation_moves_a_token_to_the_newest_key(settings):
    old, new = new_key(), new_key()
    settings.GAVEL_PII_KEYS = [old]
    token = pii_encrypt(PII)

    settings.GAVEL_PII_KEYS = [new, old]
    assert pii_decrypt(token) == PII
    rotated = pii_rotate(token)

    assert rotated != token
    settings.GAVEL_PII_KEYS = [new]
    assert pii_decrypt(rotated) == PII
    with pytest.raises(PiiKeyError):
        pii_decrypt(token)
    settings.GAVEL_PII_KEYS = [old]
    assert pii_decrypt(token) == PII
    with pytest.raises(PiiKeyError):
        pii_decrypt(rotated)


def test_new_tokens_use_the_newest_key(settings):
    old, new = new_key(), new_key()
    settings.GAVEL_PII_KEYS = [new, old]

    token = pii_encrypt(PII)

    settings.GAVEL_PII_KEYS = [new]
    assert pii_decrypt(token) == PII


def test_unknown_key_is_a_pii_key_error(settings):
    settings.GAVEL_PII_KEYS = [new_key()]
    token = pii_encrypt(PII)
    settings.GAVEL_PII_KEYS = [new_key()]

    with pytest.raises(PiiKeyError, match="GAVEL_PII_KEYS") as excinfo:
        pii_decrypt(token)
    with pytest.raises(PiiKeyError):
        pii_rotate(token)
    assert token not in str(excinfo.value)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda token: token[:40] + ("B" if token[40] == "A" else "A") + token[41:],
        lambda token: token[:20],
        lambda token: "",
        lambda token: "not a token",
        lambda token: token + "é",
    ],
    ids=["tampered", "truncated", "empty", "garbage", "non-ascii"],
)
def test_corrupt_token_is_a_pii_key_error(key, corrupt):
    token = pii_encrypt(PII)

    with pytest.raises(PiiKeyError):
        pii_decrypt(corrupt(token))
    with pytest.raises(PiiKeyError):
        pii_rotate(corrupt(token))


@pytest.mark.parametrize(
    "keys",
    [
        ["not-a-fernet-key"],
        [new_key(), "c2hvcnQ="],
        [],
    ],
    ids=["garbage", "second-too-short", "empty"],
)
def test_bad_key_setting_is_improperly_configured(settings, keys):
    settings.GAVEL_PII_KEYS = keys

    with pytest.raises(ImproperlyConfigured, match="GAVEL_PII_KEYS") as excinfo:
        pii_encrypt(PII)
    for key in keys:
        assert key not in str(excinfo.value)
    assert excinfo.value.__cause__ is None


def test_single_string_setting_is_improperly_configured(settings):
    settings.GAVEL_PII_KEYS = new_key()

    with pytest.raises(ImproperlyConfigured, match="GAVEL_PII_KEYS"):
        pii_encrypt(PII)


def test_fixed_setting_is_picked_up_after_a_bad_one(settings):
    settings.GAVEL_PII_KEYS = ["bad"]
    with pytest.raises(ImproperlyConfigured):
        pii_encrypt(PII)

    settings.GAVEL_PII_KEYS = [new_key()]

    assert pii_decrypt(pii_encrypt(PII)) == PII
