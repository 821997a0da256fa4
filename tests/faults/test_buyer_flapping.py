"""A buyer endpoint flapping: a local RTB buyer that alternates bids, failures and timeouts while
leads keep coming. Every accepted ping's post ends sold, the circuit breaker holds the buyer after
N failures in a row and lets it back once it answers again, and the books balance."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from demo.buyers import Behaviour
from exchange.auction.book import book_invalidate
from exchange.models import Ping, Sale
from leads.models import Lead
from tests.exchange.builder import buyer, load, ping, post
from tests.ledger import balance, ledger_is_consistent

pytestmark = pytest.mark.django_db

BID = Behaviour(bid="30.00")
FAIL = Behaviour(failure_rate=1.0)
SLOW = Behaviour(bid="30.00", latency_ms=1500)  # past the contract's 500 ms: a timeout

# What the flapping buyer does on each ping, and what the auction must make of it. Three failures
# in a row hold it (GAVEL_RTB_BREAKER_FAILURES = 3); a bid between failures resets the count.
SCRIPT = [
    (BID, "flappy"),
    (FAIL, "steady"),
    (SLOW, "steady"),
    (BID, "flappy"),  # resets the count: two failures did not trip it
    (FAIL, "steady"),
    (SLOW, "steady"),
    (FAIL, "steady"),  # the third in a row: held
    (BID, "steady"),  # held: not asked, though it would bid
    (BID, "steady"),
]


def flappy() -> BuyerContract:
    with market_scope():
        return BuyerContract.objects.get(slug="flappy-c")


def step(ping_id: str) -> dict:
    with market_scope():
        return {s["contract"]: s for s in Ping.objects.get(public_id=ping_id).waterfall}["ctr_flappy"]


def winner(lead_id: str) -> str:
    with market_scope():
        return Sale.objects.get(lead__public_id=lead_id).contract.organization.slug


def test_a_flapping_buyer_is_held_after_three_failures_resumed_when_healthy_and_every_post_sells(buyers, settings):
    settings.GAVEL_RTB_BREAKER_FAILURES = 3
    buyers.behaviours["flappy"] = BID
    load(
        buyer("flappy", None, rtb_url=buyers.url("flappy"), rtb_timeout_ms=500),
        buyer("steady", "10.00"),
        ping_timeout_ms=3000,
    )
    outcomes = []
    for n, (behaviour, expected) in enumerate(SCRIPT):
        buyers.behaviours["flappy"] = behaviour
        answer = ping(n)
        assert answer["status"] == "accepted", answer
        posted = post(answer["ping_id"], n)
        outcomes.append((posted["status"], winner(posted["lead_id"]), step(answer["ping_id"])["reason"]))
        assert (posted["status"], winner(posted["lead_id"])) == ("sold", expected), (n, outcomes)
    reasons = [reason for _, _, reason in outcomes]
    assert reasons[1:3] == ["rtb_error", "rtb_timeout"]
    assert reasons[4:7] == ["rtb_error", "rtb_timeout", "rtb_error"]
    assert reasons[7:] == ["paused", "paused"]
    assert len(buyers.requests("flappy")) == 7  # never asked while held
    held = flappy()
    assert (held.hold, held.breaker_trips) == ("breaker", 1)

    # The cool-down passes and the buyer answers again: one retry, it bids, the hold is lifted.
    with market_scope():
        BuyerContract.objects.filter(slug="flappy-c").update(breaker_retry_at=timezone.now() - timedelta(seconds=1))
    book_invalidate()
    buyers.behaviours["flappy"] = BID
    for n in (100, 101):
        answer = ping(n)
        posted = post(answer["ping_id"], n)
        assert (posted["status"], winner(posted["lead_id"])) == ("sold", "flappy")
        assert flappy().hold is None
    assert len(buyers.requests("flappy")) == 9

    with market_scope():
        assert set(Lead.objects.values_list("status", flat=True)) == {"sold"}
        sales = Sale.objects.filter(status="sold")
        assert sales.count() == len(SCRIPT) + 2
        spent = {
            slug: sales.filter(contract__organization__slug=slug).aggregate(s=Sum("price"))["s"] or Decimal("0.00")
            for slug in ("flappy", "steady")
        }
    assert balance("flappy") == Decimal("1000.00") - spent["flappy"]
    assert balance("steady") == Decimal("1000.00") - spent["steady"]
    ledger_is_consistent(settled=True)
