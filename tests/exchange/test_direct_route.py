"""The direct route in both modes: drawn first on the ping id, checked like any bid (filters,
schedule, caps, budget, balance, dedup), the single bid a ping gets when it can take the lead,
falling back to the auction when it cannot — and the waterfall says which happened."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from accounts.tenancy import market_scope
from exchange.auction.book import book_current
from exchange.auction.engine import DirectRoute, direct_route_draw
from exchange.models import Bid, Ping, Sale
from tests.exchange.builder import buyer, client, lead_body, load, ping, post
from tests.exchange.receiver import Receiver
from tests.ledger import balance, ledger_is_consistent

pytestmark = pytest.mark.django_db

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ROUTE = {"direct_route": {"contract": "d-c", "price": "12.50", "share_percent": 100}}


def waterfall(ping_id: str) -> list[tuple[str | None, str, str]]:
    """(step, contract, reason) of a ping's waterfall, in order (contract None: the contracts the
    offer's index left out, counted)."""
    with market_scope():
        steps = Ping.objects.get(public_id=ping_id).waterfall
    return [(s.get("step"), s.get("contract"), s["reason"]) for s in steps]


def full(n: int = 1, **lead) -> dict:
    response = client().post("/api/v1/leads", lead_body(n, **lead), format="json")
    assert response.status_code == 200, response.content
    return response.json()


def sales() -> list[tuple[str, str, str, bool]]:
    with market_scope():
        return [
            (s.contract.public_id, s.status, f"{s.price:.2f}", s.direct)
            for s in Sale.objects.select_related("contract").order_by("pk")
        ]


def test_the_draw_is_a_stable_hash_of_the_ping_id_against_the_share():
    load(
        buyer("a", "30.00"),
        buyer("d", "5.00"),
        campaign={"direct_route": {**ROUTE["direct_route"], "share_percent": 40}},
    )
    campaign = book_current().campaigns["cmp_seller"][0]
    drawn = {}
    for n in range(200):
        seed = f"png_{n:020d}"
        expected = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") % 100 < 40
        route = direct_route_draw(campaign, seed)
        assert (route is not None) == expected
        assert direct_route_draw(campaign, seed) == route  # the same ping always draws the same
        drawn[seed] = route
    hits = sum(r is not None for r in drawn.values())
    assert 50 < hits < 110  # about 40 % of 200
    assert {r for r in drawn.values() if r is not None} == {DirectRoute(campaign.direct_contract_id, Decimal("12.50"))}


def test_in_ping_post_the_direct_contract_is_the_single_bid_and_the_sale_is_direct():
    load(buyer("a", "30.00"), buyer("d", "5.00"), campaign=ROUTE)
    answer = ping(1)
    assert (answer["status"], answer["payout"], len(answer["bids"])) == ("accepted", "10.00", 1)
    assert waterfall(answer["ping_id"]) == [("direct", "ctr_d", "won")]  # no auction ran
    with market_scope():
        (bid,) = Bid.objects.filter(ping__public_id=answer["ping_id"])
    assert (bid.contract.public_id, bid.price, bid.status) == ("ctr_d", Decimal("12.50"), "won")

    sold = post(answer["ping_id"], 1)
    assert (sold["status"], sold["payout"]) == ("sold", "10.00")
    assert sales() == [("ctr_d", "sold", "12.50", True)]
    assert balance("d") == Decimal("987.50")
    ledger_is_consistent(settled=True)


def test_a_full_lead_the_direct_route_sells_runs_no_auction():
    load(buyer("a", "30.00"), buyer("d", "5.00"), campaign=ROUTE)
    body = full(1)
    assert (body["status"], body["payout"]) == ("sold", "10.00")
    assert waterfall(body["ping_id"]) == [("direct", "ctr_d", "won")]
    assert sales() == [("ctr_d", "sold", "12.50", True)]
    assert detail_direct(body["lead_id"]) == "won"


def detail_direct(lead_id: str) -> str | None:
    return client().get(f"/api/v1/leads/{lead_id}").json()["auctions"][0]["direct"]


