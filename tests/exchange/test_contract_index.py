"""The offer's contract index: a ping looks only at the contracts its lead could satisfy, the
others are counted by reason; and the book is rebuilt by compiling only what changed."""

from __future__ import annotations

import time

import pytest

from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from exchange.auction import book
from exchange.auction.book import book_current, book_invalidate
from exchange.models import Ping
from tests.exchange.builder import buyer, load, ping
from tests.waiting import until

pytestmark = pytest.mark.django_db

CA = {"field": "state", "op": "eq", "value": "CA"}
TX_OR_NV = {"field": "state", "op": "in", "value": ["TX", "NV"]}
ZIP = {"field": "zip", "op": "in", "value": ["94105", "94107"]}
AGE = {"field": "age", "op": "gte", "value": 30}


def offer_book():
    return book_current().offers[next(iter(book_current().offers))]


def stored(ping_id: str) -> list[dict]:
    with market_scope():
        return Ping.objects.get(public_id=ping_id).waterfall


def market_of_five() -> None:
    load(
        buyer("ca", "20.00", filters=CA),
        buyer("txnv", "25.00", filters=TX_OR_NV),
        buyer("zip", "22.00", filters={"all": [AGE, ZIP]}),  # filed under its ZIP codes, not its age
        buyer("age", "21.00", filters=AGE),  # a range: no set of values to file it under
        buyer("paused", "30.00", filters=CA, status="paused"),  # does not bid: looked at on every ping
    )


def test_contracts_are_filed_by_the_values_their_filters_require():
    market_of_five()
    index = offer_book().index
    names = {position: c.public_id for position, c in enumerate(offer_book().contracts)}

    def named(positions):
        return [names[p] for p in positions]

    assert named(index.always) == ["ctr_age", "ctr_paused"]
    assert {field: {value: named(at) for value, at in filed.items()} for field, filed in index.filed.items()} == {
        "state": {"CA": ["ctr_ca"], "TX": ["ctr_txnv"], "NV": ["ctr_txnv"]},
        "zip": {"94105": ["ctr_zip"], "94107": ["ctr_zip"]},
    }
    positions, left_out = index.candidates({"state": "CA", "zip": "94105", "age": 40})
    assert named(positions) == ["ctr_ca", "ctr_zip", "ctr_age", "ctr_paused"]  # the book's order
    assert left_out == {"filtered:state": 1}
    positions, left_out = index.candidates({"state": "WA", "zip": "98101", "age": 40})
    assert named(positions) == ["ctr_age", "ctr_paused"]
    assert left_out == {"filtered:state": 2, "filtered:zip": 1}
    # A value missing, or one no set can hold (a list), is in no set.
    positions, left_out = index.candidates({"zip": ["94105"]})
    assert named(positions) == ["ctr_age", "ctr_paused"]
    assert left_out == {"filtered:state": 2, "filtered:zip": 1}


def test_a_ping_stores_a_step_per_contract_looked_at_and_counts_the_rest():
    market_of_five()

    answer = ping(1, state="CA", zip="94105", age=40)

    assert answer["status"] == "accepted" and answer["payout"] == "17.60"  # ctr_zip's 22.00 less 20 %
    steps = stored(answer["ping_id"])
    assert [(s.get("contract"), s["reason"], s.get("contracts")) for s in steps] == [
        ("ctr_ca", "outbid", None),
        ("ctr_zip", "won", None),
        ("ctr_age", "outbid", None),
        ("ctr_paused", "paused", None),
        (None, "filtered:state", 1),  # ctr_txnv
    ]

    answer = ping(2, state="NV", zip="89101", age=25)  # ctr_age fails on its own predicate

    assert answer["payout"] == "20.00"
    assert [(s.get("contract"), s["reason"], s.get("contracts")) for s in stored(answer["ping_id"])] == [
        ("ctr_txnv", "won", None),
        ("ctr_age", "filtered:age", None),
        ("ctr_paused", "paused", None),
        (None, "filtered:state", 1),
        (None, "filtered:zip", 1),
    ]


def test_a_contract_resumed_is_filed_again():
    market_of_five()
    with market_scope():
        BuyerContract.objects.filter(public_id="ctr_paused").update(status="active")
    book_invalidate()

    answer = ping(3, state="CA", zip="94105", age=40)

    assert answer["payout"] == "24.00"  # ctr_paused's 30.00
    assert [s.get("contract") for s in stored(answer["ping_id"])] == [
        "ctr_ca",
        "ctr_zip",
        "ctr_age",
        "ctr_paused",
        None,
    ]
    index = offer_book().index
    assert [offer_book().contracts[p].public_id for p in index.always] == ["ctr_age"]


def test_a_rebuild_compiles_only_the_contracts_that_changed():
    market_of_five()
    before = {c.public_id: c for c in offer_book().contracts}
    with market_scope():
        # A change that bypasses save() (no updated_at) is seen too: the rows are compared whole.
        BuyerContract.objects.filter(public_id="ctr_age").update(price="26.00")
    book_invalidate()

    after = {c.public_id: c for c in offer_book().contracts}

    assert after["ctr_age"] is not before["ctr_age"] and str(after["ctr_age"].price) == "26.00"
    assert all(after[name] is before[name] for name in before if name != "ctr_age")


@pytest.mark.django_db(transaction=True)
def test_a_big_book_is_rebuilt_behind_the_pings(monkeypatch):
    """Above BACKGROUND_REBUILD_CONTRACTS, a ping after a change keeps the book it has and one
    thread rebuilds it; the change reaches pings when it is done."""
    market_of_five()
    monkeypatch.setattr(book, "BACKGROUND_REBUILD_CONTRACTS", 0)
    before = book_current()
    with market_scope():
        BuyerContract.objects.filter(public_id="ctr_age").update(price="26.00")
    book_invalidate()
    started = time.perf_counter()

    assert book_current() is before  # not waited for

    until(lambda: book_current() is not before, what="the book rebuilt behind the pings", timeout=10)
    assert time.perf_counter() - started < 10
    prices = {c.public_id: str(c.price) for c in offer_book().contracts}
    assert prices["ctr_age"] == "26.00"
