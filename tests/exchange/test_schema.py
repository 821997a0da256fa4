import datetime
import json
import pickle
from decimal import Decimal
from typing import Any

import pytest

from core.schema import (
    FIELD_TYPES,
    PING_MODES,
    US_STATE_CODES,
    FieldSpec,
    LeadInvalid,
    SchemaError,
    lead_validate,
    offer_fields_dump,
    offer_fields_parse,
)

# The example of DESIGN.md section 5, plus one field of each remaining type.
MARKET_FIELDS: list[dict[str, Any]] = [
    {"name": "state", "type": "state", "ping": "required"},
    {"name": "zip", "type": "zip", "ping": "required"},
    {"name": "age", "type": "integer", "ping": "optional", "min": 18, "max": 120},
    {"name": "email", "type": "email", "pii": True},
    {"name": "phone", "type": "phone", "pii": True},
    {"name": "first_name", "type": "string", "pii": True, "max_length": 5},
    {"name": "income", "type": "decimal", "ping": "optional", "min": "0", "max": "1000000.50"},
    {"name": "homeowner", "type": "boolean", "ping": "optional"},
    {"name": "plan", "type": "choice", "choices": ["basic", "premium"], "ping": "optional"},
    {"name": "birth_date", "type": "date"},
    {"name": "comments", "type": "string"},
]


@pytest.fixture
def fields() -> dict[str, FieldSpec]:
    return offer_fields_parse(MARKET_FIELDS)


def field_of(spec: dict[str, Any]) -> dict[str, FieldSpec]:
    return offer_fields_parse([{"name": "f", **spec}])


# --- offer_fields_parse: good input ------------------------------------------------------------


def test_parse_example_market_fields() -> None:
    parsed = offer_fields_parse(
        [
            {"name": "state", "type": "state", "ping": "required"},
            {"name": "age", "type": "integer", "ping": "optional", "min": 18, "max": 120},
            {"name": "email", "type": "email", "pii": True},
            {"name": "plan", "type": "choice", "choices": ["a", "b"]},
        ]
    )
    assert list(parsed) == ["state", "age", "email", "plan"]
    assert parsed == {
        "state": FieldSpec(name="state", type="state", ping="required", required=True),
        "age": FieldSpec(name="age", type="integer", ping="optional", min=Decimal(18), max=Decimal(120)),
        "email": FieldSpec(name="email", type="email", pii=True, required=True),
        "plan": FieldSpec(name="plan", type="choice", choices=("a", "b")),
    }
    assert isinstance(parsed["age"].min, Decimal)


def test_parse_preserves_declaration_order(fields: dict[str, FieldSpec]) -> None:
    assert list(fields) == [item["name"] for item in MARKET_FIELDS]


def test_parse_empty_list() -> None:
    assert offer_fields_parse([]) == {}


@pytest.mark.parametrize("field_type", FIELD_TYPES)
def test_parse_every_type_with_defaults(field_type: str) -> None:
    spec: dict[str, Any] = {"type": field_type}
    if field_type == "choice":
        spec["choices"] = ["x"]
    parsed = field_of(spec)["f"]
    assert (parsed.name, parsed.type, parsed.ping, parsed.pii, parsed.required) == (
        "f",
        field_type,
        "no",
        False,
        False,
    )


@pytest.mark.parametrize(
    ("spec", "expected_required"),
    [
        ({"ping": "required"}, True),
        ({"ping": "optional"}, False),
        ({"ping": "no"}, False),
        ({}, False),
        ({"pii": True}, True),
        ({"pii": False}, False),
        ({"pii": True, "required": False}, False),
        ({"ping": "optional", "required": True}, True),
        ({"ping": "no", "required": True}, True),
        ({"ping": "required", "required": True}, True),
    ],
)
def test_parse_required_default(spec: dict[str, Any], expected_required: bool) -> None:
    assert field_of({"type": "string", **spec})["f"].required is expected_required


@pytest.mark.parametrize(
    ("field_type", "bounds", "expected"),
    [
        ("integer", {"min": 18, "max": 120}, (Decimal(18), Decimal(120))),
        ("integer", {"min": "18", "max": "18"}, (Decimal(18), Decimal(18))),
        ("integer", {"min": -5}, (Decimal(-5), None)),
        ("integer", {"max": 10.0}, (None, Decimal(10))),
        ("integer", {"min": None, "max": None}, (None, None)),
        ("decimal", {"min": "0.01", "max": "99.99"}, (Decimal("0.01"), Decimal("99.99"))),
        ("decimal", {"min": 0.5}, (Decimal("0.5"), None)),
        ("decimal", {"min": " 1.5 "}, (Decimal("1.5"), None)),
        ("decimal", {"max": Decimal("7.25")}, (None, Decimal("7.25"))),
    ],
)
def test_parse_bounds(field_type: str, bounds: dict[str, Any], expected: tuple[Decimal | None, Decimal | None]) -> None:
    parsed = field_of({"type": field_type, **bounds})["f"]
    assert (parsed.min, parsed.max) == expected


