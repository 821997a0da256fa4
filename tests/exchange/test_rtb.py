"""Real-time bidding against real local HTTP buyers: bids, passes, timeouts, bad answers, breaker."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from accounts.models import Organization
from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from exchange.buyersim import Behaviour
from exchange.models import Bid, Ping
from tests.exchange.builder import buyer, client, load, ping, ping_body, post

pytestmark = pytest.mark.django_db


def rtb_buyer(buyers, slug: str, behaviour: Behaviour, **contract) -> dict:
    buyers.behaviours[slug] = behaviour
    return buyer(slug, None, rtb_url=buyers.url(slug), **contract)


def steps(ping_id: str) -> dict[str, dict]:
    with market_scope():
        return {s["contract"]: s for s in Ping.objects.get(public_id=ping_id).waterfall}


def test_an_rtb_buyer_prices_the_lead_and_wins(buyers):
    load(rtb_buyer(buyers, "rtb", Behaviour(bid="23.50")), buyer("fixed", "20.00"))
    answer = ping(1)
    assert answer["payout"] == "18.80"
    waterfall = steps(answer["ping_id"])
    assert waterfall["ctr_rtb"]["reason"] == "won" and waterfall["ctr_rtb"]["price"] == "23.50"
    assert waterfall["ctr_rtb"]["latency_ms"] > 0
    with market_scope():
        assert Bid.objects.get(contract__public_id="ctr_rtb").ref == f"rtb-{answer['ping_id']}"
    request = buyers.requests("rtb", "rtb")[0].json()
    assert request == {
        "ping_id": answer["ping_id"],
        "offer": "auto",
        "contract": "ctr_rtb",
        "lead": {"state": "CA", "zip": "94107", "age": 34},
        "quality_score": request["quality_score"],
        "source": request["source"],
        "tmax_ms": request["tmax_ms"],
        "test": False,
    }
    assert request["source"].startswith("src_") and 0 < request["tmax_ms"] <= 300
    assert post(answer["ping_id"], 1)["payout"] == "18.80"


def test_the_request_is_signed_with_the_buyers_secret(buyers):
    load(rtb_buyer(buyers, "rtb", Behaviour(bid="23.50")))
    ping(1)
    received = buyers.requests("rtb")[0]
    secret = Organization.objects.get(slug="rtb").signing_secret
    headers = {k.lower(): v for k, v in received.headers.items()}
    assert Webhook(secret).verify(received.body, headers) is not None
    tampered = received.body.replace(b"94107", b"94108")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (Behaviour(bid=None), "rtb_no_bid"),
        (Behaviour(answer={"bid": None}), "rtb_no_bid"),
        (Behaviour(failure_rate=1.0), "rtb_error"),
        (Behaviour(answer="not json"), "rtb_invalid"),
        (Behaviour(answer={"bid": "-1.00"}), "rtb_invalid"),
        (Behaviour(answer={"bid": "lots"}), "rtb_invalid"),
        (Behaviour(answer={"price": "10.00"}), "rtb_invalid"),
        (Behaviour(answer=[1, 2]), "rtb_invalid"),
    ],
)
def test_passes_and_bad_answers_are_passes_with_their_reason(buyers, behaviour, reason):
    load(rtb_buyer(buyers, "rtb", behaviour), buyer("fixed", "20.00"))
    answer = ping(1)
    assert steps(answer["ping_id"])["ctr_rtb"]["reason"] == reason
    assert steps(answer["ping_id"])["ctr_fixed"]["reason"] == "won"


def test_a_bid_over_max_price_is_cut_to_it(buyers):
    load(rtb_buyer(buyers, "rtb", Behaviour(bid="99.00"), max_price="40.00"))
    answer = ping(1)
    assert steps(answer["ping_id"])["ctr_rtb"]["price"] == "40.00"
    assert answer["payout"] == "32.00"


def test_a_slow_buyer_never_delays_the_answer_past_the_deadline(buyers):
    load(
        rtb_buyer(buyers, "slow", Behaviour(bid="90.00", latency_ms=2000), rtb_timeout_ms=1500),
        rtb_buyer(buyers, "quick", Behaviour(bid="25.00", latency_ms=20)),
        ping_timeout_ms=250,
    )
    started = time.perf_counter()
    answer = ping(1)
    elapsed_ms = (time.perf_counter() - started) * 1000
    waterfall = steps(answer["ping_id"])
    assert waterfall["ctr_slow"]["reason"] == "rtb_timeout"
    assert waterfall["ctr_quick"]["reason"] == "won"
    assert elapsed_ms < 250 + 150, elapsed_ms


def test_buyers_are_called_in_parallel(buyers):
    load(
        *[rtb_buyer(buyers, f"b{n}", Behaviour(bid=f"{20 + n}.00", latency_ms=150)) for n in range(6)],
        ping_timeout_ms=1000,
    )
    ping(0)  # warm the connection pool and the book
    started = time.perf_counter()
    answer = ping(1)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert elapsed_ms < 150 * 2, elapsed_ms  # sequentially this would take 900 ms
    assert steps(answer["ping_id"])["ctr_b5"]["reason"] == "won"


def test_a_buyer_that_cannot_pay_is_not_asked(buyers):
    load(rtb_buyer(buyers, "poor", Behaviour(bid="30.00"), balance="0.00"), buyer("fixed", "10.00"))
    answer = ping(1)
    assert steps(answer["ping_id"])["ctr_poor"]["reason"] == "insufficient_balance"
    assert buyers.requests("poor") == []


def test_test_pings_tell_buyers(buyers):
    load(rtb_buyer(buyers, "rtb", Behaviour(bid="23.50")))
    body = ping_body(1)
    body["test"] = True
    assert client().post("/api/v1/ping", body, format="json").json()["test"] is True
    assert buyers.requests("rtb")[0].json()["test"] is True


def test_the_circuit_breaker_pauses_a_failing_buyer_and_tells_it(buyers, settings):
    from exchange.webhooks import Event

    settings.GAVEL_RTB_BREAKER_FAILURES = 3
    load(rtb_buyer(buyers, "flaky", Behaviour(failure_rate=1.0)), buyer("fixed", "10.00"))
    for n in range(2):
        ping(n)
    with market_scope():
        assert BuyerContract.objects.get(slug="flaky-c").status == "active"
    ping(2)
    with market_scope():
        contract = BuyerContract.objects.get(slug="flaky-c")
        assert contract.status == "paused"
        assert "3 RTB failures in a row" in contract.paused_reason
        event = Event.objects.get(type="contract.paused")
    assert event.organization.slug == "flaky" and event.data["contract"] == "ctr_flaky"
    answer = ping(3)
    assert steps(answer["ping_id"])["ctr_flaky"]["reason"] == "paused"
    assert len(buyers.requests("flaky")) == 3


def test_a_success_resets_the_breaker(buyers, settings):
    settings.GAVEL_RTB_BREAKER_FAILURES = 2
    load(rtb_buyer(buyers, "flaky", Behaviour(failure_rate=1.0)))
    ping(0)
    buyers.behaviours["flaky"] = Behaviour(bid="10.00")
    ping(1)
    buyers.behaviours["flaky"] = Behaviour(failure_rate=1.0)
    ping(2)
    with market_scope():
        assert BuyerContract.objects.get(slug="flaky-c").status == "active"


def test_rtb_bids_respect_budget_and_floor(buyers):
    load(rtb_buyer(buyers, "rtb", Behaviour(bid="0.50")), floor="1.00")
    answer = ping(1)
    assert steps(answer["ping_id"])["ctr_rtb"]["reason"] == "below_floor"
    assert answer["status"] == "rejected"
    assert Decimal(steps(answer["ping_id"])["ctr_rtb"]["price"]) == Decimal("0.50")


def test_a_failure_counted_while_another_ping_resets_the_count_never_raises(monkeypatch):
    from django.core.cache import cache

    from exchange.auction import breaker

    calls = {"n": 0}
    real_incr = cache.incr

    def racing_incr(key, delta=1):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("gone")  # the key vanished between a reset and this failure
        return real_incr(key, delta)

    monkeypatch.setattr(cache, "incr", racing_incr)
    assert breaker._count_failure("gavel:rtb-failures:test") == 1
    assert breaker._count_failure("gavel:rtb-failures:test") == 2
