"""Fixed seller payouts: a campaign that pays a fixed amount per sale instead of the margin share.

The floor of such a campaign is the least price that pays the payout and leaves the margin's share
of the price to the exchange; each sale books exactly price / payout / price − payout, and a return
reverses exactly that."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from accounts.tenancy import market_scope
from contracts.models import Campaign
from contracts.services import campaign_update
from core.money import payout_for, price_for_payout
from demo.buyers import Behaviour
from exchange.auction.book import book_invalidate
from exchange.models import Ping, Sale
from exchange.returns.services import return_decide, return_request
from tests.exchange.builder import buyer, client, lead_body, load, org, ping, post, sell
from tests.ledger import balance, ledger_is_consistent

pytestmark = pytest.mark.django_db

FIXED = {"payout_fixed": "10.00"}  # with the offer's 20 % margin: bids from 12.50


def steps(ping_id: str) -> dict[str, dict]:
    with market_scope():
        return {s["contract"]: s for s in Ping.objects.get(public_id=ping_id).waterfall}


def sales() -> list[tuple[str, str, Decimal, Decimal, Decimal]]:
    with market_scope():
        return list(Sale.objects.order_by("pk").values_list("contract__slug", "status", "price", "payout", "margin"))


def test_the_floor_of_a_fixed_payout_is_the_payout_and_the_margins_share():
    assert price_for_payout(Decimal("10.00"), Decimal("20")) == Decimal("12.50")
    assert price_for_payout(Decimal("7.00"), Decimal("33.33")) == Decimal("10.50")
    assert price_for_payout(Decimal("10.00"), Decimal("100")) is None
    assert payout_for(Decimal("30.00"), Decimal("20"), fixed=Decimal("10.00")) == Decimal("10.00")


def test_a_bid_under_the_payout_and_margin_is_below_floor_and_the_winner_pays_the_fixed_payout():
    load(buyer("cheap", "12.49"), buyer("exact", "12.50"), campaign=FIXED)
    answer = ping(1)
    assert steps(answer["ping_id"])["ctr_cheap"]["reason"] == "below_floor"
    assert steps(answer["ping_id"])["ctr_exact"]["reason"] == "won"
    assert (answer["status"], answer["payout"]) == ("accepted", "10.00")
    sold = post(answer["ping_id"], 1)
    assert (sold["status"], sold["payout"]) == ("sold", "10.00")
    assert sales() == [("exact-c", "sold", Decimal("12.50"), Decimal("10.00"), Decimal("2.50"))]
    assert balance("exact") == Decimal("987.50")
    assert balance("seller", "seller_payable") == Decimal("10.00")
    assert balance(None, "platform_revenue") == Decimal("2.50")
    ledger_is_consistent(settled=True)


def test_no_bid_covers_the_fixed_payout_the_ping_is_rejected_and_nothing_moves():
    load(buyer("cheap", "12.49"), campaign=FIXED)
    answer = ping(1)
    assert (answer["status"], answer["reason"]) == ("rejected", "no_buyers")
    assert steps(answer["ping_id"])["ctr_cheap"]["reason"] == "below_floor"
    assert sales() == []
    assert balance("cheap") == Decimal("1000.00")


def test_a_second_price_sale_pays_the_fixed_payout_and_keeps_the_rest():
    load(buyer("high", "30.00"), buyer("low", "13.00"), campaign=FIXED, pricing="second_price")
    sold = sell(1)
    assert (sold["status"], sold["payout"]) == ("sold", "10.00")
    assert sales() == [("high-c", "sold", Decimal("13.01"), Decimal("10.00"), Decimal("3.01"))]
    ledger_is_consistent(settled=True)


def test_an_rtb_bid_under_the_floor_is_below_floor(buyers):
    buyers.behaviours["low"] = Behaviour(bid="12.00")
    buyers.behaviours["high"] = Behaviour(bid="25.00")
    load(
        buyer("low", None, rtb_url=buyers.url("low")),
        buyer("high", None, rtb_url=buyers.url("high")),
        campaign=FIXED,
    )
    answer = ping(1)
    assert steps(answer["ping_id"])["ctr_low"]["reason"] == "below_floor"
    assert steps(answer["ping_id"])["ctr_high"]["reason"] == "won"
    post(answer["ping_id"], 1)
    assert sales() == [("high-c", "sold", Decimal("25.00"), Decimal("10.00"), Decimal("15.00"))]


def test_each_multisell_sale_pays_the_fixed_payout():
    load(
        buyer("a", "30.00"),
        buyer("b", "20.00"),
        buyer("c", "12.50"),
        buyer("d", "12.00"),
        campaign=FIXED,
        distribution="multisell",
        multisell_max=3,
    )
    answer = ping(1)
    assert answer["payout"] == "30.00"  # three sales at 10.00
    assert steps(answer["ping_id"])["ctr_d"]["reason"] == "below_floor"
    sold = post(answer["ping_id"], 1)
    assert (sold["status"], sold["payout"]) == ("sold", "30.00")
    assert sorted(sales()) == [
        ("a-c", "sold", Decimal("30.00"), Decimal("10.00"), Decimal("20.00")),
        ("b-c", "sold", Decimal("20.00"), Decimal("10.00"), Decimal("10.00")),
        ("c-c", "sold", Decimal("12.50"), Decimal("10.00"), Decimal("2.50")),
    ]
    assert balance("seller", "seller_payable") == Decimal("30.00")
    assert balance(None, "platform_revenue") == Decimal("32.50")
    ledger_is_consistent(settled=True)


def test_a_direct_route_sale_pays_the_fixed_payout():
    load(
        buyer("direct", "5.00"),
        campaign={**FIXED, "direct_route": {"contract": "direct-c", "price": "14.00"}},
    )
    answer = client().post("/api/v1/leads", lead_body(1), format="json").json()
    assert (answer["status"], answer["payout"]) == ("sold", "10.00")
    assert sales() == [("direct-c", "sold", Decimal("14.00"), Decimal("10.00"), Decimal("4.00"))]


def test_a_returned_fixed_payout_sale_is_refunded_exactly():
    load(buyer("acme", "30.00", return_window_hours=72), campaign=FIXED)
    sell(1)
    with market_scope():
        sale = Sale.objects.get()
    ret = return_request(buyer=org("acme"), sale_public_id=sale.public_id, reason="bad_phone")
    return_decide(ret=ret, approve=True, user=None)
    assert balance("acme") == Decimal("1000.00")
    assert balance("seller", "seller_payable") == Decimal("0.00")
    assert balance(None, "platform_revenue") == Decimal("0.00")
    ledger_is_consistent(settled=True)


def test_turning_a_fixed_payout_off_returns_to_the_margin_share():
    load(buyer("acme", "30.00"), campaign=FIXED)
    with market_scope():
        campaign_update(campaign=Campaign.objects.get(slug="seller-auto"), terms={"payout_fixed": None})
    book_invalidate()
    assert sell(1)["payout"] == "24.00"


@pytest.mark.parametrize(
    ("terms", "field", "message"),
    [
        ({"payout_fixed": "0.00"}, "payout_fixed", "Ensure this value is greater than or equal to 0.01."),
        ({"payout_fixed": "ten"}, "payout_fixed", "A valid number is required."),
        (
            {"payout_fixed": "9000.00"},
            "payout_fixed",
            "Needs bids of at least 11250.00 (the payout and a 20.00% margin), above the offer's max bid of 10000.00.",
        ),
        ({"payout_fixed": "1.00", "margin_percent": "100"}, "payout_fixed", "With a 100 % margin no price pays"),
        (
            {"payout_fixed": "10.00", "direct_route": {"contract": "acme-c", "price": "12.00"}},
            "direct_route.price",
            "Below 12.50, the least price that pays the fixed payout of 10.00 and a 20.00% margin.",
        ),
    ],
)
def test_a_fixed_payout_no_bid_can_pay_is_refused_by_field_and_nothing_changes(terms, field, message):
    load(buyer("acme", "30.00"))
    with market_scope():
        campaign = Campaign.objects.get(slug="seller-auto")
        with pytest.raises(ValidationError) as refused:
            campaign_update(campaign=campaign, terms=terms)
        assert any(m.startswith(message) for m in refused.value.message_dict[field]), refused.value.message_dict
        campaign.refresh_from_db()
    assert (campaign.payout_fixed, campaign.margin_percent, campaign.direct_contract_id) == (None, None, None)