def test_parse_max_length_and_choices() -> None:
    assert field_of({"type": "string", "max_length": 1})["f"].max_length == 1
    assert field_of({"type": "choice", "choices": ("b", "a")})["f"].choices == ("b", "a")


def test_parse_custom_path_prefix() -> None:
    with pytest.raises(SchemaError) as info:
        offer_fields_parse([{"name": "x", "type": "nope"}], path="offers[3].fields")
    assert info.value.path == "offers[3].fields[0].type"


# --- offer_fields_parse: every error ------------------------------------------------------------

TYPES_LIST = "string, integer, decimal, boolean, choice, date, state, zip, email, phone"


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        (None, "fields", "Must be a list of fields."),
        ({"name": "x", "type": "string"}, "fields", "Must be a list of fields."),
        ("state", "fields", "Must be a list of fields."),
        ([{"name": "a", "type": "string"}, "b"], "fields[1]", "Must be a mapping."),
        ([["name", "a"]], "fields[0]", "Must be a mapping."),
        ([{"name": "a", "type": "string", "label": "A"}], "fields[0].label", "Unknown key."),
        ([{"name": "a", "type": "string", "Pii": True}], "fields[0].Pii", "Unknown key."),
        ([{"type": "string"}], "fields[0].name", "This key is required."),
        ([{"name": None, "type": "string"}], "fields[0].name", "This key is required."),
        (
            [{"name": "", "type": "string"}],
            "fields[0].name",
            "Must be an identifier of letters, digits and underscores, not starting with a digit.",
        ),
        (
            [{"name": "1st", "type": "string"}],
            "fields[0].name",
            "Must be an identifier of letters, digits and underscores, not starting with a digit.",
        ),
        (
            [{"name": "first name", "type": "string"}],
            "fields[0].name",
            "Must be an identifier of letters, digits and underscores, not starting with a digit.",
        ),
        (
            [{"name": "first-name", "type": "string"}],
            "fields[0].name",
            "Must be an identifier of letters, digits and underscores, not starting with a digit.",
        ),
        (
            [{"name": "prénom", "type": "string"}],
            "fields[0].name",
            "Must be an identifier of letters, digits and underscores, not starting with a digit.",
        ),
        (
            [{"name": 7, "type": "string"}],
            "fields[0].name",
            "Must be an identifier of letters, digits and underscores, not starting with a digit.",
        ),
        (
            [{"name": "a" * 65, "type": "string"}],
            "fields[0].name",
            "Must be an identifier of letters, digits and underscores, not starting with a digit.",
        ),
        (
            [{"name": "non_field_errors", "type": "string"}],
            "fields[0].name",
            "This name is reserved.",
        ),
        (
            [
                {"name": "a", "type": "string"},
                {"name": "b", "type": "string"},
                {"name": "a", "type": "integer"},
            ],
            "fields[2].name",
            "Duplicate field name 'a'.",
        ),
        ([{"name": "a"}], "fields[0].type", "This key is required."),
        ([{"name": "a", "type": "text"}], "fields[0].type", f"Must be one of: {TYPES_LIST}."),
        ([{"name": "a", "type": "String"}], "fields[0].type", f"Must be one of: {TYPES_LIST}."),
        ([{"name": "a", "type": ["string"]}], "fields[0].type", f"Must be one of: {TYPES_LIST}."),
        (
            [{"name": "a", "type": "string", "ping": "yes"}],
            "fields[0].ping",
            "Must be one of: required, optional, no.",
        ),
        (
            [{"name": "a", "type": "string", "ping": False}],
            "fields[0].ping",
            "Must be one of: required, optional, no.",
        ),
        (
            [{"name": "a", "type": "string", "ping": None}],
            "fields[0].ping",
            "Must be one of: required, optional, no.",
        ),
        (
            [{"name": "a", "type": "string", "pii": "yes"}],
            "fields[0].pii",
            "Must be true or false.",
        ),
        ([{"name": "a", "type": "string", "pii": 1}], "fields[0].pii", "Must be true or false."),
        (
            [{"name": "a", "type": "email", "pii": True, "ping": "required"}],
            "fields[0].ping",
            "A PII field cannot travel in a ping; use no.",
        ),
        (
            [{"name": "a", "type": "email", "pii": True, "ping": "optional"}],
            "fields[0].ping",
            "A PII field cannot travel in a ping; use no.",
        ),
        (
            [{"name": "a", "type": "string", "required": "no"}],
            "fields[0].required",
            "Must be true or false.",
        ),
        (
            [{"name": "a", "type": "string", "ping": "required", "required": False}],
            "fields[0].required",
            "Must be true for a field required in the ping.",
        ),
        (
            [{"name": "a", "type": "string", "min": 1}],
            "fields[0].min",
            "Only integer and decimal fields take min and max.",
        ),
        (
            [{"name": "a", "type": "date", "max": 1}],
            "fields[0].max",
            "Only integer and decimal fields take min and max.",
        ),
        ([{"name": "a", "type": "integer", "min": "x"}], "fields[0].min", "Must be a number."),
        ([{"name": "a", "type": "integer", "min": True}], "fields[0].min", "Must be a number."),
        ([{"name": "a", "type": "decimal", "max": [1]}], "fields[0].max", "Must be a number."),
        ([{"name": "a", "type": "decimal", "max": ""}], "fields[0].max", "Must be a number."),
        (
            [{"name": "a", "type": "decimal", "min": "NaN"}],
            "fields[0].min",
            "Must be a finite number.",
        ),
        (
            [{"name": "a", "type": "decimal", "max": float("inf")}],
            "fields[0].max",
            "Must be a finite number.",
        ),
        (
            [{"name": "a", "type": "integer", "min": "18.5"}],
            "fields[0].min",
            "Must be a whole number for an integer field.",
        ),
        (
            [{"name": "a", "type": "integer", "min": 10, "max": 9}],
            "fields[0].max",
            "Must be greater than or equal to min.",
        ),
        (
            [{"name": "a", "type": "decimal", "min": "1.01", "max": "1.00"}],
            "fields[0].max",
            "Must be greater than or equal to min.",
        ),
        (
            [{"name": "a", "type": "choice"}],
            "fields[0].choices",
            "This key is required for a choice field.",
        ),
        (
            [{"name": "a", "type": "choice", "choices": []}],
            "fields[0].choices",
            "Must be a non-empty list of non-empty strings.",
        ),
        (
            [{"name": "a", "type": "choice", "choices": "ab"}],
            "fields[0].choices",
            "Must be a non-empty list of non-empty strings.",
        ),
        (
            [{"name": "a", "type": "choice", "choices": ["a", 2]}],
            "fields[0].choices",
            "Must be a non-empty list of non-empty strings.",
        ),
        (
            [{"name": "a", "type": "choice", "choices": ["a", ""]}],
            "fields[0].choices",
            "Must be a non-empty list of non-empty strings.",
        ),
        (
            [{"name": "a", "type": "choice", "choices": ["a", "b", "a"]}],
            "fields[0].choices",
            "Duplicate choice 'a'.",
        ),
        (
            [{"name": "a", "type": "string", "choices": ["a"]}],
            "fields[0].choices",
            "Only choice fields take choices.",
        ),
        (
            [{"name": "a", "type": "integer", "max_length": 3}],
            "fields[0].max_length",
            "Only string fields take max_length.",
        ),
        (
            [{"name": "a", "type": "string", "max_length": 0}],
            "fields[0].max_length",
            "Must be a positive integer.",
        ),
        (
            [{"name": "a", "type": "string", "max_length": -1}],
            "fields[0].max_length",
            "Must be a positive integer.",
        ),
        (
            [{"name": "a", "type": "string", "max_length": "10"}],
            "fields[0].max_length",
            "Must be a positive integer.",
        ),
        (
            [{"name": "a", "type": "string", "max_length": True}],
            "fields[0].max_length",
            "Must be a positive integer.",
        ),
        (
            [{"name": "a", "type": "string", "max_length": 2.0}],
            "fields[0].max_length",
            "Must be a positive integer.",
        ),
    ],
)
def test_parse_errors(raw: object, path: str, message: str) -> None:
    with pytest.raises(SchemaError) as info:
        offer_fields_parse(raw)
    assert info.value.path == path
    assert info.value.message == message
    assert str(info.value) == f"{path}: {message}"


