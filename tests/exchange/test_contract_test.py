""" "Test my contracts" (/portal/contracts/test): for each of the buyer's contracts on an offer, would it
bid on the lead described, at what price, or why not — by the auction's own evaluation, writing
nothing."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.tenancy import market_scope
from billing.models import LedgerEntry
from contracts.models import Campaign, CapCounter
from exchange.models import Bid, Ping
from tests.exchange.builder import load, ping
from tests.sessions import member

pytestmark = pytest.mark.django_db

URL = "/portal/contracts/test"


def contracts(**extra: dict[str, Any]) -> list[dict[str, Any]]:
    base = {
        "best": {
            "price": "30.00",
            "modifiers": [{"when": {"field": "state", "op": "eq", "value": "CA"}, "add": "5.00"}],
        },
        "texas": {"price": "50.00", "filters": {"field": "state", "op": "in", "value": ["TX"]}},
        "resting": {"price": "40.00", "status": "paused"},
        "frozen": {"price": "45.00", "hold": "operator", "hold_reason": "Deliveries rejected"},
        "realtime": {"price": None, "rtb_url": "https://buyer.test/rtb", "max_price": "60.00"},
        "office": {"price": "20.00", "filters": {"field": "$hour", "op": "between", "value": [9, 17]}},
        **extra,
    }
    return [
        {"slug": f"a-{name}", "id": f"ctr_{name}", "name": name.title(), "offer": "auto", **terms}
        for name, terms in base.items()
    ]


def buyer_a(**extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "slug": "a",
        "name": "A",
        "roles": ["buyer"],
        "timezone": "America/New_York",
        "balance": "1000.00",
        "contracts": contracts(**extra),
    }


def verdicts(response: Any) -> dict[str, tuple[bool, Any, str]]:
    return {v.public_id: (v.bids, v.price and f"{v.price:.2f}", v.words) for v in response.context["verdicts"]}


def rows() -> tuple[int, ...]:
    with market_scope():
        return (Ping.objects.count(), Bid.objects.count(), CapCounter.objects.count(), LedgerEntry.objects.count())


def test_each_contract_says_whether_it_would_bid_at_what_price_or_why_not():
    load(buyer_a())
    page = member("owner@a.test", "a", "analyst")
    before = rows()

    response = page.get(
        URL,
        {"run": "1", "offer": "auto", "f_state": "CA", "f_zip": "94107", "f_age": "34", "weekday": "wed", "hour": "10"},
    )

    assert response.status_code == 200
    assert verdicts(response) == {
        "ctr_best": (True, "35.00", "Would bid $35.00"),
        "ctr_office": (True, "20.00", "Would bid $20.00"),
        "ctr_realtime": (
            False,
            None,
            "Would ask your RTB endpoint for a bid (at most $60.00); it is not called in a test",
        ),
        "ctr_texas": (False, None, "Filtered out on state"),
        "ctr_resting": (False, None, "Paused by you"),
        "ctr_frozen": (False, None, "Held by the exchange: Deliveries rejected"),
    }
    assert [v.public_id for v in response.context["verdicts"]][:3] == ["ctr_best", "ctr_office", "ctr_realtime"]
    html = response.content.decode()
    assert "Would bid $35.00" in html and "Filtered out on state" in html
    assert "on Wednesday 10:" in html and "(America/New_York)" in html
    assert rows() == before  # no ping, bid, cap counter or ledger entry written


def test_the_hour_and_weekday_overrides_reach_the_rules():
    load(buyer_a())
    page = member("owner@a.test", "a")
    response = page.get(URL, {"run": "1", "f_state": "CA", "f_zip": "94107", "weekday": "sat", "hour": "8"})
    assert verdicts(response)["ctr_office"] == (False, None, "Filtered out on hour of the day ($hour)")


def test_a_source_override_applies_that_campaigns_blocks_and_the_source_rules():
    load(buyer_a(sourced={"price": "33.00", "filters": {"field": "$source", "op": "prefix", "value": "src_"}}))
    with market_scope():
        token = Campaign.objects.get(public_id="cmp_seller").source_token
    page = member("owner@a.test", "a")
    anywhere = page.get(URL, {"run": "1", "f_state": "CA", "f_zip": "94107"})
    sourced = page.get(URL, {"run": "1", "f_state": "CA", "f_zip": "94107", "source": token})
    assert verdicts(anywhere)["ctr_sourced"] == (False, None, "Filtered out on source ($source)")
    assert verdicts(sourced)["ctr_sourced"] == (True, "33.00", "Would bid $33.00")


def test_a_recent_ping_prefills_the_form_and_runs():
    load(buyer_a())
    answer = ping(1, state="TX", zip="73301")
    page = member("owner@a.test", "a")
    before = rows()

    response = page.get(URL, {"offer": "auto", "ping": answer["ping_id"]})

    assert response.status_code == 200
    assert {f.name: f.value for f in response.context["inputs"]} == {"state": "TX", "zip": "73301", "age": "34"}
    assert verdicts(response)["ctr_texas"] == (True, "50.00", "Would bid $50.00")
    assert verdicts(response)["ctr_best"] == (True, "30.00", "Would bid $30.00")
    assert response.context["source"].startswith("src_")
    assert rows() == before


def test_a_bad_field_is_shown_on_the_field_and_nothing_is_evaluated():
    load(buyer_a())
    page = member("owner@a.test", "a")
    response = page.get(URL, {"run": "1", "f_state": "CA", "f_zip": "941", "f_age": "old"})
    assert response.status_code == 422
    errors = {f.name: f.errors for f in response.context["inputs"] if f.errors}
    assert set(errors) == {"zip", "age"}
    assert response.context["verdicts"] == []
    assert {f.name: f.value for f in response.context["inputs"]}["zip"] == "941"  # nothing typed is lost


def test_a_missing_required_field_is_named():
    load(buyer_a())
    response = member("owner@a.test", "a").get(URL, {"run": "1", "f_zip": "94107"})
    assert response.status_code == 422
    assert {f.name: f.errors for f in response.context["inputs"]}["state"]


def test_the_form_alone_runs_nothing():
    load(buyer_a())
    response = member("owner@a.test", "a").get(URL)
    assert response.status_code == 200
    assert response.context["verdicts"] == [] and not response.context["run"]
    assert [f.name for f in response.context["inputs"]] == ["state", "zip", "age"]  # the ping fields, no PII


def test_a_seller_gets_the_403_page():
    load(buyer_a())
    response = member("owner@seller.test", "seller").get(URL)
    assert response.status_code == 403
    assert "This page is for buyers" in response.content.decode()


def test_another_buyer_sees_only_its_own_contracts():
    load(
        buyer_a(),
        {
            "slug": "b",
            "name": "B",
            "roles": ["buyer"],
            "contracts": [{"slug": "b-c", "id": "ctr_b", "offer": "auto", "price": "99.00"}],
        },
    )
    response = member("owner@b.test", "b").get(URL, {"run": "1", "f_state": "CA", "f_zip": "94107"})
    assert set(verdicts(response)) == {"ctr_b"}


def test_a_buyer_without_contracts_is_told_what_to_do():
    load({"slug": "b", "name": "B", "roles": ["buyer"], "contracts": []})
    response = member("owner@b.test", "b").get(URL)
    assert response.status_code == 200
    assert "You have no contracts yet" in response.content.decode()


def test_the_contract_list_links_to_the_test_page():
    load(buyer_a())
    html = member("owner@a.test", "a").get("/portal/contracts/").content.decode()
    assert f'href="{URL}"' in html
