import hashlib
import pickle

import phonenumbers
import pytest

from core.pii import (
    EXAMPLE_AREA_CODES,
    PiiInvalid,
    consumer_hash,
    email_hash,
    email_normalize,
    example_phone,
    phone_hash,
    phone_normalize,
)

# --- email_normalize ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jane@example.com", "jane@example.com"),
        ("  Jane.Doe@Example.COM \n", "jane.doe@example.com"),
        ("JANE+LEADS@MAIL.EXAMPLE.CO.UK", "jane+leads@mail.example.co.uk"),
        ("a@b.co", "a@b.co"),
        ("o'brien@example.org", "o'brien@example.org"),
        ("\tx_y-z@sub-domain.example.io\t", "x_y-z@sub-domain.example.io"),
    ],
)
def test_email_normalize_good(raw: str, expected: str) -> None:
    assert email_normalize(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "jane",
        "jane.example.com",
        "@example.com",
        "jane@",
        "jane@example",
        "jane@@example.com",
        "jane@doe@example.com",
        "jane doe@example.com",
        "jane@exa mple.com",
        "jane@.example.com",
        "jane@example.com.",
        "jane@example..com",
        "jane@.",
        "jane\x00@example.com",
        "jane@example.com\x7f",
    ],
)
def test_email_normalize_bad(raw: str) -> None:
    with pytest.raises(PiiInvalid):
        email_normalize(raw)


@pytest.mark.parametrize("raw", [None, 42, b"jane@example.com", ["jane@example.com"]])
def test_email_normalize_rejects_non_strings(raw: object) -> None:
    with pytest.raises(PiiInvalid, match="Email must be a string."):
        email_normalize(raw)  # type: ignore[arg-type]


def test_pii_invalid_is_a_value_error() -> None:
    assert issubclass(PiiInvalid, ValueError)


# --- phone_normalize ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 201 555 0123", "+12015550123"),
        ("+14155550100", "+14155550100"),
        ("+14155552671", "+14155552671"),
        ("(415) 555-2671", "+14155552671"),
        ("(415) 555-0199", "+14155550199"),
        ("415.555.0100", "+14155550100"),
        ("4155550100", "+14155550100"),
        ("1-415-555-0100", "+14155550100"),
        ("+1 (212) 555-0100", "+12125550100"),
        ("  +1 312 555 0150  ", "+13125550150"),
        ("+1 800 555 0100", "+18005550100"),
    ],
)
def test_phone_normalize_good(raw: str, expected: str) -> None:
    assert phone_normalize(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "hello",
        "555-0100",
        "+1 415 555 010",
        "+1 415 555 01000",
        "+1 555 555 0100",
        "+1 200 555 0100",
        "+1 123 456 7890",
        "+1 911 555 0100",
        "415-555-0100 ext 5",
        "4155550100x12",
    ],
)
def test_phone_normalize_bad(raw: str) -> None:
    with pytest.raises(PiiInvalid):
        phone_normalize(raw)


@pytest.mark.parametrize("raw", [None, 4155550100, b"+14155550100"])
def test_phone_normalize_rejects_non_strings(raw: object) -> None:
    with pytest.raises(PiiInvalid, match="Phone must be a string."):
        phone_normalize(raw)  # type: ignore[arg-type]


def test_phone_normalize_other_region() -> None:
    assert phone_normalize("020 7946 0958", region="GB") == "+442079460958"
    assert phone_normalize("+44 20 7946 0958") == "+442079460958"
    with pytest.raises(PiiInvalid):
        phone_normalize("020 7946 0958")  # not a US number


# --- hashes ------------------------------------------------------------------------------------


def test_consumer_hash_is_sha256_hex_of_the_value_as_given() -> None:
    assert consumer_hash("") == ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert consumer_hash("abc") == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert consumer_hash("+14155550100") == hashlib.sha256(b"+14155550100").hexdigest()
    assert consumer_hash("Jane@Example.com") != consumer_hash("jane@example.com")


def test_consumer_hash_encodes_utf8() -> None:
    expected = "b0a53cf19e34d05b57bced7365c6b00ddbe38d62957e863de2a66a56c3b42cea"
    assert consumer_hash("josé@example.com") == expected


@pytest.mark.parametrize("raw", ["jane@example.com", " Jane@Example.com ", "JANE@EXAMPLE.COM\n"])
def test_email_hash_normalizes_first(raw: str) -> None:
    assert email_hash(raw) == "8c87b489ce35cf2e2f39f80e282cb2e804932a56a213983eeeb428407d43b52d"
    assert email_hash(raw) == hashlib.sha256(b"jane@example.com").hexdigest()


@pytest.mark.parametrize("raw", ["+14155550100", "(415) 555-0100", "415.555.0100", "1 415 555 0100"])
def test_phone_hash_normalizes_first(raw: str) -> None:
    assert phone_hash(raw) == "40d3f4e02db27d66cf4cfdda506c2c945f115a7955cc8491dda98ce5beabcda0"
    assert phone_hash(raw) == hashlib.sha256(b"+14155550100").hexdigest()


def test_hash_helpers_reject_invalid_values() -> None:
    with pytest.raises(PiiInvalid):
        email_hash("not an email")
    with pytest.raises(PiiInvalid):
        phone_hash("555-0100")


# --- example_phone -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "+12015550100"),
        (1, "+12015550101"),
        (23, "+12015550123"),
        (99, "+12015550199"),
        (100, "+12025550100"),
        (4399, "+14155550199"),
        (9999, "+18135550199"),
    ],
)
def test_example_phone_values(n: int, expected: str) -> None:
    assert example_phone(n) == expected


def test_example_phone_covers_the_design_example() -> None:
    assert example_phone(EXAMPLE_AREA_CODES.index("415") * 100) == "+14155550100"


def test_every_example_phone_is_valid_distinct_and_fictional() -> None:
    numbers = [example_phone(n) for n in range(len(EXAMPLE_AREA_CODES) * 100)]
    assert len(numbers) == 10_000
    assert len(set(numbers)) == len(numbers)
    for number in numbers:
        assert phone_normalize(number) == number
        parsed = phonenumbers.parse(number)
        assert phonenumbers.region_code_for_number(parsed) == "US"
        assert number[5:9] == "5550" and "0100" <= number[8:] <= "0199"


@pytest.mark.parametrize("n", [-1, 10_000, 10**9])
def test_example_phone_out_of_range(n: int) -> None:
    with pytest.raises(ValueError, match="n must be between 0 and 9999."):
        example_phone(n)


@pytest.mark.parametrize("n", [True, 1.0, "1"])
def test_example_phone_requires_an_int(n: object) -> None:
    with pytest.raises(TypeError):
        example_phone(n)  # type: ignore[arg-type]


def test_pii_invalid_pickles() -> None:
    exc = pickle.loads(pickle.dumps(PiiInvalid("Phone is not a valid number.")))
    assert str(exc) == "Phone is not a valid number."