def test_schema_error_is_a_value_error_and_pickles() -> None:
    exc = SchemaError("fields[2].type", "Unknown key.")
    assert isinstance(exc, ValueError)
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.path, copy.message, str(copy)) == (
        "fields[2].type",
        "Unknown key.",
        "fields[2].type: Unknown key.",
    )


def test_parse_reports_the_first_error_in_order() -> None:
    raw = [{"name": "ok", "type": "string"}, {"name": "bad", "type": "x", "ping": "x"}]
    with pytest.raises(SchemaError) as info:
        offer_fields_parse(raw)
    assert info.value.path == "fields[1].type"


def test_field_spec_constants() -> None:
    assert PING_MODES == ("required", "optional", "no")
    assert len(FIELD_TYPES) == 10


# --- offer_fields_dump ---------------------------------------------------------------------------


def test_dump_exact_shape() -> None:
    parsed = offer_fields_parse(
        [
            {"name": "age", "type": "integer", "ping": "optional", "min": 18, "max": "120"},
            {"name": "email", "type": "email", "pii": True},
            {"name": "plan", "type": "choice", "choices": ["a", "b"]},
            {"name": "note", "type": "string", "max_length": 200},
            {"name": "price", "type": "decimal", "min": "0.50"},
        ]
    )
    assert offer_fields_dump(parsed) == [
        {
            "name": "age",
            "type": "integer",
            "ping": "optional",
            "pii": False,
            "required": False,
            "min": "18",
            "max": "120",
        },
        {"name": "email", "type": "email", "ping": "no", "pii": True, "required": True},
        {
            "name": "plan",
            "type": "choice",
            "ping": "no",
            "pii": False,
            "required": False,
            "choices": ["a", "b"],
        },
        {
            "name": "note",
            "type": "string",
            "ping": "no",
            "pii": False,
            "required": False,
            "max_length": 200,
        },
        {
            "name": "price",
            "type": "decimal",
            "ping": "no",
            "pii": False,
            "required": False,
            "min": "0.50",
        },
    ]


