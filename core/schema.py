"""An offer's field schema: what a lead of the offer may carry, and how each value is checked.

The schema is declared in the market file (``offers[].fields``) and stored on ``Offer.fields``
as a list of plain dicts; :func:`offer_fields_parse` turns it into :class:`FieldSpec` objects,
:func:`offer_fields_dump` turns them back, and :func:`lead_validate` checks and normalizes the
``lead`` object of a ping or a post against them.

This module must not import Django: the market loader, the API and the tests share it.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from core.pii import PiiInvalid, email_normalize, phone_normalize

__all__ = [
    "FIELD_TYPES",
    "NON_FIELD_ERRORS",
    "PING_MODES",
    "STAGES",
    "US_STATE_CODES",
    "FieldSpec",
    "LeadInvalid",
    "SchemaError",
    "lead_validate",
    "offer_fields_dump",
    "offer_fields_parse",
]

FIELD_TYPES = (
    "string",
    "integer",
    "decimal",
    "boolean",
    "choice",
    "date",
    "state",
    "zip",
    "email",
    "phone",
)
PING_MODES = ("required", "optional", "no")
STAGES = ("ping", "post")
NON_FIELD_ERRORS = "non_field_errors"

# The 50 states, DC, and the USPS codes of the territories and freely associated states.
US_STATE_CODES = frozenset(
    """
    AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ
    NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY
    DC PR AS GU MP VI FM MH PW
    """.split()
)


@dataclass(frozen=True)
class FieldSpec:
    """One field of an offer.

    ``ping`` says whether the field travels in a ping (``required`` / ``optional``) or only in
    the post (``no``); a PII field is always ``no``. ``required`` says whether a post (or a full
    lead) must carry it.
    """

    name: str
    type: str
    ping: str = "no"
    pii: bool = False
    required: bool = False
    min: Decimal | None = None
    max: Decimal | None = None
    choices: tuple[str, ...] = ()
    max_length: int | None = None


class SchemaError(ValueError):
    """An offer's field schema is malformed; ``path`` says where (e.g. ``fields[2].type``)."""

    def __init__(self, path: str, message: str) -> None:
        # Both parts go to ValueError so the exception pickles and reprs faithfully.
        super().__init__(path, message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class LeadInvalid(ValueError):
    """A lead does not match its offer's schema.

    ``errors`` maps a field name (or ``"non_field_errors"``) to its messages, in the shape of
    the API's ``error.fields``.
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors

    def __str__(self) -> str:
        return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in self.errors.items())


# ---------------------------------------------------------------------------------------------
# Schema parsing

_KNOWN_KEYS = ("name", "type", "ping", "pii", "required", "min", "max", "choices", "max_length")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_MAX_LENGTH = 64
_NUMERIC_TYPES = ("integer", "decimal")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _one_of(options: tuple[str, ...] | list[str]) -> str:
    return "Must be one of: " + ", ".join(options) + "."


def _schema_decimal(value: object, path: str, field_type: str) -> Decimal:
    """Parse a ``min`` / ``max`` bound; it must be a finite number (whole for integer fields)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise SchemaError(path, "Must be a number.")
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise SchemaError(path, "Must be a number.") from None
    if not number.is_finite():
        raise SchemaError(path, "Must be a finite number.")
    if field_type == "integer" and number != number.to_integral_value():
        raise SchemaError(path, "Must be a whole number for an integer field.")
    return number


def _field_parse(item: object, path: str, seen: set[str]) -> FieldSpec:
    if not isinstance(item, Mapping):
        raise SchemaError(path, "Must be a mapping.")
    for key in item:
        if key not in _KNOWN_KEYS:
            raise SchemaError(f"{path}.{key}", "Unknown key.")

    name = item.get("name")
    if name is None:
        raise SchemaError(f"{path}.name", "This key is required.")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or len(name) > _NAME_MAX_LENGTH:
        raise SchemaError(
            f"{path}.name",
            "Must be an identifier of letters, digits and underscores, not starting with a digit.",
        )
    if name == NON_FIELD_ERRORS:
        # Lead errors use this key for errors about the lead as a whole.
        raise SchemaError(f"{path}.name", "This name is reserved.")
    if name in seen:
        raise SchemaError(f"{path}.name", f"Duplicate field name {name!r}.")

    field_type = item.get("type")
    if field_type is None:
        raise SchemaError(f"{path}.type", "This key is required.")
    if field_type not in FIELD_TYPES:
        raise SchemaError(f"{path}.type", _one_of(FIELD_TYPES))

    ping = item.get("ping", "no")
    if ping not in PING_MODES:
        raise SchemaError(f"{path}.ping", _one_of(PING_MODES))

    pii = item.get("pii", False)
    if not isinstance(pii, bool):
        raise SchemaError(f"{path}.pii", "Must be true or false.")
    if pii and ping != "no":
        raise SchemaError(f"{path}.ping", "A PII field cannot travel in a ping; use no.")

    required = item.get("required", pii or ping == "required")
    if not isinstance(required, bool):
        raise SchemaError(f"{path}.required", "Must be true or false.")
    if ping == "required" and not required:
        # The post repeats the ping's fields, so a field the ping needs the post needs too.
        raise SchemaError(f"{path}.required", "Must be true for a field required in the ping.")

    bounds: dict[str, Decimal | None] = {"min": None, "max": None}
    for key in bounds:
        if item.get(key) is None:
            continue
        if field_type not in _NUMERIC_TYPES:
            raise SchemaError(f"{path}.{key}", "Only integer and decimal fields take min and max.")
        bounds[key] = _schema_decimal(item[key], f"{path}.{key}", field_type)
    low, high = bounds["min"], bounds["max"]
    if low is not None and high is not None and low > high:
        raise SchemaError(f"{path}.max", "Must be greater than or equal to min.")

    choices: tuple[str, ...] = ()
    raw_choices = item.get("choices")
    if field_type == "choice":
        if raw_choices is None:
            raise SchemaError(f"{path}.choices", "This key is required for a choice field.")
        if (
            not isinstance(raw_choices, list | tuple)
            or not raw_choices
            or not all(isinstance(choice, str) and choice for choice in raw_choices)
        ):
            raise SchemaError(f"{path}.choices", "Must be a non-empty list of non-empty strings.")
        for index, choice in enumerate(raw_choices):
            if choice in raw_choices[:index]:
                raise SchemaError(f"{path}.choices", f"Duplicate choice {choice!r}.")
        choices = tuple(raw_choices)
    elif raw_choices is not None:
        raise SchemaError(f"{path}.choices", "Only choice fields take choices.")

    max_length = item.get("max_length")
    if max_length is not None:
        if field_type != "string":
            raise SchemaError(f"{path}.max_length", "Only string fields take max_length.")
        if not _is_int(max_length) or max_length < 1:
            raise SchemaError(f"{path}.max_length", "Must be a positive integer.")

    return FieldSpec(
        name=name,
        type=field_type,
        ping=ping,
        pii=pii,
        required=required,
        min=low,
        max=high,
        choices=choices,
        max_length=max_length,
    )


def offer_fields_parse(raw: object, *, path: str = "fields") -> dict[str, FieldSpec]:
    """Validate an offer's raw field list and return its specs by name, in declaration order.

    ``raw`` is the list of mappings from a market file or from ``Offer.fields``. Keys:
    ``name`` (identifier, unique, required), ``type`` (one of :data:`FIELD_TYPES`, required),
    ``ping`` (one of :data:`PING_MODES`, default ``no``), ``pii`` (bool, default false; a PII
    field must have ``ping: no``), ``required`` (bool; defaults to true for PII and ping-required
    fields, and must be true for ping-required ones), ``min`` / ``max`` (integer and decimal
    only; parsed as :class:`~decimal.Decimal`, whole for integer, ``min <= max``), ``choices``
    (choice only, and required there: a non-empty list of distinct non-empty strings),
    ``max_length`` (string only, positive int). A key set to null counts as absent.

    Raises :class:`SchemaError` for the first problem found, with a path such as
    ``fields[2].type`` (``path`` is the prefix, e.g. ``offers[0].fields``).
    """
    if not isinstance(raw, list | tuple):
        raise SchemaError(path, "Must be a list of fields.")
    specs: dict[str, FieldSpec] = {}
    for index, item in enumerate(raw):
        spec = _field_parse(item, f"{path}[{index}]", set(specs))
        specs[spec.name] = spec
    return specs


def offer_fields_dump(fields: dict[str, FieldSpec]) -> list[dict[str, Any]]:
    """Return the JSON-serializable list of dicts for ``fields``, in order.

    Each dict always has ``name``, ``type``, ``ping``, ``pii`` and ``required``; ``min`` /
    ``max`` (as strings), ``choices`` (as a list) and ``max_length`` appear when set.
    ``offer_fields_parse(offer_fields_dump(x)) == x`` for any ``x`` it returned.
    """
    dumped: list[dict[str, Any]] = []
    for spec in fields.values():
        item: dict[str, Any] = {
            "name": spec.name,
            "type": spec.type,
            "ping": spec.ping,
            "pii": spec.pii,
            "required": spec.required,
        }
        if spec.min is not None:
            item["min"] = str(spec.min)
        if spec.max is not None:
            item["max"] = str(spec.max)
        if spec.choices:
            item["choices"] = list(spec.choices)
        if spec.max_length is not None:
            item["max_length"] = spec.max_length
        dumped.append(item)
    return dumped


# ---------------------------------------------------------------------------------------------
# Lead validation


class _Invalid(Exception):
    """One value failed its field's check; the message is for the API's ``error.fields``."""


_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ZIP_RE = re.compile(r"([0-9]{5})(?:-[0-9]{4})?")
_TRUE_WORDS = frozenset({"true", "1", "yes"})
_FALSE_WORDS = frozenset({"false", "0", "no"})
# Beyond this, values no longer fit a bigint / sane numeric column downstream.
_MAX_DIGITS = 18
_INTEGER_LIMIT = 10**_MAX_DIGITS

_MSG_REQUIRED = "This field is required."
_MSG_UNKNOWN = "Unknown field."
_MSG_PII_IN_PING = "PII is not allowed in a ping."
_MSG_NOT_PING = "Not a ping field."
_MSG_NOT_OBJECT = "The lead must be an object."
_MSG_TOO_LARGE = "This number is too large."


def _to_string(value: object, spec: FieldSpec) -> str:
    if not isinstance(value, str):
        raise _Invalid("Must be a string.")
    if "\x00" in value:
        # PostgreSQL text and jsonb cannot store NUL.
        raise _Invalid("Must not contain NUL characters.")
    text = value.strip()
    if spec.max_length is not None and len(text) > spec.max_length:
        raise _Invalid(f"Must be at most {spec.max_length} characters long.")
    return text


def _to_integer(value: object, spec: FieldSpec) -> int:
    number: int
    if _is_int(value):
        assert isinstance(value, int)
        number = value
    elif isinstance(value, float | Decimal):
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        if not finite:
            raise _Invalid("Must be a whole number.")
        if abs(value) >= _INTEGER_LIMIT:
            raise _Invalid(_MSG_TOO_LARGE)
        if value != math.trunc(value):
            raise _Invalid("Must be a whole number.")
        number = math.trunc(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _INTEGER_RE.fullmatch(text):
            raise _Invalid("Must be a whole number.")
        if len(text.lstrip("+-")) > _MAX_DIGITS:
            raise _Invalid(_MSG_TOO_LARGE)
        number = int(text)
    else:
        raise _Invalid("Must be a whole number.")
    if abs(number) >= _INTEGER_LIMIT:
        raise _Invalid(_MSG_TOO_LARGE)
    _check_bounds(Decimal(number), spec)
    return number


def _to_decimal(value: object, spec: FieldSpec) -> Decimal:
    number: Decimal
    if isinstance(value, bool):
        raise _Invalid("Must be a number.")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid("Must be a finite number.")
        # str() gives the shortest repr, so 0.1 becomes Decimal("0.1"), not its binary value.
        number = Decimal(str(value))
    elif isinstance(value, str):
        text = value.strip()
        if text.lower().lstrip("+-") in {"nan", "snan", "inf", "infinity"}:
            raise _Invalid("Must be a finite number.")
        if not _DECIMAL_RE.fullmatch(text):
            raise _Invalid("Must be a number.")
        number = Decimal(text)
    else:
        raise _Invalid("Must be a number.")
    if not number.is_finite():
        raise _Invalid("Must be a finite number.")
    if number and number.adjusted() >= _MAX_DIGITS:
        raise _Invalid(_MSG_TOO_LARGE)
    _check_bounds(number, spec)
    return number


def _check_bounds(number: Decimal, spec: FieldSpec) -> None:
    if spec.min is not None and number < spec.min:
        raise _Invalid(f"Must be at least {spec.min}.")
    if spec.max is not None and number > spec.max:
        raise _Invalid(f"Must be at most {spec.max}.")


def _to_boolean(value: object, spec: FieldSpec) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise _Invalid("Must be true or false.")


def _to_choice(value: object, spec: FieldSpec) -> str:
    if isinstance(value, str) and value in spec.choices:
        return value
    raise _Invalid(_one_of(spec.choices))


def _to_date(value: object, spec: FieldSpec) -> datetime.date:
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    if isinstance(value, str):
        text = value.strip()
        # fromisoformat alone would also take "20240101" and week dates.
        if _DATE_RE.fullmatch(text):
            try:
                return datetime.date.fromisoformat(text)
            except ValueError:
                pass
    raise _Invalid("Must be a valid date in YYYY-MM-DD format.")


def _to_state(value: object, spec: FieldSpec) -> str:
    if isinstance(value, str):
        code = value.strip().upper()
        if code in US_STATE_CODES:
            return code
    raise _Invalid("Must be a US state code, such as CA.")


def _to_zip(value: object, spec: FieldSpec) -> str:
    if _is_int(value):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise _Invalid("Must be a 5-digit ZIP code.")
    match = _ZIP_RE.fullmatch(text)
    # An int cannot carry ZIP+4 or a leading zero, so only a plain 5-digit form is accepted.
    if match is None or (_is_int(value) and len(text) != 5):
        raise _Invalid("Must be a 5-digit ZIP code.")
    return match.group(1)


def _to_email(value: object, spec: FieldSpec) -> str:
    if isinstance(value, str):
        try:
            return email_normalize(value)
        except PiiInvalid:
            pass
    raise _Invalid("Must be a valid email address.")


def _to_phone(value: object, spec: FieldSpec) -> str:
    if isinstance(value, str):
        try:
            return phone_normalize(value)
        except PiiInvalid:
            pass
    raise _Invalid("Must be a valid phone number.")


_COERCERS: dict[str, Callable[[object, FieldSpec], object]] = {
    "string": _to_string,
    "integer": _to_integer,
    "decimal": _to_decimal,
    "boolean": _to_boolean,
    "choice": _to_choice,
    "date": _to_date,
    "state": _to_state,
    "zip": _to_zip,
    "email": _to_email,
    "phone": _to_phone,
}


def _is_absent(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def lead_validate(data: object, fields: dict[str, FieldSpec], *, stage: str) -> dict[str, object]:
    """Check a ping's or a post's ``lead`` object against an offer's fields; return clean values.

    ``stage`` is ``"ping"`` or ``"post"`` (anything else is a :class:`ValueError`). A value that
    is null or a blank string counts as absent. Rules:

    * ``data`` must be a mapping; a name not in ``fields`` is an error.
    * ping: a PII field or a field with ``ping: no`` must be absent; a ``ping: required`` field
      must be present; ``ping: optional`` fields may be absent.
    * post: every field with ``required=True`` must be present; others may be absent.

    Present values are coerced per type: string -> stripped ``str`` (within ``max_length``),
    integer -> ``int``, decimal -> ``Decimal`` (both within ``min`` / ``max``), boolean ->
    ``bool``, choice -> one of ``choices``, date -> ``datetime.date``, state -> upper-case code
    from :data:`US_STATE_CODES`, zip -> 5-digit ``str``, email -> normalized email, phone ->
    E.164. The result holds the present fields only, in schema order.

    Raises :class:`LeadInvalid` with every field's errors at once (field name -> messages;
    ``"non_field_errors"`` when ``data`` is not a mapping).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, not {stage!r}.")
    if not isinstance(data, Mapping):
        raise LeadInvalid({NON_FIELD_ERRORS: [_MSG_NOT_OBJECT]})

    errors: dict[str, list[str]] = {}
    for key in data:
        if key not in fields:
            errors[str(key)] = [_MSG_UNKNOWN]

    clean: dict[str, object] = {}
    for name, spec in fields.items():
        value = data.get(name)
        if _is_absent(value):
            needed = spec.ping == "required" if stage == "ping" else spec.required
            if needed:
                errors[name] = [_MSG_REQUIRED]
            continue
        if stage == "ping" and spec.pii:
            errors[name] = [_MSG_PII_IN_PING]
            continue
        if stage == "ping" and spec.ping == "no":
            errors[name] = [_MSG_NOT_PING]
            continue
        try:
            clean[name] = _COERCERS[spec.type](value, spec)
        except _Invalid as exc:
            errors[name] = [str(exc)]

    if errors:
        raise LeadInvalid(errors)
    return clean
