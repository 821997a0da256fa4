"""A buyer contract's filter rules and price modifiers.

A filter rule is a small tree. Leaves are ``{"field": name, "op": op, "value": v}``; combinators
are ``{"all": [rules]}``, ``{"any": [rules]}`` and ``{"not": rule}``, nested to any depth; ``None``
or ``{}`` means no filter. :func:`rule_validate` checks a rule against the offer's field schema
when a contract is saved and names the exact bad key (``filters.all[1].value``);
:func:`rule_compile` turns it, once, into a predicate made of closures, so nothing is parsed or
looked up per lead.

The predicate takes a lead's coerced values and returns ``None`` when the lead passes, or the
name of the field that made it fail (the waterfall reason ``filtered:<field>``):

* A missing or ``None`` value fails every operator except ``exists: false``. That includes
  ``ne`` and ``not_in``: an unknown value is not eligible, since the buyer asked for leads that
  are known *not* to be something.
* ``not`` keeps that rule: ``{"not": {"field": "state", "op": "eq", "value": "CA"}}`` fails on a
  lead without a state, exactly like ``ne`` does. Negation is pushed down to the leaves at
  compile time (``not gt`` becomes ``lte`` and so on), so an unknown value never turns into a
  pass by being negated; only ``exists`` is really flipped.
* ``all`` reports its first failing child's field; ``any`` and ``not`` report the first leaf field
  of their subtree.
* Ordering operators on a value of the wrong type (a lead value that was not coerced) fail
  instead of raising.

Besides the offer's ping fields, a rule may test three fields of the ping itself
(:data:`PSEUDO_FIELDS`, DESIGN.md §6.1): ``$source`` (the seller campaign's opaque source token),
``$hour`` (0–23) and ``$weekday`` (``mon``…``sun``), both in the buyer organization's time zone at
ping time. They are validated and compiled like offer fields of their own types; the engine adds
their values to the lead's (:func:`ping_values`) only for a contract that tests them
(:func:`pseudo_fields_used`), once per buyer time zone per ping. Any other ``$`` name is refused.

Price modifiers are ``[{"when": rule, "add": "5.00"}, {"when": rule, "multiply": "1.10"}]``:
every modifier whose ``when`` matches (no ``when``: always) is applied in list order to the base
price, and only the end result is rounded to the cent and floored at 0.00. When a contract is
saved, :func:`modifiers_bound` holds them to the offer's ``max_bid``.

A buyer's regular expression (the ``regex`` operator, a delivery's ``accept.regex``) is compiled
by :func:`buyer_regex_compile` on RE2, a linear-time engine: no backreferences nor look-around,
at most :data:`BUYER_REGEX_MAX_LENGTH` characters, counted repetitions up to
:data:`BUYER_REGEX_MAX_REPEAT` and :data:`BUYER_REGEX_MAX_PROGRAM` RE2 instructions, so no
pattern a buyer can save costs a lead value more than about a millisecond per 5 000 characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, TypeAlias

import re2

from core.json_document import MAX_DEPTH, json_depth
from core.money import ZERO, MoneyError, to_money
from core.schema import FieldSpec

Predicate: TypeAlias = Callable[[Mapping[str, object]], str | None]
PriceFunction: TypeAlias = Callable[[Decimal, Mapping[str, object]], Decimal]

OPERATORS = (
    "eq",
    "ne",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "exists",
    "regex",
    "prefix",
)
ORDERED_TYPES = frozenset({"integer", "decimal", "date"})
STRING_TYPES = frozenset({"string", "choice", "state", "zip", "email", "phone"})
SUPPORTED_TYPES = ORDERED_TYPES | STRING_TYPES | {"boolean"}

_ORDER_OPS = frozenset({"gt", "gte", "lt", "lte", "between"})
_STRING_OPS = frozenset({"regex", "prefix"})
_COMBINATORS = ("all", "any", "not")
_LEAF_KEYS = ("field", "op", "value")
_MODIFIER_KEYS = ("when", "add", "multiply")
# The complement of each operator over present, totally ordered values.
_NEGATED = {
    "eq": "ne",
    "ne": "eq",
    "in": "not_in",
    "not_in": "in",
    "gt": "lte",
    "lte": "gt",
    "gte": "lt",
    "lt": "gte",
}
_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_STATE_RE = re.compile(r"[A-Za-z]{2}")
_ZIP_RE = re.compile(r"[0-9]{5}")

BUYER_REGEX_MAX_LENGTH = 200
# Linear time is not yet cheap: a search's cost grows with the pattern's counted repetitions (RE2
# copies ``x{100}`` out a hundred times) and its compiled program. Within these limits the slowest
# pattern we found costs about a millisecond per 5 000 characters searched, while any list of zip
# codes or names that fits in 200 characters stays far below them (tests/contracts/test_rules.py).
BUYER_REGEX_MAX_REPEAT = 100
BUYER_REGEX_MAX_PROGRAM = 1500
_COUNTED_REPEAT_RE = re.compile(r"\{([0-9]+)(?:,([0-9]*))?\}")
# A factor beyond this is a typo; together with the bound on ``add`` it keeps the arithmetic of the
# worst case (:func:`modifiers_bound`) far from any Decimal limit.
MAX_FACTOR = Decimal(100)
MAX_MODIFIERS = 50


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order


@dataclass(frozen=True)
class PseudoField:
    """A field of the ping itself that filters and modifiers may test besides the offer's fields.

    ``type`` is ``"string"`` or ``"integer"``; ``choices`` the values it can take (empty: any);
    ``label`` names it for people (a filter builder's field picker, a waterfall reason)."""

    name: str
    type: str
    choices: tuple[str, ...]
    label: str
    help_text: str = ""


PSEUDO_FIELDS: tuple[PseudoField, ...] = (
    PseudoField(
        "$source",
        "string",
        (),
        "Source",
        "The seller campaign the lead comes from, as its opaque token (src_…) that buyers see.",
    ),
    PseudoField(
        "$hour", "integer", (), "Hour of the day", "The hour of the ping, 0 to 23, in your organization's time zone."
    ),
    PseudoField(
        "$weekday", "string", WEEKDAYS, "Day of the week", "The day of the ping, in your organization's time zone."
    ),
)
PSEUDO_FIELD_NAMES = tuple(p.name for p in PSEUDO_FIELDS)
# How the rule parser checks and coerces them: as offer fields of these types.
_PSEUDO_SPECS = {
    "$source": FieldSpec(name="$source", type="string", ping="required"),
    "$hour": FieldSpec(name="$hour", type="integer", ping="required", min=Decimal(0), max=Decimal(23)),
    "$weekday": FieldSpec(name="$weekday", type="choice", ping="required", choices=WEEKDAYS),
}


def pseudo_fields_used(*rules: object) -> frozenset[str]:
    """The pseudo fields (``$hour``…) that filter rules or modifier lists test, read off their JSON
    (for a contract's book entry: a contract testing none is given the lead's values alone)."""
    used: set[str] = set()
    stack: list[object] = list(rules)
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            name = node.get("field")
            if isinstance(name, str) and name in _PSEUDO_SPECS:
                used.add(name)
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return frozenset(used)


def ping_values(lead: Mapping[str, object], *, source: str, now: datetime, tz: tzinfo) -> dict[str, object]:
    """The values a rule tests for a ping: the lead's, with ``$source``, and ``$hour`` and
    ``$weekday`` of ``now`` in ``tz`` (the buyer's time zone). One per buyer time zone per ping."""
    local = now.astimezone(tz)
    return {**lead, "$source": source, "$hour": local.hour, "$weekday": WEEKDAYS[local.weekday()]}


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is the buyer's error, answered, not logged
    options.never_capture = True  # a filter asks only whether it matches: the fast engines suffice
    return options


_RE2_OPTIONS = _re2_options()


class BuyerRegex(Protocol):
    """A compiled buyer pattern: ``search`` answers a match object or None, in linear time."""

    def search(self, text: str) -> object | None: ...


class RuleError(ValueError):
    """A rule or modifier that does not fit the offer's schema; ``path`` names the bad key."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(path, message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class BuyerRegexError(ValueError):
    """A buyer's regular expression that is not a string, too long, or not valid RE2."""


def buyer_regex_compile(pattern: object) -> BuyerRegex:
    """Compile a buyer's regular expression on RE2 (linear time in the text searched), or raise
    :class:`BuyerRegexError` saying why not.

    RE2's syntax is Python's without backreferences (``\\1``) and look-around (``(?=``, ``(?<=``),
    and ``\\z`` for Python's ``\\Z``. Patterns are limited to :data:`BUYER_REGEX_MAX_LENGTH`
    characters, counted repetitions to :data:`BUYER_REGEX_MAX_REPEAT` and the compiled program to
    :data:`BUYER_REGEX_MAX_PROGRAM` RE2 instructions. Use the result's ``search``.
    """
    if not isinstance(pattern, str):
        raise BuyerRegexError(f"expected a regular expression string, got {_show(pattern)}")
    if len(pattern) > BUYER_REGEX_MAX_LENGTH:
        raise BuyerRegexError(
            f"a regular expression has at most {BUYER_REGEX_MAX_LENGTH} characters, this one has {len(pattern)}"
        )
    try:
        compiled = re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise BuyerRegexError(
            f"invalid regular expression: {detail} (RE2 syntax: no backreferences nor look-around)"
        ) from exc
    # Read off the text (a brace that is not a repetition is rarely worth a false refusal).
    for repeat in _COUNTED_REPEAT_RE.finditer(pattern):
        if max(int(count) for count in repeat.groups() if count) > BUYER_REGEX_MAX_REPEAT:
            raise BuyerRegexError(f"a counted repetition is at most {{{BUYER_REGEX_MAX_REPEAT}}}, got {repeat.group()}")
    # The binding's one way to RE2's program size (pinned version; tests/contracts/test_rules.py).
    size = compiled._regexp.ProgramSize()
    if size > BUYER_REGEX_MAX_PROGRAM:
        raise BuyerRegexError(
            f"the regular expression is too large to run fast ({size} RE2 instructions, at most "
            f"{BUYER_REGEX_MAX_PROGRAM}): shorten its counted repetitions or Unicode classes"
        )
    return compiled  # type: ignore[no-any-return]


# --- parsing: one pass that validates and normalizes, shared by validate and compile ----------


@dataclass(frozen=True)
class _Leaf:
    field: str
    op: str
    value: Any  # coerced to the field's type (a frozenset, a pair, a pattern... per operator)


@dataclass(frozen=True)
class _All:
    children: tuple[_Node, ...]


@dataclass(frozen=True)
class _Any:
    children: tuple[_Node, ...]


@dataclass(frozen=True)
class _Not:
    child: _Node


_Node: TypeAlias = "_Leaf | _All | _Any | _Not"


@dataclass(frozen=True)
class _Modifier:
    when: _Node | None
    add: Decimal | None
    multiply: Decimal | None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _article(type_name: str) -> str:
    return f"an {type_name}" if type_name[:1] in "aeiou" else f"a {type_name}"


def _coerce(spec: FieldSpec, value: object, path: str) -> Any:
    """``value`` converted to what a lead's coerced value of ``spec`` looks like."""
    kind = spec.type
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _INTEGER_RE.fullmatch(value.strip()):
            return int(value.strip())
        raise RuleError(path, f"expected an integer, got {_show(value)}")
    if kind == "decimal":
        if isinstance(value, int) and not isinstance(value, bool):
            return Decimal(value)
        number: Decimal | None = None
        if isinstance(value, Decimal):
            number = value
        elif isinstance(value, str):
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                number = None
        if number is None or not number.is_finite():
            raise RuleError(path, f"expected a decimal number (e.g. '12.50'), got {_show(value)}")
        return number
    if kind == "date":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value  # YAML reads an unquoted 2024-01-31 as a date already
        if isinstance(value, str) and _DATE_RE.fullmatch(value.strip()):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise RuleError(path, f"expected a date as YYYY-MM-DD, got {_show(value)}")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise RuleError(path, f"expected true or false, got {_show(value)}")
    if kind == "choice":
        if isinstance(value, str) and value in spec.choices:
            return value
        allowed = ", ".join(spec.choices)
        raise RuleError(path, f"expected one of {allowed}, got {_show(value)}")
    if kind == "state":
        if isinstance(value, str) and _STATE_RE.fullmatch(value.strip()):
            return value.strip().upper()
        raise RuleError(path, f"expected a 2-letter state code, got {_show(value)}")
    if kind == "zip":
        # Not an int: YAML would already have dropped a leading zero (02134 -> 2134).
        if isinstance(value, str) and _ZIP_RE.fullmatch(value.strip()):
            return value.strip()
        raise RuleError(path, f"expected a 5-digit zip code as a string, got {_show(value)}")
    if isinstance(value, str):
        return value
    raise RuleError(path, f"expected a string, got {_show(value)}")


def _parse_value(spec: FieldSpec, op: str, value: object, path: str) -> Any:
    if op == "exists":
        if not isinstance(value, bool):
            raise RuleError(path, f"expected true or false, got {_show(value)}")
        return value
    if op in ("in", "not_in"):
        if not isinstance(value, (list, tuple)) or not value:
            raise RuleError(path, f"expected a non-empty list of values, got {_show(value)}")
        return frozenset(_coerce(spec, item, f"{path}[{i}]") for i, item in enumerate(value))
    if op == "between":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise RuleError(path, f"expected a list [low, high], got {_show(value)}")
        low = _coerce(spec, value[0], f"{path}[0]")
        high = _coerce(spec, value[1], f"{path}[1]")
        if low > high:
            raise RuleError(path, f"expected low <= high, got {_show(list(value))}")
        return (low, high)
    if op == "regex":
        try:
            return buyer_regex_compile(value)
        except BuyerRegexError as exc:
            raise RuleError(path, str(exc)) from exc
    if op == "prefix":
        if not isinstance(value, str) or not value:
            raise RuleError(path, f"expected a non-empty string, got {_show(value)}")
        if spec.type == "state":
            if not value.isascii() or not value.isalpha() or len(value) > 2:
                raise RuleError(path, f"expected the start of a state code, got {_show(value)}")
            return value.upper()
        if spec.type == "zip":
            if not value.isascii() or not value.isdigit() or len(value) > 5:
                raise RuleError(path, f"expected the first digits of a zip code, got {_show(value)}")
        return value
    return _coerce(spec, value, path)


def _parse_leaf(rule: Mapping[Any, object], fields: Mapping[str, FieldSpec], path: str) -> _Leaf:
    for key in _LEAF_KEYS:
        if key not in rule:
            raise RuleError(f"{path}.{key}", f"missing {key!r}")
    name = rule["field"]
    field_path = f"{path}.field"
    if not isinstance(name, str):
        raise RuleError(field_path, f"expected a field name, got {_show(name)}")
    spec = _PSEUDO_SPECS.get(name) if name.startswith("$") else fields.get(name)
    if spec is None:
        if name.startswith("$"):
            raise RuleError(
                field_path, f"unknown field {name!r} (the ping's own fields are {', '.join(PSEUDO_FIELD_NAMES)})"
            )
        raise RuleError(field_path, f"unknown field {name!r}")
    if spec.pii:
        raise RuleError(
            field_path,
            f"field {name!r} is PII and cannot be filtered on (filters run at ping time)",
        )
    if spec.ping == "no":
        raise RuleError(field_path, f"field {name!r} is not sent in a ping, so filters cannot use it")
    if spec.type not in SUPPORTED_TYPES:
        raise RuleError(field_path, f"filters do not support the {spec.type!r} type of {name!r}")
    op = rule["op"]
    op_path = f"{path}.op"
    if not isinstance(op, str) or op not in OPERATORS:
        raise RuleError(op_path, f"unknown operator {_show(op)}")
    if (op in _ORDER_OPS and spec.type not in ORDERED_TYPES) or (op in _STRING_OPS and spec.type not in STRING_TYPES):
        raise RuleError(op_path, f"operator {op!r} does not apply to {_article(spec.type)} field")
    value = _parse_value(spec, op, rule["value"], f"{path}.value")
    if spec.min is not None and spec.max is not None and spec.name.startswith("$") and op != "exists":
        # A pseudo field's range is known (an hour is 0-23): a value outside it is a mistake.
        items = value if isinstance(value, (frozenset, tuple)) else (value,)
        if any(not spec.min <= item <= spec.max for item in items):
            raise RuleError(f"{path}.value", f"{name} is between {spec.min} and {spec.max}, got {_show(rule['value'])}")
    return _Leaf(name, op, value)


def _parse_rule(rule: object, fields: Mapping[str, FieldSpec], path: str) -> _Node:
    if not isinstance(rule, Mapping):
        raise RuleError(path, f"expected a rule (a mapping), got {_show(rule)}")
    for key in rule:
        if key not in _COMBINATORS and key not in _LEAF_KEYS:
            raise RuleError(f"{path}.{key}", f"unknown key {_show(key)}")
    combinators = [key for key in rule if key in _COMBINATORS]
    if len(combinators) > 1:
        named = " and ".join(repr(key) for key in combinators)
        raise RuleError(path, f"a rule takes exactly one of 'all', 'any', 'not', got {named}")
    if not combinators:
        if not rule:
            raise RuleError(path, "empty rule")
        return _parse_leaf(rule, fields, path)
    combinator = combinators[0]
    if len(rule) > 1:
        raise RuleError(path, f"a rule is either {combinator!r} or a leaf (field, op, value), not both")
    body = rule[combinator]
    sub_path = f"{path}.{combinator}"
    if combinator == "not":
        return _Not(_parse_rule(body, fields, sub_path))
    if not isinstance(body, (list, tuple)) or not body:
        raise RuleError(sub_path, f"expected a non-empty list of rules, got {_show(body)}")
    children = tuple(_parse_rule(child, fields, f"{sub_path}[{i}]") for i, child in enumerate(body))
    return _All(children) if combinator == "all" else _Any(children)


def _parse_top(rule: object, fields: Mapping[str, FieldSpec], path: str) -> _Node | None:
    if rule is None or (isinstance(rule, Mapping) and not rule):
        return None
    # The parser and the compiled predicate recurse once per level: a deeper rule (from a market
    # file or an admin form) would run out of stack instead of being refused.
    if json_depth(rule, limit=MAX_DEPTH) > MAX_DEPTH:
        raise RuleError(path, f"a rule nests at most {MAX_DEPTH} levels deep")
    return _parse_rule(rule, fields, path)


def _parse_factor(value: object, path: str) -> Decimal:
    if isinstance(value, (bool, float)):
        raise RuleError(path, f"expected a factor as a string (e.g. '1.10'), got {_show(value)}")
    factor: Decimal | None = None
    if isinstance(value, (int, Decimal)):
        factor = Decimal(value)
    elif isinstance(value, str):
        try:
            factor = Decimal(value.strip())
        except InvalidOperation:
            factor = None
    if factor is None or not factor.is_finite() or factor <= 0:
        raise RuleError(path, f"expected a positive factor (e.g. '1.10'), got {_show(value)}")
    return factor


def _parse_amount(value: object, path: str) -> Decimal:
    try:
        amount = to_money(value)
    except MoneyError as exc:
        raise RuleError(path, str(exc)) from exc
    # to_money rounds; a sub-cent amount in a contract is a typo, not something to round away.
    if Decimal(str(value).strip()) != amount:
        raise RuleError(path, f"an amount of money has at most 2 decimals, got {_show(value)}")
    return amount


def _parse_modifiers(mods: object, fields: Mapping[str, FieldSpec], path: str) -> list[_Modifier]:
    if mods is None:
        return []
    if not isinstance(mods, (list, tuple)):
        raise RuleError(path, f"expected a list of modifiers, got {_show(mods)}")
    parsed: list[_Modifier] = []
    for i, mod in enumerate(mods):
        item_path = f"{path}[{i}]"
        if not isinstance(mod, Mapping):
            raise RuleError(item_path, f"expected a modifier (a mapping), got {_show(mod)}")
        for key in mod:
            if key not in _MODIFIER_KEYS:
                raise RuleError(f"{item_path}.{key}", f"unknown key {_show(key)}")
        if ("add" in mod) == ("multiply" in mod):
            raise RuleError(item_path, "a modifier takes exactly one of 'add' or 'multiply'")
        when = _parse_top(mod.get("when"), fields, f"{item_path}.when")
        if "add" in mod:
            parsed.append(_Modifier(when, _parse_amount(mod["add"], f"{item_path}.add"), None))
        else:
            factor = _parse_factor(mod["multiply"], f"{item_path}.multiply")
            parsed.append(_Modifier(when, None, factor))
    return parsed


# --- compiling: closures only; the rule dict is never looked at again ------------------------


def _first_field(node: _Node) -> str:
    while not isinstance(node, _Leaf):
        node = node.child if isinstance(node, _Not) else node.children[0]
    return node.field


def _fail_on_type_error(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def guarded(value: Any) -> bool:
        try:
            return test(value)
        except TypeError:
            return False

    return guarded


def _leaf_test(op: str, target: Any, negate: bool) -> Callable[[Any], bool]:
    """A test of a present value; with ``negate`` it is the complement over present values."""
    if negate and op in _NEGATED:
        op, negate = _NEGATED[op], False
    if op == "eq":
        return lambda value: bool(value == target)
    if op == "ne":
        return lambda value: bool(value != target)
    # A value that cannot be hashed (a list or a mapping where a field's scalar was expected) is in no set.
    if op == "in":
        return _fail_on_type_error(lambda value: value in target)
    if op == "not_in":
        return _fail_on_type_error(lambda value: value not in target)
    if op == "gt":
        return _fail_on_type_error(lambda value: bool(value > target))
    if op == "gte":
        return _fail_on_type_error(lambda value: bool(value >= target))
    if op == "lt":
        return _fail_on_type_error(lambda value: bool(value < target))
    if op == "lte":
        return _fail_on_type_error(lambda value: bool(value <= target))
    if op == "between":
        low, high = target
        if negate:
            return _fail_on_type_error(lambda value: bool(value < low or value > high))
        return _fail_on_type_error(lambda value: bool(low <= value <= high))
    if op == "regex":
        search = target.search
        if negate:
            return lambda value: search(str(value)) is None
        return lambda value: search(str(value)) is not None
    if op == "prefix":
        if negate:
            return lambda value: not str(value).startswith(target)
        return lambda value: str(value).startswith(target)
    raise AssertionError(f"unhandled operator {op!r}")  # parsing only lets known operators in


def _compile_leaf(leaf: _Leaf, negate: bool) -> Predicate:
    name = leaf.field
    if leaf.op == "exists":
        if leaf.value != negate:

            def present(values: Mapping[str, object]) -> str | None:
                return None if values.get(name) is not None else name

            return present

        def absent(values: Mapping[str, object]) -> str | None:
            return name if values.get(name) is not None else None

        return absent

    test = _leaf_test(leaf.op, leaf.value, negate)

    def check(values: Mapping[str, object]) -> str | None:
        value = values.get(name)
        return None if value is not None and test(value) else name

    return check


def _compile_all(children: tuple[Predicate, ...]) -> Predicate:
    if len(children) == 1:
        return children[0]

    def every(values: Mapping[str, object]) -> str | None:
        for child in children:
            failed = child(values)
            if failed is not None:
                return failed
        return None

    return every


def _compile_any(children: tuple[Predicate, ...], reported: str) -> Predicate:
    def some(values: Mapping[str, object]) -> str | None:
        for child in children:
            if child(values) is None:
                return None
        return reported

    return some


def _compile_node(node: _Node, negate: bool) -> Predicate:
    if isinstance(node, _Leaf):
        return _compile_leaf(node, negate)
    if isinstance(node, _Not):
        inner = _compile_node(node.child, not negate)
        reported = _first_field(node)

        def negation(values: Mapping[str, object]) -> str | None:
            return None if inner(values) is None else reported

        return negation
    children = tuple(_compile_node(child, negate) for child in node.children)
    # De Morgan: under a negation, all becomes any and any becomes all.
    if isinstance(node, _All) != negate:
        return _compile_all(children)
    return _compile_any(children, _first_field(node))


def _always_pass(values: Mapping[str, object]) -> str | None:
    return None


@dataclass(frozen=True)
class IndexTerm:
    """A condition every lead a rule admits meets: its value of ``field`` is one of ``values``.
    An offer's book files the contract under those values (``exchange.auction.book``), so a lead
    with another value never reaches the contract's predicate."""

    field: str
    values: frozenset[Any]


def _index_term(node: _Node) -> IndexTerm | None:
    """The rule's first top-level condition (the rule itself, or a child of its ``all``) that
    limits an offer field to a set of values (``eq``, ``in``); a lead whose value is not in the set
    fails the whole rule whatever else it holds. The ping's own fields are not filed: their values
    depend on the buyer's time zone."""
    for leaf in node.children if isinstance(node, _All) else (node,):
        if isinstance(leaf, _Leaf) and not leaf.field.startswith("$"):
            if leaf.op == "eq":
                return IndexTerm(leaf.field, frozenset({leaf.value}))
            if leaf.op == "in":
                return IndexTerm(leaf.field, leaf.value)
    return None


# --- public API ------------------------------------------------------------------------------


def rule_validate(rule: object, *, fields: Mapping[str, FieldSpec], path: str = "filters") -> None:
    """Check a filter rule against an offer's fields; return only if it is valid.

    ``None`` and ``{}`` are valid (no filter). Otherwise raises :class:`RuleError` whose ``path``
    is the exact bad key (``filters.all[1].value``, ``filters.any[0].not.field``, or ``path``
    itself for a rule that is not a mapping or mixes combinators). A valid rule is guaranteed
    to compile with :func:`rule_compile`.
    """
    _parse_top(rule, fields, path)


def rule_compile(rule: object, *, fields: Mapping[str, FieldSpec]) -> Predicate:
    """Validate ``rule`` (raising :class:`RuleError` like :func:`rule_validate`) and compile it.

    Compile once per contract, never per lead. The predicate takes a lead's coerced values
    (missing keys and ``None`` mean absent) and returns ``None`` when the lead passes, or the
    name of the field that made it fail. It does not raise on coerced values (a mistyped value
    fails its ordering comparisons) and never mutates ``values``. See the module docstring for
    the handling of absent values.
    """
    return rule_compile_indexed(rule, fields=fields)[0]


def rule_compile_indexed(rule: object, *, fields: Mapping[str, FieldSpec]) -> tuple[Predicate, IndexTerm | None]:
    """:func:`rule_compile`, and the condition the book files the contract under (:class:`IndexTerm`;
    None: the rule limits no field to a set of values, and every lead is tested by the predicate)."""
    node = _parse_top(rule, fields, "filters")
    if node is None:
        return _always_pass, None
    return _compile_node(node, negate=False), _index_term(node)


def modifiers_validate(mods: object, *, fields: Mapping[str, FieldSpec], path: str = "modifiers") -> None:
    """Check a list of price modifiers; return only if it is valid.

    ``None`` and ``[]`` are valid (no modifiers). Each modifier is a mapping with exactly one of
    ``add`` (money: a string, int or Decimal, at most 2 decimals, may be negative) or
    ``multiply`` (a positive number as a string, int or Decimal; never a float or bool), and an
    optional ``when`` filter rule. Raises :class:`RuleError` with the exact bad key, e.g.
    ``modifiers[1].multiply`` or ``modifiers[0].when.field``.
    """
    _parse_modifiers(mods, fields, path)


def modifiers_bound(
    mods: object,
    *,
    fields: Mapping[str, FieldSpec],
    price: Decimal | None,
    max_bid: Decimal,
    path: str = "modifiers",
) -> None:
    """Check a list of price modifiers like :func:`modifiers_validate`, and that it stays within the
    offer's ``max_bid``; return only if it does. For a contract being saved (a stored one is cut to
    the max bid at ping time instead).

    At most :data:`MAX_MODIFIERS`; each ``multiply`` at most :data:`MAX_FACTOR`, each ``add``
    within ±``max_bid``; and with a fixed ``price``, the most the modifiers can make of it is at
    most ``max_bid``. That most is computed without looking at the ``when`` rules: in list order,
    every raise (a positive ``add``, a ``multiply`` above 1) is applied and every cut skipped —
    each step is an increasing function of the amount, so taking the larger of applying and
    skipping at each step gives the largest result of any set of matching rules. Raises
    :class:`RuleError` naming the modifier at fault (``modifiers[2].multiply``).
    """
    parsed = _parse_modifiers(mods, fields, path)
    if len(parsed) > MAX_MODIFIERS:
        raise RuleError(path, f"at most {MAX_MODIFIERS} modifiers, got {len(parsed)}")
    most = price
    for i, mod in enumerate(parsed):
        if mod.multiply is not None:
            key, operand = "multiply", mod.multiply
            if operand > MAX_FACTOR:
                raise RuleError(f"{path}[{i}].multiply", f"a factor is at most {MAX_FACTOR}, got {operand}")
        else:
            assert mod.add is not None
            key, operand = "add", mod.add
            if abs(operand) > max_bid:
                raise RuleError(
                    f"{path}[{i}].add", f"an amount within ±{max_bid:.2f} (the offer's max bid), got {operand:.2f}"
                )
        if most is None:
            continue
        most = max(most, most * operand if key == "multiply" else most + operand)
        if to_money(most) > max_bid:
            raise RuleError(
                f"{path}[{i}].{key}",
                f"with this modifier the price can reach {to_money(most):.2f}, above the offer's max bid of "
                f"{max_bid:.2f}",
            )


def modifiers_compile(mods: object, *, fields: Mapping[str, FieldSpec]) -> PriceFunction:
    """Validate ``mods`` (raising :class:`RuleError` like :func:`modifiers_validate`) and compile.

    The returned function takes a base price and a lead's coerced values, applies every
    modifier whose ``when`` passes, in list order and without intermediate rounding, and
    returns the result rounded half-up to the cent, never below 0.00.
    """
    steps: list[tuple[Predicate | None, bool, Decimal]] = []
    for mod in _parse_modifiers(mods, fields, "modifiers"):
        when = None if mod.when is None else _compile_node(mod.when, negate=False)
        if mod.add is not None:
            steps.append((when, True, mod.add))
        elif mod.multiply is not None:
            steps.append((when, False, mod.multiply))
    frozen_steps = tuple(steps)

    def price(base: Decimal, values: Mapping[str, object]) -> Decimal:
        amount = base
        for when, is_add, operand in frozen_steps:
            if when is None or when(values) is None:
                amount = amount + operand if is_add else amount * operand
        rounded = to_money(amount)
        return rounded if rounded > ZERO else ZERO

    return price
