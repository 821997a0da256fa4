"""Unsold leads re-run: a posted or full lead nobody bought — no bid at all, or every buyer turned
it down — goes through the offer's re-auction cycles (each a new auction, priced afresh, the
buyers that turned it down left out) before it is unsold; the seller sees the cycles and hears
the end."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from exchange.auction.book import book_invalidate
from exchange.market import MarketError, market_load
from exchange.models import Ping, Sale
from exchange.services import lead_reauction_run
from leads.models import Lead
from tests.exchange.builder import buyer, client, events, lead_body, load, market, ping, post
from tests.exchange.receiver import Receiver
from tests.sessions import member

pytestmark = pytest.mark.django_db

TX_ONLY = {"field": "state", "op": "eq", "value": "TX"}


def full(n: int = 1, **lead) -> dict:
    response = client().post("/api/v1/leads", lead_body(n, **lead), format="json")
    assert response.status_code == 200, response.content
    return response.json()


def detail(lead_id: str) -> dict:
    return client().get(f"/api/v1/leads/{lead_id}").json()


def pk_of(lead_id: str) -> int:
    with market_scope():
        return Lead.objects.get(public_id=lead_id).pk


def open_up(slug: str) -> None:
    """The buyer widens its filters (it will now take California)."""
    with market_scope():
        BuyerContract.objects.filter(slug=slug).update(filters={})
    book_invalidate()


def test_a_full_lead_with_no_bid_is_pending_until_a_cycle_sells_it():
    load(buyer("tex", "30.00", filters=TX_ONLY), reauction_delay_seconds=90)
    before = timezone.now()
    answer = full(1)

    # No bid now: pending, with the next cycle's time, and no event yet.
    assert (answer["status"], answer["reason"], answer["payout"]) == ("pending", None, "0.00")
    assert (answer["reauction"]["cycle"], answer["reauction"]["cycles"]) == (0, 2)
    next_at = datetime.fromisoformat(answer["reauction"]["next_at"])
    assert before + timedelta(seconds=90) <= next_at <= timezone.now() + timedelta(seconds=90)
    assert events("lead.sold") == events("lead.unsold") == []

    open_up("tex-c")  # a contract that bids now (prices afresh, filters read anew)
    assert lead_reauction_run(lead_id=pk_of(answer["lead_id"]), cycle=1) == "sold"

    shown = detail(answer["lead_id"])
    assert (shown["status"], shown["payout"], shown["reauction"]) == (
        "sold",
        "24.00",
        {"cycle": 1, "cycles": 2, "next_at": None},
    )
    assert [(a["cycle"], a["status"], a["reason"], a["bids"]) for a in shown["auctions"]] == [
        (0, "rejected", "no_buyers", 0),
        (1, "accepted", None, 1),
    ]
    assert shown["auctions"][0]["ping_id"] == answer["ping_id"]
    (sold,) = events("lead.sold")
    assert (sold["lead_id"], sold["payout"], sold["reauction_cycles"]) == (answer["lead_id"], "24.00", 1)


def test_a_lead_no_cycle_sells_is_unsold_after_the_last_one_with_one_event():
    load(buyer("tex", "30.00", filters=TX_ONLY), reauction_cycles=2)
    answer = full(1)
    pk = pk_of(answer["lead_id"])
    assert lead_reauction_run(lead_id=pk, cycle=1) == "pending"
    assert detail(answer["lead_id"])["reauction"]["cycle"] == 1
    assert lead_reauction_run(lead_id=pk, cycle=2) == "unsold"
    assert lead_reauction_run(lead_id=pk, cycle=2) == "skipped"  # a task delivered twice

    shown = detail(answer["lead_id"])
    assert (shown["status"], shown["reason"], shown["reauction"]["next_at"]) == ("unsold", "no_buyers", None)
    assert [a["cycle"] for a in shown["auctions"]] == [0, 1, 2]
    (unsold,) = events("lead.unsold")
    assert (unsold["lead_id"], unsold["reason"], unsold["reauction_cycles"]) == (answer["lead_id"], "no_buyers", 2)
    with market_scope():
        assert Ping.objects.filter(source="reauction").count() == 2


def test_a_posted_lead_whose_buyer_rejected_it_is_re_run_without_that_buyer():
    picky = Receiver().start()
    try:
        picky.answer(409, 409)
        delivery = {"method": "webhook", "url": picky.url, "timeout_ms": 1000}
        load(
            buyer(
                "picky",
                contracts=[
                    {"slug": "p1", "id": "ctr_p1", "offer": "auto", "price": "30.00", "delivery": delivery},
                    {"slug": "p2", "id": "ctr_p2", "offer": "auto", "price": "29.00", "delivery": delivery},
                ],
            ),
            buyer("later", "20.00", status="paused"),
        )
        answer = post(ping(1)["ping_id"], 1)
        assert answer["status"] == "pending"  # p1 then p2 turned it down; no one else bid
        with market_scope():
            BuyerContract.objects.filter(slug="later-c").update(status="active")
        book_invalidate()

        assert lead_reauction_run(lead_id=pk_of(answer["lead_id"]), cycle=1) == "sold"
    finally:
        picky.stop()

    assert len(picky.requests) == 2  # never asked again, by either contract
    with market_scope():
        reauction = Ping.objects.get(source="reauction")
        sold = Sale.objects.get(status="sold")
    reasons = {step["contract"]: step["reason"] for step in reauction.waterfall}
    assert reasons == {"ctr_p1": "rejected_before", "ctr_p2": "rejected_before", "ctr_later": "won"}
    assert (sold.contract.public_id, f"{sold.price}") == ("ctr_later", "20.00")


def test_a_lead_that_cannot_sell_in_any_cycle_is_unsold_at_once():
    load(buyer("a", "30.00"), campaign={"status": "paused"})
    answer = full(1)
    assert (answer["status"], answer["reason"], answer["reauction"]["next_at"]) == ("unsold", "campaign_paused", None)
    (unsold,) = events("lead.unsold")
    assert unsold["reason"] == "campaign_paused"


def test_an_offer_without_cycles_answers_unsold_at_once():
    load(buyer("tex", "30.00", filters=TX_ONLY), reauction_cycles=0)
    answer = full(1)
    assert (answer["status"], answer["reason"], answer["reauction"]) == (
        "unsold",
        "no_buyers",
        {"cycle": 0, "cycles": 0, "next_at": None},
    )


def test_the_delay_is_in_the_market_file_and_checked():
    data = market(buyer("a", "30.00"))
    data["offers"][0]["reauction_delay_seconds"] = 0
    with pytest.raises(MarketError) as raised:
        market_load(data)
    assert raised.value.path.endswith("reauction_delay_seconds")
    data["offers"][0]["reauction_delay_seconds"] = 300
    market_load(data)
    from exchange.models import Offer

    assert Offer.objects.get(slug="auto").reauction_delay_seconds == 300


def test_the_seller_sees_the_cycles_on_the_lead_page():
    load(buyer("tex", "30.00", filters=TX_ONLY))
    answer = full(1)
    page = member("s@seller.test", "seller", "manager").get(f"/portal/leads/{answer['lead_id']}/").content.decode()
    assert "No buyer yet: re-auction 1 of 2 runs at about" in page
    assert "First auction" in page and "No buyer bid on it" in page

    open_up("tex-c")
    lead_reauction_run(lead_id=pk_of(answer["lead_id"]), cycle=1)
    page = member("s@seller.test", "seller", "manager").get(f"/portal/leads/{answer['lead_id']}/").content.decode()
    assert "Re-auction 1" in page and "Bids received" in page
    assert "No buyer yet" not in page