@pytest.mark.parametrize(
    ("contract", "reason"),
    [
        ({"filters": {"field": "state", "op": "eq", "value": "TX"}}, "filtered:state"),
        ({"schedule": "closed today"}, "schedule_closed"),
        ({"status": "paused"}, "paused"),
        ({"balance": "10.00"}, "insufficient_balance"),
        ({"budget": {"day": "10.00"}}, "budget_reached"),
    ],
)
def test_a_direct_contract_that_cannot_take_the_lead_falls_back_to_the_auction(contract, reason):
    extra = {k: v for k, v in contract.items() if k != "balance"}
    if extra.get("schedule") == "closed today":
        # Open on five days, neither today nor tomorrow (UTC, the buyer's zone): closed now, even
        # if the test runs across midnight.
        today = datetime.now(UTC).weekday()
        extra["schedule"] = {"days": [DAYS[d] for d in range(7) if d not in (today, (today + 1) % 7)]}
    load(buyer("a", "30.00"), buyer("d", "5.00", balance=contract.get("balance", "1000.00"), **extra), campaign=ROUTE)
    for mode in ("ping", "lead"):
        if mode == "ping":
            answer = ping(1)
            ping_id, payout = answer["ping_id"], answer["payout"]
        else:
            body = full(2)
            ping_id, payout = body["ping_id"], body["payout"]
        steps = waterfall(ping_id)
        assert payout == "24.00"  # a, in the auction
        assert steps[0][:2] == ("direct", "ctr_d")
        assert steps[0][2] == reason
        assert ("", "ctr_a", "won") in [(s or "", c, r) for s, c, r in steps[1:]]


def test_the_direct_route_respects_caps_and_dedup_like_any_bid():
    load(buyer("a", "30.00"), buyer("d", "5.00", caps={"day": 1}, dedup_days=30), campaign=ROUTE)
    first = full(1)
    assert waterfall(first["ping_id"]) == [("direct", "ctr_d", "won")]
    capped = full(2)
    assert waterfall(capped["ping_id"])[0] == ("direct", "ctr_d", "cap_reached:day")
    assert capped["payout"] == "24.00"
    # d already bought consumer 1 (its cap aside): the direct route steps aside as a duplicate.
    load(buyer("a", "30.00"), buyer("d", "5.00", caps={"day": 10}, dedup_days=30), campaign=ROUTE)
    again = ping(1)
    assert waterfall(again["ping_id"])[0] == ("direct", "ctr_d", "duplicate")


def test_a_direct_buyer_that_rejects_at_the_post_hands_the_lead_to_the_skipped_auction():
    hook = Receiver().start()
    try:
        hook.answer(422)
        delivery = {"method": "webhook", "url": hook.url, "timeout_ms": 1000}
        load(buyer("a", "30.00"), buyer("b", "20.00"), buyer("d", "5.00", delivery=delivery), campaign=ROUTE)
        answer = ping(1)
        assert waterfall(answer["ping_id"]) == [("direct", "ctr_d", "won")]
        sold = post(answer["ping_id"], 1)
    finally:
        hook.stop()

    assert (sold["status"], sold["payout"]) == ("sold", "24.00")
    assert sales() == [("ctr_d", "released", "12.50", True), ("ctr_a", "sold", "30.00", False)]
    steps = waterfall(answer["ping_id"])
    assert steps[0] == ("direct", "ctr_d", "post_rejected")
    assert {c: r for s, c, r in steps[1:]} == {"ctr_a": "won", "ctr_b": "outbid", "ctr_d": "post_rejected"}
    with market_scope():
        assert Bid.objects.filter(ping__public_id=answer["ping_id"]).count() == 3  # direct + a + b
    assert (balance("d"), balance("a")) == (Decimal("1000.00"), Decimal("970.00"))
    ledger_is_consistent(settled=True)


def test_a_plain_ping_without_a_direct_route_is_unchanged():
    load(buyer("a", "30.00"), buyer("d", "5.00"))
    answer = ping(1)
    assert all(step is None for step, _, _ in waterfall(answer["ping_id"]))