def test_dump_round_trips_through_json(fields: dict[str, FieldSpec]) -> None:
    dumped = json.loads(json.dumps(offer_fields_dump(fields)))
    again = offer_fields_parse(dumped)
    assert again == fields
    assert list(again) == list(fields)
    assert offer_fields_dump(again) == dumped


def test_dump_round_trips_explicit_required_false() -> None:
    parsed = field_of({"type": "phone", "pii": True, "required": False})
    assert offer_fields_parse(offer_fields_dump(parsed)) == parsed


def test_dump_empty() -> None:
    assert offer_fields_dump({}) == []


# --- lead_validate: the stages -----------------------------------------------------------------


def test_ping_good(fields: dict[str, FieldSpec]) -> None:
    lead = {"state": "ca", "zip": "94107-1234", "age": "34", "homeowner": "yes"}
    assert lead_validate(lead, fields, stage="ping") == {
        "state": "CA",
        "zip": "94107",
        "age": 34,
        "homeowner": True,
    }


def test_ping_optional_fields_may_be_missing_or_null(fields: dict[str, FieldSpec]) -> None:
    lead = {"state": "CA", "zip": "94107", "age": None, "plan": "", "income": "  "}
    assert lead_validate(lead, fields, stage="ping") == {"state": "CA", "zip": "94107"}


def test_ping_result_follows_schema_order(fields: dict[str, FieldSpec]) -> None:
    lead = {"plan": "basic", "age": 40, "zip": "94107", "state": "CA"}
    assert list(lead_validate(lead, fields, stage="ping")) == ["state", "zip", "age", "plan"]


@pytest.mark.parametrize(
    ("extra", "errors"),
    [
        ({"email": "jane@example.com"}, {"email": ["PII is not allowed in a ping."]}),
        ({"phone": "+14155550100"}, {"phone": ["PII is not allowed in a ping."]}),
        ({"first_name": "Jane"}, {"first_name": ["PII is not allowed in a ping."]}),
        ({"email": "not valid"}, {"email": ["PII is not allowed in a ping."]}),
        ({"birth_date": "1990-01-01"}, {"birth_date": ["Not a ping field."]}),
        ({"comments": "hi"}, {"comments": ["Not a ping field."]}),
        ({"color": "red"}, {"color": ["Unknown field."]}),
        ({"State": "CA"}, {"State": ["Unknown field."]}),
        ({"color": None}, {"color": ["Unknown field."]}),
    ],
)
def test_ping_refuses(fields: dict[str, FieldSpec], extra: dict[str, object], errors: dict[str, list[str]]) -> None:
    with pytest.raises(LeadInvalid) as info:
        lead_validate({"state": "CA", "zip": "94107", **extra}, fields, stage="ping")
    assert info.value.errors == errors


