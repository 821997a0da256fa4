"""Hypothesis properties of the money helpers (core/money.py), the filter rule language
(contracts/rules.py) and the market loader (exchange/market.py)."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.db import transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.rules import OPERATORS, RuleError, rule_compile
from core.money import money_str, payout_for, to_money
from core.schema import FieldSpec
from exchange.market import MarketError, market_load
from tests.exchange.builder import buyer, market

AMOUNTS = st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), allow_nan=False, places=4)
PERCENTS = st.decimals(min_value=Decimal("0"), max_value=Decimal("100"), allow_nan=False, places=2)


@given(AMOUNTS)
def test_to_money_is_a_decimal_with_at_most_two_places(value: Decimal) -> None:
    money = to_money(value)
    assert isinstance(money, Decimal) and not isinstance(money, float)
    assert -money.as_tuple().exponent <= 2  # type: ignore[operator]
    assert abs(money - value) <= Decimal("0.005")


@given(AMOUNTS, PERCENTS)
def test_the_payout_and_the_margin_make_the_price(price: Decimal, margin: Decimal) -> None:
    price = to_money(price)
    payout = payout_for(price, margin)
    share = to_money(price * margin / 100)
    assert payout <= price
    assert abs(payout + share - price) <= Decimal("0.01")


@given(AMOUNTS)
def test_money_str_round_trips(value: Decimal) -> None:
    money = to_money(value)
    assert to_money(money_str(money)) == money


# --- the filter rule language (contracts/rules.py) -------------------------------------------------

FIELDS = {
    "name": FieldSpec("name", "string", ping="required"),
    "age": FieldSpec("age", "integer", ping="required"),
    "income": FieldSpec("income", "decimal", ping="required"),
    "owner": FieldSpec("owner", "boolean", ping="required"),
    "plan": FieldSpec("plan", "choice", ping="required", choices=("basic", "gold")),
    "born": FieldSpec("born", "date", ping="required"),
    "state": FieldSpec("state", "state", ping="required"),
    "zip": FieldSpec("zip", "zip", ping="required"),
    "email": FieldSpec("email", "email", ping="required"),
    "secret": FieldSpec("secret", "string", pii=True),
}
DATES = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
# A lead's coerced value of each field's type (what rules run on).
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": st.text(max_size=8),
    "age": st.integers(-5, 130),
    "income": st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False),
    "owner": st.booleans(),
    "plan": st.sampled_from(["basic", "gold"]),
    "born": DATES,
    "state": st.sampled_from(["CA", "NY", "TX"]),
    "zip": st.from_regex(r"\A[0-9]{5}\Z"),
    "email": st.emails(),
}
# The same values as a rule writes them in JSON.
JSON_VALUES: dict[str, st.SearchStrategy[Any]] = {
    **VALUES,
    "income": VALUES["income"].map(str),
    "born": DATES.map(date.isoformat),
}
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
RULE_KEYS = st.sampled_from(["field", "op", "value", "all", "any", "not", *FIELDS, *OPERATORS])
# JSON shaped like a rule, so that most of the tree gets parsed rather than refused at the top.
RULE_LIKE = st.recursive(
    st.fixed_dictionaries(
        {
            "field": st.sampled_from([*FIELDS, "$hour", "$weekday", "$nope", 3]),
            "op": st.sampled_from([*OPERATORS, "x"]),
        },
        optional={"value": JSON | st.one_of(*JSON_VALUES.values()) | st.lists(st.one_of(*JSON_VALUES.values()))},
    )
    | JSON,
    lambda inner: (
        st.dictionaries(st.sampled_from(["all", "any", "not"]), inner | st.lists(inner, max_size=3), max_size=2)
        | st.dictionaries(RULE_KEYS, inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    """A valid leaf: a filterable field, an operator of its type, a value of its type."""
    name = draw(st.sampled_from([n for n in VALUES]))
    spec = FIELDS[name]
    ops = ["eq", "ne", "in", "not_in", "exists"]
    if spec.type in ("integer", "decimal", "date"):
        ops += ["gt", "gte", "lt", "lte", "between"]
    if spec.type in ("string", "choice", "state", "zip", "email"):
        ops += ["regex", "prefix"]
    op = draw(st.sampled_from(ops))
    one = JSON_VALUES[name]
    if op == "exists":
        value: Any = draw(st.booleans())
    elif op in ("in", "not_in"):
        value = draw(st.lists(one, min_size=1, max_size=3))
    elif op == "between":
        low, high = sorted(draw(st.lists(VALUES[name], min_size=2, max_size=2)))
        value = [str(low), str(high)] if spec.type in ("decimal", "date") else [low, high]
    elif op == "regex":
        value = draw(st.sampled_from(["^a", "[0-9]", "x|y", "^$", "(?i)ca"]))
    elif op == "prefix":
        value = draw(st.sampled_from({"state": ["C", "n"], "zip": ["9", "10"]}.get(spec.type, ["a", "ba", "g"])))
    else:
        value = draw(one)
    return {"field": name, "op": op, "value": value}


RULES = st.recursive(
    leaves(),
    lambda inner: (
        st.builds(lambda r: {"not": r}, inner)
        | st.lists(inner, min_size=1, max_size=3).map(lambda rs: {"all": rs})
        | st.lists(inner, min_size=1, max_size=3).map(lambda rs: {"any": rs})
    ),
    max_leaves=8,
)
# A lead with every filterable field present, each of its type.
FULL_LEADS = st.fixed_dictionaries(dict(VALUES.items()))
# A lead with any of them missing, None, or of another type than its field's.
ANY_LEADS = st.dictionaries(st.sampled_from([*FIELDS, "$hour", "$weekday"]), st.one_of(JSON, *VALUES.values()))


@settings(derandomize=True, max_examples=300)
@given(RULE_LIKE)
def test_compiling_any_json_raises_only_rule_error(rule: Any) -> None:
    try:
        rule_compile(rule, fields=FIELDS)
    except RuleError as exc:
        assert exc.path.startswith("filters")


@settings(derandomize=True, max_examples=300)
@given(RULES, ANY_LEADS)
def test_a_compiled_rule_never_raises_on_a_lead(rule: dict[str, Any], lead: dict[str, Any]) -> None:
    verdict = rule_compile(rule, fields=FIELDS)(lead)
    assert verdict is None or verdict in FIELDS


@settings(derandomize=True, max_examples=300)
@given(RULES, FULL_LEADS)
def test_not_is_the_negation_on_a_lead_with_every_field(rule: dict[str, Any], lead: dict[str, Any]) -> None:
    # On a lead that lacks a field both fail (rules.py: an unknown value is never eligible).
    passes = rule_compile(rule, fields=FIELDS)(lead) is None
    assert (rule_compile({"not": rule}, fields=FIELDS)(lead) is None) is (not passes)


# --- the market loader (exchange/market.py) --------------------------------------------------------

VALID_MARKET = market(buyer("acme", filters={"field": "state", "op": "in", "value": ["CA", "NY"]}))


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value inside ``value`` (a key of a mapping, an index of a list)."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, sub in items:
        found += [(*path, key), *_paths(sub, (*path, key))]
    return found


PATHS = _paths(VALID_MARKET)
OTHER_JSON = st.sampled_from([None, True, 0, -1, 1.5, "", "x", [], [1], {}, {"x": 1}])


@st.composite
def mutated_markets(draw: st.DrawFn) -> dict[str, Any]:
    """The valid market with one change: a key dropped, or a value replaced by one of another JSON type."""
    data = copy.deepcopy(VALID_MARKET)
    path = draw(st.sampled_from(PATHS))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[last]
    else:
        old = parent[last]
        parent[last] = draw(OTHER_JSON.filter(lambda new: type(new) is not type(old)))
    return data


def _row_counts() -> dict[str, int]:
    return {model._meta.label: model._base_manager.count() for model in apps.get_models()}


@pytest.mark.django_db
@settings(max_examples=50, deadline=None, derandomize=True)
@given(mutated_markets())
def test_a_mutated_market_file_is_loaded_or_refused_naming_a_path_and_writing_nothing(data: dict[str, Any]) -> None:
    with transaction.atomic():  # each example leaves the database as it found it
        before = _row_counts()
        try:
            market_load(data)
        except MarketError as exc:
            assert exc.path and exc.message
            assert _row_counts() == before
        transaction.set_rollback(True)
