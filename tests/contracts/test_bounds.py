"""Bounded buyer terms (DESIGN.md §6.1): a contract's price, max price, modifiers and regular
expressions are refused when saved, the same way through the buyer API, the market file and the
operator's admin; a refused save changes nothing."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from accounts.tenancy import market_scope
from contracts.models import BuyerContract, Campaign
from exchange.market import MarketError, market_load
from exchange.models import Offer, Ping
from tests.exchange.builder import BUYER_KEY_PREFIX, buyer, client, load, market, ping
from tests.exchange.test_admin import change_url, form_data

pytestmark = pytest.mark.django_db

CATASTROPHIC = "(.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*)*x"  # seconds per ping on Python's re (issue 12)


def contract_row(slug: str = "a-c") -> dict[str, Any]:
    with market_scope():
        row = BuyerContract.objects.filter(slug=slug).values().get()
    row.pop("updated_at")
    return row


def patch(values: dict[str, Any], slug: str = "a") -> Any:
    return client(f"{BUYER_KEY_PREFIX}{slug}_000000").patch(f"/api/v1/contracts/ctr_{slug}", values, format="json")


# --- the buyer API ---------------------------------------------------------------------------------

API_REFUSALS = [
    ({"price": "10000.01"}, "price", "Above the offer's max bid of 10000.00."),
    ({"max_price": "10000.01"}, "max_price", "Above the offer's max bid of 10000.00."),
    (
        {"modifiers": [{"multiply": "1000"}]},
        "modifiers",
        "modifiers[0].multiply: a factor is at most 100, got 1000",
    ),
    (
        {"modifiers": [{"when": {"field": "state", "op": "eq", "value": "CA"}, "multiply": "100"}, {"add": "7000.01"}]},
        "modifiers",
        "modifiers[1].add: with this modifier the price can reach 10000.01, above the offer's max bid of 10000.00",
    ),
    (
        {"modifiers": [{"multiply": "100"}, {"multiply": "4"}]},
        "modifiers",
        "modifiers[1].multiply: with this modifier the price can reach 12000.00, above the offer's max bid of 10000.00",
    ),
    (
        {"modifiers": [{"add": "-10000.01"}]},
        "modifiers",
        "modifiers[0].add: an amount within ±10000.00 (the offer's max bid), got -10000.01",
    ),
    ({"modifiers": [{"add": "1e40"}]}, "modifiers", "modifiers[0].add: '1e40' is too large an amount of money"),
    (
        {"filters": {"all": [{"field": "zip", "op": "regex", "value": r"(a)\1"}]}},
        "filters",
        "filters.all[0].value: invalid regular expression: invalid escape sequence: \\1",
    ),
    (
        {"filters": {"all": [{"field": "zip", "op": "regex", "value": "9" * 201}]}},
        "filters",
        "filters.all[0].value: a regular expression has at most 200 characters, this one has 201",
    ),
]


@pytest.mark.parametrize(("values", "field", "message"), API_REFUSALS, ids=[str(v) for v, _, _ in API_REFUSALS])
def test_the_api_refuses_terms_above_the_bounds_and_changes_nothing(values, field, message):
    load(buyer("a", "30.00"))
    before = contract_row()

    response = patch(values)

    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == [field]
    assert error["fields"][field][0].startswith(message), error["fields"][field]
    assert contract_row() == before


def test_the_max_bid_is_the_offers_and_reaching_it_exactly_is_allowed():
    load(buyer("a", "30.00"), max_bid="50.00")

    refused = patch({"price": "50.01"})
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"] == {"price": ["Above the offer's max bid of 50.00."]}

    accepted = patch({"price": "25.00", "max_price": "50.00", "modifiers": [{"multiply": "2"}]})
    assert accepted.status_code == 200, accepted.content
    assert (accepted.json()["price"], accepted.json()["max_price"]) == ("25.00", "50.00")


def test_a_catastrophic_pattern_saved_by_a_buyer_costs_the_ping_microseconds():
    load(buyer("a", "30.00"), buyer("b", "20.00"))
    rule = {"all": [{"field": "zip", "op": "regex", "value": CATASTROPHIC}]}

    response = patch({"filters": rule})

    assert response.status_code == 200, response.content
    assert response.json()["filters"] == rule
    ping(0)  # the book is built
    started = time.perf_counter()
    answer = ping(1)
    elapsed = time.perf_counter() - started
    with market_scope():
        steps = {s["contract"]: s for s in Ping.objects.get(public_id=answer["ping_id"]).waterfall}
    assert (steps["ctr_a"]["reason"], steps["ctr_b"]["reason"]) == ("filtered:zip", "won")
    assert steps["ctr_a"]["latency_ms"] < 5, steps["ctr_a"]  # the filter's share of the ping
    assert elapsed < 2, elapsed  # Python's re took over 2 s here


# --- the market file -------------------------------------------------------------------------------


def snapshot() -> dict[str, Any]:
    with market_scope():
        return {
            "offers": [{k: v for k, v in o.items() if k != "updated_at"} for o in Offer.objects.values()],
            "contracts": [
                {k: v for k, v in c.items() if k != "updated_at"} for c in BuyerContract.objects.order_by("pk").values()
            ],
            "campaigns": [
                {k: v for k, v in c.items() if k != "updated_at"} for c in Campaign.objects.order_by("pk").values()
            ],
        }


def test_the_market_file_sets_the_max_bid_and_defaults_it():
    load(buyer("a", "30.00"))
    assert Offer.objects.get(slug="auto").max_bid == Decimal("10000.00")
    load(buyer("a", "30.00"), max_bid="500.00")
    assert Offer.objects.get(slug="auto").max_bid == Decimal("500.00")


WEST = "organizations[0].contracts[0]"
MARKET_REFUSALS = [
    ({"price": "10000.01"}, {}, f"{WEST}.price", "Above the offer's max bid of 10000.00."),
    ({"price": "60.00"}, {"max_bid": "50.00"}, f"{WEST}.price", "Above the offer's max bid of 50.00."),
    ({"max_price": "10000.01"}, {}, f"{WEST}.max_price", "Above the offer's max bid of 10000.00."),
    (
        {"modifiers": [{"multiply": "1000"}]},
        {},
        f"{WEST}.modifiers[0].multiply",
        "a factor is at most 100, got 1000",
    ),
    (
        {"price": "30.00", "modifiers": [{"add": "5.00"}, {"multiply": "2"}]},
        {"max_bid": "60.00"},
        f"{WEST}.modifiers[1].multiply",
        "with this modifier the price can reach 70.00, above the offer's max bid of 60.00",
    ),
    (
        {"filters": {"field": "zip", "op": "regex", "value": "(?=9)"}},
        {},
        f"{WEST}.filters.value",
        "invalid regular expression: invalid perl operator: (?=",
    ),
    (
        {"delivery": {"method": "webhook", "url": "https://buyer.test/leads", "accept": {"regex": r"(ok)\1"}}},
        {},
        f"{WEST}.delivery.accept.regex",
        "invalid regular expression: invalid escape sequence: \\1",
    ),
    (
        {"delivery": {"method": "webhook", "url": "https://buyer.test/leads", "accept": {"regex": "a{101}"}}},
        {},
        f"{WEST}.delivery.accept.regex",
        "a counted repetition is at most {100}, got {101}",
    ),
    ({}, {"max_bid": "0.00"}, "offers[0].max_bid", "greater than or equal to 0.01"),
    ({}, {"floor": "60.00", "max_bid": "50.00"}, "offers[0].floor", "Above the offer's max bid of 50.00."),
    (
        {},
        {"campaign": {"direct_route": {"contract": "a-c", "price": "60.00"}}, "max_bid": "50.00"},
        "organizations[1].campaigns[0].direct_route.price",
        "Above the offer's max bid of 50.00.",
    ),
]


@pytest.mark.parametrize(
    ("contract", "offer", "path", "message"), MARKET_REFUSALS, ids=[p for _, _, p, _ in MARKET_REFUSALS]
)
def test_the_market_file_refuses_terms_above_the_bounds_with_the_path_and_changes_nothing(
    contract, offer, path, message
):
    load(buyer("a", "30.00"))
    before = snapshot()
    campaign = offer.pop("campaign", None)
    data = market(buyer("a", **{"price": "30.00", **contract}), campaign=campaign, **offer)
    data["organizations"][0]["name"] = "Renamed"  # an earlier, valid change in the same file

    with pytest.raises(MarketError) as error:
        market_load(data)

    assert error.value.path == path
    assert message in error.value.message, error.value.message
    assert snapshot() == before


def test_a_valid_delivery_accept_regex_loads():
    delivery = {"method": "webhook", "url": "https://buyer.test/leads", "accept": {"regex": r"^\s*accepted\b"}}
    load(buyer("a", "30.00", delivery=delivery))
    assert contract_row()["delivery"] == delivery


# --- the operator's admin --------------------------------------------------------------------------

ADMIN_REFUSALS = [
    ({"price": "10000.01"}, "price", "Above the offer&#x27;s max bid of 10000.00."),
    ({"max_price": "20000.00"}, "max_price", "Above the offer&#x27;s max bid of 10000.00."),
    ({"modifiers": '[{"multiply": "1000"}]'}, "modifiers", "modifiers[0].multiply: a factor is at most 100"),
    (
        {"filters": '{"field": "zip", "op": "regex", "value": "(a)\\\\1"}'},
        "filters",
        "filters.value: invalid regular expression",
    ),
]


@pytest.mark.parametrize(("changes", "field", "message"), ADMIN_REFUSALS, ids=[f for _, f, _ in ADMIN_REFUSALS])
def test_the_admin_refuses_terms_above_the_bounds_on_the_field_and_changes_nothing(
    operator_client: Client, changes, field, message
):
    load(buyer("a", "30.00"))
    before = contract_row()
    with market_scope():
        contract = BuyerContract.objects.get(slug="a-c")
    page = operator_client.get(change_url(contract)).content.decode()

    response = operator_client.post(change_url(contract), form_data(page, **changes))

    assert response.status_code == 200  # the page again, with the error
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field], errors
    assert errors[field][0].startswith(message.replace("&#x27;", "'")), errors[field]
    assert message in response.content.decode()
    assert contract_row() == before


def test_the_admin_edits_an_offers_max_bid(operator_client: Client):
    load(buyer("a", "30.00"))
    offer = Offer.objects.get(slug="auto")
    page = operator_client.get(change_url(offer)).content.decode()

    response = operator_client.post(change_url(offer), form_data(page, max_bid="25.00"))

    assert response.status_code == 302, response.content.decode()[:2000]
    offer.refresh_from_db()
    assert offer.max_bid == Decimal("25.00")
    # The contract saved at 30.00 before the bound moved bids at the new ceiling.
    answer = ping(1)
    with market_scope():
        steps = {s["contract"]: s for s in Ping.objects.get(public_id=answer["ping_id"]).waterfall}
    assert steps["ctr_a"]["price"] == "25.00"


@pytest.mark.parametrize(
    ("contract", "path", "message"),
    [
        ({"price": None, "rtb_url": "http://127.0.0.1:8900/rtb"}, f"{WEST}.rtb_url", "private or reserved address"),
        (
            {"delivery": {"method": "webhook", "url": "http://[2002:c0a8:1::1]/leads"}},
            f"{WEST}.delivery.url",
            "private or reserved address",
        ),
        ({"price": None, "rtb_url": "ftp://buyer.test/rtb"}, f"{WEST}.rtb_url", "Only http and https URLs"),
    ],
)
def test_a_url_the_exchange_will_not_call_is_refused_when_saved(settings, contract, path, message):
    load(buyer("a", "30.00"))
    before = snapshot()
    settings.GAVEL_ALLOW_PRIVATE_URLS = False

    with pytest.raises(MarketError) as error:
        market_load(market(buyer("a", **{"price": "30.00", **contract})))

    assert error.value.path == path
    assert message in error.value.message, error.value.message
    assert snapshot() == before