def test_ping_ignores_absent_pii(fields: dict[str, FieldSpec]) -> None:
    lead = {"state": "CA", "zip": "94107", "email": None, "comments": ""}
    assert lead_validate(lead, fields, stage="ping") == {"state": "CA", "zip": "94107"}


@pytest.mark.parametrize(
    "lead",
    [
        {"zip": "94107"},
        {"state": None, "zip": "94107"},
        {"state": "", "zip": "94107"},
        {"state": "   ", "zip": "94107"},
    ],
)
def test_ping_required_field_missing(fields: dict[str, FieldSpec], lead: dict[str, object]) -> None:
    with pytest.raises(LeadInvalid) as info:
        lead_validate(lead, fields, stage="ping")
    assert info.value.errors == {"state": ["This field is required."]}


def test_ping_collects_every_error_at_once(fields: dict[str, FieldSpec]) -> None:
    lead = {
        "zip": "9410",
        "age": 17,
        "email": "jane@example.com",
        "comments": "hi",
        "plan": "gold",
        "homeowner": "maybe",
        "income": "lots",
        "extra": 1,
        "other": 2,
    }
    with pytest.raises(LeadInvalid) as info:
        lead_validate(lead, fields, stage="ping")
    assert info.value.errors == {
        "state": ["This field is required."],
        "zip": ["Must be a 5-digit ZIP code."],
        "age": ["Must be at least 18."],
        "email": ["PII is not allowed in a ping."],
        "comments": ["Not a ping field."],
        "plan": ["Must be one of: basic, premium."],
        "homeowner": ["Must be true or false."],
        "income": ["Must be a number."],
        "extra": ["Unknown field."],
        "other": ["Unknown field."],
    }


def test_post_good(fields: dict[str, FieldSpec]) -> None:
    lead = {
        "state": "ny",
        "zip": 10001,
        "age": 34,
        "email": " Jane@Example.COM ",
        "phone": "(212) 555-0100",
        "first_name": " Jane ",
        "income": 52000.5,
        "homeowner": False,
        "plan": "premium",
        "birth_date": "1990-02-28",
        "comments": "  call after 5pm ",
    }
    assert lead_validate(lead, fields, stage="post") == {
        "state": "NY",
        "zip": "10001",
        "age": 34,
        "email": "jane@example.com",
        "phone": "+12125550100",
        "first_name": "Jane",
        "income": Decimal("52000.5"),
        "homeowner": False,
        "plan": "premium",
        "birth_date": datetime.date(1990, 2, 28),
        "comments": "call after 5pm",
    }


def test_post_minimal(fields: dict[str, FieldSpec]) -> None:
    lead = {
        "state": "CA",
        "zip": "94107",
        "email": "jane@example.com",
        "phone": "+14155550100",
        "first_name": "Jane",
    }
    assert lead_validate(lead, fields, stage="post") == lead


def test_post_collects_every_missing_and_invalid_field(fields: dict[str, FieldSpec]) -> None:
    lead = {"state": "XX", "email": None, "phone": "555-0100", "age": "abc", "nope": "x"}
    with pytest.raises(LeadInvalid) as info:
        lead_validate(lead, fields, stage="post")
    assert info.value.errors == {
        "state": ["Must be a US state code, such as CA."],
        "zip": ["This field is required."],
        "email": ["This field is required."],
        "phone": ["Must be a valid phone number."],
        "first_name": ["This field is required."],
        "age": ["Must be a whole number."],
        "nope": ["Unknown field."],
    }


def test_post_only_requires_required_fields() -> None:
    fields = offer_fields_parse(
        [
            {"name": "a", "type": "string", "required": True},
            {"name": "b", "type": "string", "ping": "optional"},
            {"name": "c", "type": "phone", "pii": True, "required": False},
        ]
    )
    assert lead_validate({"a": "x"}, fields, stage="post") == {"a": "x"}
    with pytest.raises(LeadInvalid) as info:
        lead_validate({"b": "y", "c": "+12015550100"}, fields, stage="post")
    assert info.value.errors == {"a": ["This field is required."]}


def test_ping_does_not_require_post_only_required_fields() -> None:
    fields = offer_fields_parse(
        [
            {"name": "a", "type": "string", "ping": "optional", "required": True},
            {"name": "b", "type": "string", "required": True},
        ]
    )
    assert lead_validate({}, fields, stage="ping") == {}


