"""``$source``, ``$hour`` and ``$weekday`` in filters and modifiers (DESIGN.md §6.1): a buyer pays
more for one source or bids only in business hours, in its own time zone, at a frozen instant."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from accounts.tenancy import market_scope
from contracts.models import BuyerContract, Campaign
from contracts.rules import (
    PSEUDO_FIELDS,
    RuleError,
    modifiers_compile,
    ping_values,
    pseudo_fields_used,
    rule_compile,
    rule_validate,
)
from contracts.services import contract_update
from core.schema import offer_fields_parse
from exchange.auction.book import book_current
from exchange.models import Ping
from exchange.portal import reason_label
from tests.exchange.builder import FIELDS, SELLER2_KEY, buyer, load, ping

NEW_YORK = ZoneInfo("America/New_York")
SPECS = offer_fields_parse(FIELDS)
# Wednesday 2 December 2026, 14:30 UTC = 09:30 in New York (EST, UTC-5).
WED_0930_NY = datetime(2026, 12, 2, 14, 30, tzinfo=UTC)
WED_0830_NY = datetime(2026, 12, 2, 13, 30, tzinfo=UTC)
WED_1800_NY = datetime(2026, 12, 2, 23, 0, tzinfo=UTC)  # 18:00 New York; already Thursday in UTC at 00:00+
SAT_1000_NY = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)


def ny(slug: str, price: str, **contract: Any) -> dict[str, Any]:
    return {**buyer(slug, price, **contract), "timezone": "America/New_York"}


def source_of(campaign: str) -> str:
    with market_scope():
        return Campaign.objects.get(public_id=campaign).source_token


def waterfall(answer: dict[str, Any]) -> dict[str, str]:
    with market_scope():
        steps = Ping.objects.get(public_id=answer["ping_id"]).waterfall
    return {s["contract"]: s["reason"] for s in steps}


# --- the rule language -----------------------------------------------------------------------------


def test_the_pseudo_fields_are_described_for_the_filter_builder():
    assert [(p.name, p.type, p.choices, p.label) for p in PSEUDO_FIELDS] == [
        ("$source", "string", (), "Source"),
        ("$hour", "integer", (), "Hour of the day"),
        ("$weekday", "string", ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "Day of the week"),
    ]


def test_pseudo_fields_compile_with_their_own_types():
    values = ping_values({"state": "CA"}, source="src_a", now=WED_0930_NY, tz=NEW_YORK)
    assert values == {"state": "CA", "$source": "src_a", "$hour": 9, "$weekday": "wed"}
    rule = {
        "all": [
            {"field": "$hour", "op": "between", "value": [9, 17]},
            {"field": "$weekday", "op": "in", "value": ["mon", "wed"]},
            {"field": "$source", "op": "prefix", "value": "src_"},
        ]
    }
    assert rule_compile(rule, fields=SPECS)(values) is None
    assert rule_compile(rule, fields=SPECS)({**values, "$hour": 8}) == "$hour"
    assert rule_compile({"not": {"field": "$weekday", "op": "eq", "value": "wed"}}, fields=SPECS)(values) == "$weekday"
    assert rule_compile(rule, fields=SPECS)({"state": "CA"}) == "$hour"  # no ping values: fails, never raises
    assert pseudo_fields_used(rule, [{"when": {"field": "$source", "op": "eq", "value": "x"}, "add": "1.00"}]) == {
        "$hour",
        "$weekday",
        "$source",
    }
    assert pseudo_fields_used({"field": "state", "op": "eq", "value": "CA"}, []) == frozenset()


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        (
            {"field": "$foo", "op": "eq", "value": 1},
            "filters.field",
            "unknown field '$foo' (the ping's own fields are $source, $hour, $weekday)",
        ),
        ({"field": "$hour", "op": "eq", "value": 24}, "filters.value", "$hour is between 0 and 23, got 24"),
        ({"field": "$hour", "op": "between", "value": [-1, 5]}, "filters.value", "$hour is between 0 and 23"),
        ({"field": "$hour", "op": "eq", "value": "noon"}, "filters.value", "expected an integer, got 'noon'"),
        ({"field": "$hour", "op": "regex", "value": "1."}, "filters.op", "operator 'regex' does not apply"),
        ({"field": "$weekday", "op": "in", "value": ["sat", "sunday"]}, "filters.value[1]", "expected one of mon"),
        ({"field": "$weekday", "op": "gt", "value": "mon"}, "filters.op", "operator 'gt' does not apply"),
        ({"field": "$source", "op": "eq", "value": 7}, "filters.value", "expected a string, got 7"),
    ],
)
def test_a_bad_pseudo_field_rule_names_the_key(rule, path, message):
    with pytest.raises(RuleError) as error:
        rule_validate(rule, fields=SPECS)
    assert error.value.path == path
    assert message in error.value.message


def test_a_modifier_may_test_the_source():
    favour = {"when": {"field": "$source", "op": "eq", "value": "src_a"}, "add": "4.00"}
    price = modifiers_compile([favour], fields=SPECS)
    assert price(Decimal("10.00"), {"$source": "src_a"}) == Decimal("14.00")
    assert price(Decimal("10.00"), {"$source": "src_b"}) == Decimal("10.00")


# --- in the auction --------------------------------------------------------------------------------


def test_a_buyer_pays_more_for_one_source(db):
    load(buyer("a", "10.00"), buyer("b", "12.00"))
    favour = {"when": {"field": "$source", "op": "eq", "value": source_of("cmp_seller")}, "add": "5.00"}
    with market_scope():
        contract_update(contract=BuyerContract.objects.get(slug="a-c"), terms={"modifiers": [favour]})

    favoured = ping(1)  # from cmp_seller: a bids 15.00 and beats b's 12.00
    other = ping(2, key=SELLER2_KEY, campaign="cmp_seller2")  # from cmp_seller2: a bids 10.00, b wins
    assert (favoured["payout"], waterfall(favoured)) == ("12.00", {"ctr_a": "won", "ctr_b": "outbid"})
    assert (other["payout"], waterfall(other)) == ("9.60", {"ctr_a": "outbid", "ctr_b": "won"})


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (WED_0830_NY, "filtered:$hour"),
        (WED_0930_NY, "won"),
        (WED_1800_NY, "filtered:$hour"),
    ],
)
def test_a_contract_bids_only_from_9_to_17_in_new_york(db, instant, expected):
    load(ny("a", "10.00", filters={"field": "$hour", "op": "between", "value": [9, 17]}))
    with time_machine.travel(instant, tick=False):
        answer = ping(1)
    assert waterfall(answer) == {"ctr_a": expected}
    assert answer["status"] == ("accepted" if expected == "won" else "rejected")


def test_the_hour_is_the_buyers_own_time_zone(db):
    # 09:30 in New York is 06:30 in Los Angeles: the same filter, another answer.
    business_hours = {"field": "$hour", "op": "between", "value": [9, 17]}
    load(
        ny("a", "10.00", filters=business_hours),
        {**buyer("b", "9.00", filters=business_hours), "timezone": "America/Los_Angeles"},
    )
    with time_machine.travel(WED_0930_NY, tick=False):
        answer = ping(1)
    assert waterfall(answer) == {"ctr_a": "won", "ctr_b": "filtered:$hour"}


def test_a_weekend_only_contract_and_a_weekday_multiplier(db):
    weekend = {"field": "$weekday", "op": "in", "value": ["sat", "sun"]}
    load(
        ny("a", "10.00", filters=weekend),
        ny("b", "8.00", modifiers=[{"when": weekend, "multiply": "1.50"}]),
    )
    with time_machine.travel(WED_0930_NY, tick=False):
        weekday = ping(1)
    with time_machine.travel(SAT_1000_NY, tick=False):
        saturday = ping(2)
    assert (weekday["payout"], waterfall(weekday)) == ("6.40", {"ctr_a": "filtered:$weekday", "ctr_b": "won"})
    assert (saturday["payout"], waterfall(saturday)) == ("9.60", {"ctr_a": "outbid", "ctr_b": "won"})  # 8 × 1.5


def test_only_contracts_that_test_the_ping_fields_get_them(db):
    load(ny("a", "10.00", filters={"field": "$hour", "op": "gte", "value": 0}), buyer("b", "9.00"))
    offer = next(iter(book_current().offers.values()))
    by_id = {c.public_id: c for c in offer.contracts}
    assert (by_id["ctr_a"].pseudo_fields, by_id["ctr_b"].pseudo_fields) == (frozenset({"$hour"}), frozenset())


def test_the_waterfall_reason_reads_in_words():
    assert reason_label("filtered:$hour") == "Filtered out on hour of the day ($hour)"
    assert reason_label("filtered:state") == "Filtered out on state"