@pytest.mark.parametrize("data", [None, [], ["state", "CA"], "state=CA", 42, True])
@pytest.mark.parametrize("stage", ["ping", "post"])
def test_lead_must_be_an_object(fields: dict[str, FieldSpec], data: object, stage: str) -> None:
    with pytest.raises(LeadInvalid) as info:
        lead_validate(data, fields, stage=stage)
    assert info.value.errors == {"non_field_errors": ["The lead must be an object."]}


@pytest.mark.parametrize("stage", ["full", "", "PING"])
def test_unknown_stage_is_a_programming_error(fields: dict[str, FieldSpec], stage: str) -> None:
    with pytest.raises(ValueError, match="stage must be one of"):
        lead_validate({}, fields, stage=stage)


def test_empty_schema_accepts_only_empty_lead() -> None:
    assert lead_validate({}, {}, stage="ping") == {}
    assert lead_validate({}, {}, stage="post") == {}
    with pytest.raises(LeadInvalid) as info:
        lead_validate({"a": 1}, {}, stage="post")
    assert info.value.errors == {"a": ["Unknown field."]}


def test_lead_invalid_str_and_pickle() -> None:
    exc = LeadInvalid({"zip": ["Must be a 5-digit ZIP code."], "age": ["Unknown field."]})
    assert isinstance(exc, ValueError)
    assert str(exc) == "zip: Must be a 5-digit ZIP code.; age: Unknown field."
    assert pickle.loads(pickle.dumps(exc)).errors == exc.errors


def test_lead_validate_does_not_mutate_input(fields: dict[str, FieldSpec]) -> None:
    lead = {"state": "ca", "zip": "94107-1234"}
    lead_validate(lead, fields, stage="ping")
    assert lead == {"state": "ca", "zip": "94107-1234"}


# --- lead_validate: coercion per type ----------------------------------------------------------


def check_one(spec: dict[str, Any], value: object) -> object:
    """Validate ``{"f": value}`` in a post against a one-field schema; return the clean value."""
    return lead_validate({"f": value}, field_of(spec), stage="post")["f"]


def error_of(spec: dict[str, Any], value: object) -> list[str]:
    with pytest.raises(LeadInvalid) as info:
        lead_validate({"f": value}, field_of(spec), stage="post")
    assert list(info.value.errors) == ["f"]
    return info.value.errors["f"]


STRING = {"type": "string"}
STRING_5 = {"type": "string", "max_length": 5}


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        (STRING, "hello", "hello"),
        (STRING, "  hello world \n", "hello world"),
        (STRING, "line1\nline2", "line1\nline2"),
        (STRING, "José", "José"),
        (STRING_5, "abcde", "abcde"),
        (STRING_5, "  abcde  ", "abcde"),
    ],
)
def test_string_good(spec: dict[str, Any], value: object, expected: str) -> None:
    assert check_one(spec, value) == expected


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        (STRING, 12, "Must be a string."),
        (STRING, 1.5, "Must be a string."),
        (STRING, True, "Must be a string."),
        (STRING, ["a"], "Must be a string."),
        (STRING, {"a": 1}, "Must be a string."),
        (STRING, "a\x00b", "Must not contain NUL characters."),
        (STRING_5, "abcdef", "Must be at most 5 characters long."),
    ],
)
def test_string_bad(spec: dict[str, Any], value: object, message: str) -> None:
    assert error_of(spec, value) == [message]


INTEGER = {"type": "integer"}
AGE = {"type": "integer", "min": 18, "max": 120}


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        (INTEGER, 0, 0),
        (INTEGER, -7, -7),
        (INTEGER, "42", 42),
        (INTEGER, " 42 ", 42),
        (INTEGER, "+42", 42),
        (INTEGER, "-42", -42),
        (INTEGER, "007", 7),
        (INTEGER, 34.0, 34),
        (INTEGER, Decimal("34.00"), 34),
        (INTEGER, 999_999_999_999_999_999, 999_999_999_999_999_999),
        (INTEGER, "-999999999999999999", -999_999_999_999_999_999),
        (AGE, 18, 18),
        (AGE, "120", 120),
        (AGE, 18.0, 18),
    ],
)
def test_integer_good(spec: dict[str, Any], value: object, expected: int) -> None:
    result = check_one(spec, value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        (INTEGER, True, "Must be a whole number."),
        (INTEGER, False, "Must be a whole number."),
        (INTEGER, 12.5, "Must be a whole number."),
        (INTEGER, "12.5", "Must be a whole number."),
        (INTEGER, "12.0", "Must be a whole number."),
        (INTEGER, "1e3", "Must be a whole number."),
        (INTEGER, "1_000", "Must be a whole number."),
        (INTEGER, "12a", "Must be a whole number."),
        (INTEGER, "- 1", "Must be a whole number."),
        (INTEGER, "٣", "Must be a whole number."),
        (INTEGER, float("nan"), "Must be a whole number."),
        (INTEGER, float("inf"), "Must be a whole number."),
        (INTEGER, [1], "Must be a whole number."),
        (INTEGER, 10**18, "This number is too large."),
        (INTEGER, -(10**18), "This number is too large."),
        (INTEGER, "1" * 19, "This number is too large."),
        (INTEGER, "9" * 5000, "This number is too large."),
        (INTEGER, 1e300, "This number is too large."),
        (AGE, 17, "Must be at least 18."),
        (AGE, "121", "Must be at most 120."),
        (AGE, -1, "Must be at least 18."),
    ],
)
def test_integer_bad(spec: dict[str, Any], value: object, message: str) -> None:
    assert error_of(spec, value) == [message]


DECIMAL = {"type": "decimal"}
PRICE = {"type": "decimal", "min": "0.01", "max": "99.99"}


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        (DECIMAL, 3, Decimal("3")),
        (DECIMAL, -3, Decimal("-3")),
        (DECIMAL, "3.50", Decimal("3.50")),
        (DECIMAL, " 3.5 ", Decimal("3.5")),
        (DECIMAL, ".5", Decimal("0.5")),
        (DECIMAL, "5.", Decimal("5")),
        (DECIMAL, "+1.25", Decimal("1.25")),
        (DECIMAL, "1e3", Decimal("1000")),
        (DECIMAL, 0.1, Decimal("0.1")),
        (DECIMAL, 1e-05, Decimal("0.00001")),
        (DECIMAL, Decimal("2.5"), Decimal("2.5")),
        (PRICE, "0.01", Decimal("0.01")),
        (PRICE, 99.99, Decimal("99.99")),
    ],
)
def test_decimal_good(spec: dict[str, Any], value: object, expected: Decimal) -> None:
    result = check_one(spec, value)
    assert isinstance(result, Decimal)
    assert result == expected


def test_decimal_keeps_its_exponent() -> None:
    assert str(check_one(DECIMAL, "3.50")) == "3.50"
    assert str(check_one(DECIMAL, 0.1)) == "0.1"


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        (DECIMAL, True, "Must be a number."),
        (DECIMAL, False, "Must be a number."),
        (DECIMAL, "abc", "Must be a number."),
        (DECIMAL, "1,5", "Must be a number."),
        (DECIMAL, "1_000", "Must be a number."),
        (DECIMAL, "$5", "Must be a number."),
        (DECIMAL, ".", "Must be a number."),
        (DECIMAL, [1.5], "Must be a number."),
        (DECIMAL, "NaN", "Must be a finite number."),
        (DECIMAL, "-inf", "Must be a finite number."),
        (DECIMAL, "Infinity", "Must be a finite number."),
        (DECIMAL, float("nan"), "Must be a finite number."),
        (DECIMAL, float("inf"), "Must be a finite number."),
        (DECIMAL, Decimal("NaN"), "Must be a finite number."),
        (DECIMAL, "1e18", "This number is too large."),
        (DECIMAL, 1e300, "This number is too large."),
        (PRICE, "0", "Must be at least 0.01."),
        (PRICE, 100, "Must be at most 99.99."),
        (PRICE, "99.991", "Must be at most 99.99."),
    ],
)
def test_decimal_bad(spec: dict[str, Any], value: object, message: str) -> None:
    assert error_of(spec, value) == [message]


BOOLEAN = {"type": "boolean"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("TRUE", True),
        (" True ", True),
        ("1", True),
        ("yes", True),
        ("Yes", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("NO", False),
    ],
)
def test_boolean_good(value: object, expected: bool) -> None:
    assert check_one(BOOLEAN, value) is expected


@pytest.mark.parametrize("value", [1, 0, 1.0, "y", "n", "on", "off", "2", "tru", [True]])
def test_boolean_bad(value: object) -> None:
    assert error_of(BOOLEAN, value) == ["Must be true or false."]


CHOICE = {"type": "choice", "choices": ["basic", "premium", "10"]}


@pytest.mark.parametrize("value", ["basic", "premium", "10"])
def test_choice_good(value: str) -> None:
    assert check_one(CHOICE, value) == value


@pytest.mark.parametrize("value", ["gold", "Basic", " basic", 10, True, ["basic"]])
def test_choice_bad(value: object) -> None:
    assert error_of(CHOICE, value) == ["Must be one of: basic, premium, 10."]


DATE = {"type": "date"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1990-02-28", datetime.date(1990, 2, 28)),
        ("2024-02-29", datetime.date(2024, 2, 29)),
        (" 2000-01-01 ", datetime.date(2000, 1, 1)),
        (datetime.date(2001, 9, 9), datetime.date(2001, 9, 9)),
    ],
)
def test_date_good(value: object, expected: datetime.date) -> None:
    assert check_one(DATE, value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2023-02-29",
        "2024-13-01",
        "2024-00-10",
        "2024-1-5",
        "20240105",
        "2024-W01-1",
        "01/05/2024",
        "2024-01-05T00:00:00",
        "2024-01-05Z",
        "yesterday",
        20240105,
        datetime.datetime(2024, 1, 5, tzinfo=datetime.UTC),
    ],
)
def test_date_bad(value: object) -> None:
    assert error_of(DATE, value) == ["Must be a valid date in YYYY-MM-DD format."]


STATE = {"type": "state"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("CA", "CA"),
        ("ca", "CA"),
        (" ny ", "NY"),
        ("Tx", "TX"),
        ("dc", "DC"),
        ("PR", "PR"),
        ("gu", "GU"),
        ("VI", "VI"),
        ("AS", "AS"),
        ("MP", "MP"),
    ],
)
def test_state_good(value: str, expected: str) -> None:
    assert check_one(STATE, value) == expected


@pytest.mark.parametrize("value", ["XX", "C", "CAL", "California", "AA", "ZZ", 6, ["CA"]])
def test_state_bad(value: object) -> None:
    assert error_of(STATE, value) == ["Must be a US state code, such as CA."]


def test_state_codes_cover_states_dc_and_territories() -> None:
    assert len(US_STATE_CODES) == 59
    assert {"DC", "PR", "GU", "VI", "AS", "MP", "FM", "MH", "PW"} <= US_STATE_CODES
    assert all(len(code) == 2 and code.isupper() for code in US_STATE_CODES)


ZIP = {"type": "zip"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("94107", "94107"),
        (" 94107 ", "94107"),
        ("94107-1234", "94107"),
        ("02134", "02134"),
        (94107, "94107"),
        (10001, "10001"),
    ],
)
def test_zip_good(value: object, expected: str) -> None:
    assert check_one(ZIP, value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "9410",
        "941077",
        "94107-123",
        "94107 1234",
        "941071234",
        "94107-",
        "ABCDE",
        "９４１０７",
        2134,
        -9410,
        941071,
        94107.0,
        True,
    ],
)
def test_zip_bad(value: object) -> None:
    assert error_of(ZIP, value) == ["Must be a 5-digit ZIP code."]


EMAIL = {"type": "email"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("jane@example.com", "jane@example.com"), (" Jane@Example.COM ", "jane@example.com")],
)
def test_email_good(value: str, expected: str) -> None:
    assert check_one(EMAIL, value) == expected


@pytest.mark.parametrize("value", ["jane", "jane@example", "a b@example.com", 5, ["x@y.z"]])
def test_email_bad(value: object) -> None:
    assert error_of(EMAIL, value) == ["Must be a valid email address."]


PHONE = {"type": "phone"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+14155550100", "+14155550100"),
        ("(415) 555-0100", "+14155550100"),
        ("201-555-0123", "+12015550123"),
    ],
)
def test_phone_good(value: str, expected: str) -> None:
    assert check_one(PHONE, value) == expected


@pytest.mark.parametrize("value", ["555-0100", "+1 555 555 0100", "phone", 4155550100, [1]])
def test_phone_bad(value: object) -> None:
    assert error_of(PHONE, value) == ["Must be a valid phone number."]


@pytest.mark.parametrize("field_type", FIELD_TYPES)
@pytest.mark.parametrize("value", [None, "", "   "])
def test_null_or_blank_counts_as_absent(field_type: str, value: object) -> None:
    spec: dict[str, Any] = {"type": field_type}
    if field_type == "choice":
        spec["choices"] = ["x"]
    assert lead_validate({"f": value}, field_of(spec), stage="post") == {}
    assert error_of({**spec, "required": True}, value) == ["This field is required."]
