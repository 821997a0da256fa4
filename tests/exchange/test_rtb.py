"""Real-time bidding against real local HTTP buyers: bids, passes, timeouts, bad answers, breaker."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connections
from django.test import Client
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from accounts.models import Organization
from accounts.services import membership_set, user_upsert
from accounts.tenancy import market_scope
from contracts import services as contract_services
from contracts.api import views as contract_views
from contracts.models import BuyerContract
from contracts.services import contract_breaker_resume, contract_hold
from demo.buyers import Behaviour
from exchange.auction.book import book_invalidate
from exchange.auction.breaker import breaker_cooldown
from exchange.models import Bid, Offer, Ping
from exchange.webhooks import Event
from tests.exchange.builder import BUYER_KEY_PREFIX, buyer, client, events, load, ping, ping_body, post, run_at_once

pytestmark = pytest.mark.django_db


def rtb_buyer(buyers, slug: str, behaviour: Behaviour, **contract) -> dict:
    buyers.behaviours[slug] = behaviour
    return buyer(slug, None, rtb_url=buyers.url(slug), **contract)


def steps(ping_id: str) -> dict[str, dict]:
    with market_scope():
        return {s["contract"]: s for s in Ping.objects.get(public_id=ping_id).waterfall}


def created_at(answer: dict) -> datetime:
    """The ping's instant: the one the breaker counts its cool-down from."""
    with market_scope():
        return Ping.objects.get(public_id=answer["ping_id"]).created_at


def flaky_contract() -> BuyerContract:
    with market_scope():
        return BuyerContract.objects.get(slug="flaky-c")


def tripped(buyers, settings, behaviour: Behaviour | None = None, **contract) -> dict:
    """A market whose RTB buyer "flaky" failed once and was paused (one failure trips the breaker
    here); the fixed buyer takes the leads meanwhile. The flaky buyer then behaves as given.

    The ping's deadline and the buyer's timeout are generous: these tests are of the breaker's
    verdicts, and on a busy machine a ping late to call the buyer would have its timeout cut short,
    which is no verdict (the tests of that set their own deadline)."""
    settings.GAVEL_RTB_BREAKER_FAILURES = 1
    contract.setdefault("rtb_timeout_ms", 3000)
    load(
        rtb_buyer(buyers, "flaky", Behaviour(failure_rate=1.0), **contract),
        buyer("fixed", "10.00"),
        ping_timeout_ms=5000,
    )
    answer = ping(0)
    assert steps(answer["ping_id"])["ctr_flaky"]["reason"] == "rtb_error"
    assert flaky_contract().hold == "breaker"
    buyers.behaviours["flaky"] = behaviour or Behaviour(failure_rate=1.0)
    return answer


def retry_due() -> None:
    """The cool-down of the paused contract has passed."""
    with market_scope():
        BuyerContract.objects.filter(slug="flaky-c").update(breaker_retry_at=timezone.now() - timedelta(seconds=1))
    book_invalidate()


def patch_contract(values: dict) -> dict:
    buyer_client = client(f"{BUYER_KEY_PREFIX}flaky_000000")
    response = buyer_client.patch("/api/v1/contracts/ctr_flaky", values, format="json")
    assert response.status_code == 200, response.content
    return response.json()


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
        (Behaviour(answer={"bid": "1e40"}), "rtb_invalid"),  # too large to be money at all
        (Behaviour(answer={"bid": 1e300}), "rtb_invalid"),
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


@pytest.mark.parametrize(("max_price", "cut_to"), [(None, "50.00"), ("40.00", "40.00")])
def test_a_bid_over_the_offers_max_bid_is_cut_to_it_or_to_a_lower_max_price(buyers, max_price, cut_to):
    load(rtb_buyer(buyers, "rtb", Behaviour(bid="20000.00"), max_price=max_price), max_bid="50.00")
    answer = ping(1)
    assert (steps(answer["ping_id"])["ctr_rtb"]["reason"], steps(answer["ping_id"])["ctr_rtb"]["price"]) == (
        "won",
        cut_to,
    )


def test_a_max_price_stored_above_the_max_bid_does_not_lift_the_cut(buyers):
    load(rtb_buyer(buyers, "rtb", Behaviour(bid="99.00"), max_price="40.00"), max_bid="50.00")
    with market_scope():
        BuyerContract.objects.filter(slug="rtb-c").update(max_price=Decimal("5000.00"))
    book_invalidate()
    answer = ping(1)
    assert steps(answer["ping_id"])["ctr_rtb"]["price"] == "50.00"


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

    settings.GAVEL_RTB_BREAKER_FAILURES = 3
    load(rtb_buyer(buyers, "flaky", Behaviour(failure_rate=1.0)), buyer("fixed", "10.00"))
    for n in range(2):
        ping(n)
    with market_scope():
        assert BuyerContract.objects.get(slug="flaky-c").hold is None
    third = ping(2)
    with market_scope():
        contract = BuyerContract.objects.get(slug="flaky-c")
        assert (contract.status, contract.hold) == ("active", "breaker")  # the buyer's status is its own
        assert contract.hold_reason == "Circuit breaker: 3 RTB failures in a row (last: rtb_error)"
        assert contract.breaker_trips == 1
        assert contract.breaker_retry_at == created_at(third) + timedelta(seconds=60)
        event = Event.objects.get(type="contract.paused")
    assert event.organization.slug == "flaky"
    assert event.data == {
        "contract": "ctr_flaky",
        "name": "flaky-c",
        "offer": "auto",
        "reason": "Circuit breaker: 3 RTB failures in a row (last: rtb_error)",
    }
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
        assert BuyerContract.objects.get(slug="flaky-c").hold is None


def test_every_healthy_answer_resets_its_count_after_the_answer(buyers, settings, monkeypatch):
    from exchange.auction import breaker

    settings.GAVEL_RTB_BREAKER_FAILURES = 2
    load(rtb_buyer(buyers, "flaky", Behaviour(bid="10.00")))
    key = f"gavel:rtb-failures:{flaky_contract().pk}"
    resets: list[list[str]] = []
    reset = breaker._counts_reset

    def spy(keys: list[str]) -> None:
        resets.append(list(keys))
        reset(keys)

    monkeypatch.setattr(breaker, "_counts_reset", spy)
    ping(0)
    assert resets == [[key]]
    assert breaker._count_failure(key) == 1  # another process counts a failure of this buyer
    ping(1)
    assert resets == [[key], [key]]
    assert cache.get(key) is None
    buyers.behaviours["flaky"] = Behaviour(failure_rate=1.0)
    ping(2)
    assert flaky_contract().hold is None  # one failure since the reset, not two


def test_timeouts_within_the_buyers_own_timeout_count_toward_the_breaker(buyers, settings):
    settings.GAVEL_RTB_BREAKER_FAILURES = 2
    load(
        rtb_buyer(buyers, "flaky", Behaviour(bid="30.00", latency_ms=400), rtb_timeout_ms=100), buyer("fixed", "10.00")
    )
    for n in range(2):
        assert steps(ping(n)["ping_id"])["ctr_flaky"]["reason"] == "rtb_timeout"
    assert flaky_contract().hold == "breaker"


def test_a_timeout_the_exchange_cut_short_says_nothing_of_the_buyer(buyers, settings):
    """The ping's deadline (250 ms) leaves the buyer less than its own 1500 ms: the exchange was the
    short one, so the timeouts neither pause the contract nor clear a count of real failures."""
    settings.GAVEL_RTB_BREAKER_FAILURES = 2
    load(
        rtb_buyer(buyers, "flaky", Behaviour(failure_rate=1.0), rtb_timeout_ms=1500),
        buyer("fixed", "10.00"),
        ping_timeout_ms=250,
    )
    assert steps(ping(0)["ping_id"])["ctr_flaky"]["reason"] == "rtb_error"  # one real failure
    buyers.behaviours["flaky"] = Behaviour(bid="30.00", latency_ms=1000)
    for n in range(1, 4):
        assert steps(ping(n)["ping_id"])["ctr_flaky"]["reason"] == "rtb_timeout"
    assert flaky_contract().hold is None
    buyers.behaviours["flaky"] = Behaviour(failure_rate=1.0)
    ping(4)  # the second real failure in a row: the cut timeouts in between did not reset the count
    assert flaky_contract().hold == "breaker"


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


# --- half-open: a paused contract is asked again after its cool-down ---------------------------


def test_before_its_retry_time_a_tripped_contract_is_paused_and_not_asked(buyers, settings):
    first = tripped(buyers, settings, Behaviour(bid="25.00"))
    assert flaky_contract().breaker_retry_at == created_at(first) + timedelta(seconds=60)

    answer = ping(1)

    assert steps(answer["ping_id"])["ctr_flaky"]["reason"] == "paused"
    assert steps(answer["ping_id"])["ctr_fixed"]["reason"] == "won"
    assert len(buyers.requests("flaky")) == 1
    contract = flaky_contract()
    assert (contract.status, contract.hold, contract.breaker_trips) == ("active", "breaker", 1)
    assert events("contract.resumed") == []


@pytest.mark.parametrize(
    ("behaviour", "reason", "answered"),
    [(Behaviour(bid="25.00"), "won", "a bid"), (Behaviour(bid=None), "rtb_no_bid", "rtb_no_bid")],
)
def test_after_its_retry_time_a_healthy_answer_resumes_the_contract_and_tells_it(
    buyers, settings, behaviour, reason, answered
):
    tripped(buyers, settings, behaviour)
    retry_due()

    answer = ping(1)

    assert steps(answer["ping_id"])["ctr_flaky"]["reason"] == reason
    assert len(buyers.requests("flaky")) == 2
    contract = flaky_contract()
    assert (contract.status, contract.hold) == ("active", None)
    assert (contract.breaker_retry_at, contract.breaker_trips, contract.hold_reason) == (None, 0, "")
    assert events("contract.resumed") == [
        {
            "contract": "ctr_flaky",
            "name": "flaky-c",
            "offer": "auto",
            "reason": f"Circuit breaker: the RTB endpoint answered again ({answered})",
        }
    ]
    assert cache.get(f"gavel:rtb-probe:{contract.pk}") is None
    # Active again: every ping asks it, with no new event.
    ping(2)
    assert len(buyers.requests("flaky")) == 3
    assert len(events("contract.resumed")) == 1


def test_the_retrys_bid_is_a_real_bid_and_buys_the_lead(buyers, settings):
    tripped(buyers, settings, Behaviour(bid="25.00"))
    retry_due()

    answer = ping(1)

    assert answer["payout"] == "20.00"  # 25.00 less the 20% margin: the retry won
    assert post(answer["ping_id"], 1)["payout"] == "20.00"
    with market_scope():
        assert Bid.objects.get(ping__public_id=answer["ping_id"], status="won").contract.slug == "flaky-c"


def test_a_failed_retry_keeps_the_contract_paused_for_a_doubled_cooldown(buyers, settings):
    tripped(buyers, settings)
    retry_due()

    answer = ping(1)

    assert steps(answer["ping_id"])["ctr_flaky"]["reason"] == "rtb_error"
    contract = flaky_contract()
    assert (contract.status, contract.hold, contract.breaker_trips) == ("active", "breaker", 2)
    assert contract.breaker_retry_at == created_at(answer) + timedelta(seconds=120)
    assert contract.hold_reason == "Circuit breaker: 2 trips in a row (last: rtb_error)"
    assert len(events("contract.paused")) == 1 and events("contract.resumed") == []
    # The next ping, before the new retry time, does not ask it.
    assert steps(ping(2)["ping_id"])["ctr_flaky"]["reason"] == "paused"
    assert len(buyers.requests("flaky")) == 2

    retry_due()
    third = ping(3)

    contract = flaky_contract()
    assert (contract.status, contract.hold, contract.breaker_trips) == ("active", "breaker", 3)
    assert contract.breaker_retry_at == created_at(third) + timedelta(seconds=240)
    assert len(buyers.requests("flaky")) == 3


def test_a_retry_the_exchange_cut_short_is_no_verdict(buyers, settings):
    """The ping's 250 ms deadline leaves the retried buyer less than its own 1500 ms: its timeout
    neither resumes the contract nor pauses it longer, and frees the slot for the next ping."""
    tripped(buyers, settings, Behaviour(bid="25.00", latency_ms=1000), rtb_timeout_ms=1500)
    with market_scope():
        Offer.objects.update(ping_timeout_ms=250)
    retry_due()
    before = flaky_contract()

    answer = ping(1)

    assert steps(answer["ping_id"])["ctr_flaky"]["reason"] == "rtb_timeout"
    after = flaky_contract()
    assert (after.hold, after.breaker_trips, after.breaker_retry_at) == (
        "breaker",
        before.breaker_trips,
        before.breaker_retry_at,
    )
    assert events("contract.resumed") == []
    assert cache.add(f"gavel:rtb-probe:{after.pk}", 1, timeout=30)  # the slot was given back


def test_the_cooldown_stops_growing_at_its_maximum(buyers, settings):
    settings.GAVEL_RTB_BREAKER_COOLDOWN_SECONDS = 60
    settings.GAVEL_RTB_BREAKER_COOLDOWN_MAX_SECONDS = 100
    tripped(buyers, settings)
    retry_due()

    answer = ping(1)

    contract = flaky_contract()
    assert contract.breaker_trips == 2
    assert contract.breaker_retry_at == created_at(answer) + timedelta(seconds=100)  # not 120


@pytest.mark.parametrize(
    ("trips", "seconds"), [(1, 60), (2, 120), (3, 240), (6, 1920), (7, 3600), (8, 3600), (32767, 3600)]
)
def test_the_cooldown_doubles_on_each_trip_in_a_row_up_to_the_maximum(trips, seconds):
    assert django_settings.GAVEL_RTB_BREAKER_COOLDOWN_SECONDS == 60
    assert django_settings.GAVEL_RTB_BREAKER_COOLDOWN_MAX_SECONDS == 3600
    assert breaker_cooldown(trips) == timedelta(seconds=seconds)


def test_while_another_pings_retry_is_in_flight_the_contract_is_paused(buyers, settings):
    tripped(buyers, settings, Behaviour(bid="25.00"))
    retry_due()
    contract_id = flaky_contract().pk
    assert cache.add(f"gavel:rtb-probe:{contract_id}", 1, timeout=30)  # another process's retry

    answer = ping(1)

    assert steps(answer["ping_id"])["ctr_flaky"]["reason"] == "paused"
    assert len(buyers.requests("flaky")) == 1
    assert flaky_contract().hold == "breaker"
    assert events("contract.resumed") == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), reason="needs concurrent connections"
)
def test_two_pings_at_once_send_exactly_one_retry(buyers, settings):
    tripped(buyers, settings, Behaviour(bid="25.00", latency_ms=400), rtb_timeout_ms=1500)
    retry_due()

    answers = run_at_once([lambda: ping(1), lambda: ping(2)])

    reasons = sorted(steps(a["ping_id"])["ctr_flaky"]["reason"] for a in answers)
    assert reasons == ["paused", "won"]
    assert len(buyers.requests("flaky")) == 2  # the trip's call and one retry
    assert flaky_contract().hold is None
    assert len(events("contract.resumed")) == 1


# --- the buyer's status and the exchange's hold are apart --------------------------------------


def test_a_buyer_pausing_and_resuming_its_contract_leaves_the_breakers_hold(buyers, settings):
    tripped(buyers, settings, Behaviour(bid="25.00"))
    retry_at = flaky_contract().breaker_retry_at
    shown = client(f"{BUYER_KEY_PREFIX}flaky_000000").get("/api/v1/contracts/ctr_flaky").json()
    assert (shown["status"], shown["hold"], shown["breaker_retry_at"]) == (
        "active",
        "breaker",
        retry_at.isoformat().replace("+00:00", "Z"),
    )

    patch_contract({"status": "paused"})
    shown = patch_contract({"status": "active"})

    assert (shown["status"], shown["hold"]) == ("active", "breaker")
    contract = flaky_contract()
    assert (contract.hold, contract.breaker_retry_at, contract.breaker_trips) == ("breaker", retry_at, 1)
    answer = ping(1)  # before the retry time: still held, not asked
    assert steps(answer["ping_id"])["ctr_flaky"]["reason"] == "paused"
    assert len(buyers.requests("flaky")) == 1 and events("contract.resumed") == []


def test_a_contract_its_buyer_paused_is_not_retried_by_the_breaker(buyers, settings):
    tripped(buyers, settings, Behaviour(bid="25.00"))
    patch_contract({"status": "paused"})
    retry_due()

    answer = ping(1)

    assert steps(answer["ping_id"])["ctr_flaky"]["reason"] == "paused"
    assert len(buyers.requests("flaky")) == 1  # the buyer's pause wins over the retry
    contract = flaky_contract()
    assert (contract.status, contract.hold) == ("paused", "breaker")


def test_the_breaker_lifting_its_hold_leaves_the_buyers_pause(buyers, settings):
    tripped(buyers, settings, Behaviour(bid="25.00"))
    with market_scope():
        contract_id = flaky_contract().pk
    patch_contract({"status": "paused"})

    assert contract_breaker_resume(contract_id=contract_id, reason="answered again")

    contract = flaky_contract()
    assert (contract.status, contract.hold) == ("paused", None)
    assert steps(ping(1)["ping_id"])["ctr_flaky"]["reason"] == "paused"


@pytest.mark.parametrize("term", ["priority", "weight", "hold", "hold_reason", "breaker_retry_at"])
def test_a_buyer_cannot_set_the_exchanges_terms(buyers, settings, term):
    tripped(buyers, settings)
    before = flaky_contract()
    buyer_client = client(f"{BUYER_KEY_PREFIX}flaky_000000")

    value = {"priority": 2147483647, "weight": 1000, "hold": None, "hold_reason": "", "breaker_retry_at": None}[term]
    response = buyer_client.patch("/api/v1/contracts/ctr_flaky", {term: value, "price": "99.00"}, format="json")

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error" and list(error["fields"]) == [term]
    after = flaky_contract()
    assert (after.priority, after.weight, after.hold, after.breaker_retry_at, after.price) == (
        before.priority,
        before.weight,
        "breaker",
        before.breaker_retry_at,
        before.price,
    )


def test_a_change_of_terms_alone_leaves_the_breaker_in_charge(buyers, settings):
    tripped(buyers, settings)
    retry_at = flaky_contract().breaker_retry_at

    patch_contract({"max_price": "50.00"})

    contract = flaky_contract()
    assert (contract.hold, contract.breaker_retry_at, contract.breaker_trips) == ("breaker", retry_at, 1)


def test_a_change_of_terms_read_before_the_breaker_held_the_contract_keeps_the_hold(buyers, monkeypatch):
    # The buyer's PATCH reads the contract (no hold); the breaker holds it before the PATCH saves.
    load(rtb_buyer(buyers, "flaky", Behaviour(failure_rate=1.0)), buyer("fixed", "10.00"))
    read = contract_views.contract_get
    retry_at = timezone.now() + breaker_cooldown(1)

    def read_then_trip(**kwargs):
        contract = read(**kwargs)
        assert contract.hold is None
        # What the breaker does on the N-th failure in a row.
        assert contract_hold(
            contract_id=contract.pk, hold="breaker", reason="Circuit breaker: 5 RTB failures", retry_at=retry_at
        )
        return contract

    monkeypatch.setattr(contract_views, "contract_get", read_then_trip)

    shown = patch_contract({"max_price": "50.00", "status": "active"})

    contract = flaky_contract()
    assert (contract.hold, contract.max_price, contract.breaker_trips) == ("breaker", Decimal("50.00"), 1)
    assert (contract.breaker_retry_at, contract.hold_reason) == (retry_at, "Circuit breaker: 5 RTB failures")
    assert (shown["status"], shown["hold"], shown["max_price"]) == ("active", "breaker", "50.00")
    assert len(events("contract.paused")) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), reason="needs concurrent connections"
)
def test_a_hold_by_the_breaker_waits_for_a_change_of_terms_in_progress(buyers, monkeypatch):
    load(rtb_buyer(buyers, "flaky", Behaviour(failure_rate=1.0)), buyer("fixed", "10.00"))
    contract_id = flaky_contract().pk
    hold_done = threading.Event()
    apply = contract_services._contract_apply

    def hold_elsewhere() -> bool:
        try:
            with market_scope():
                return contract_hold(
                    contract_id=contract_id, hold="breaker", reason="Circuit breaker", retry_at=timezone.now()
                )
        finally:
            hold_done.set()
            connections.close_all()

    def apply_while_the_breaker_holds(contract, values):
        # The PATCH has read the contract; the breaker holds it now, from another connection.
        threading.Thread(target=hold_elsewhere).start()
        # It must wait for the PATCH (the row is locked), so it cannot finish in the meantime.
        assert not hold_done.wait(0.5)
        return apply(contract, values)

    monkeypatch.setattr(contract_services, "_contract_apply", apply_while_the_breaker_holds)

    shown = patch_contract({"max_price": "50.00"})

    assert hold_done.wait(10)
    contract = flaky_contract()
    assert (shown["hold"], contract.hold, contract.max_price) == (None, "breaker", Decimal("50.00"))
    assert len(events("contract.paused")) == 1


def test_the_operators_hold_is_not_taken_over_by_the_breaker(buyers, settings):
    load(rtb_buyer(buyers, "flaky", Behaviour(failure_rate=1.0)), buyer("fixed", "10.00"))
    with market_scope():
        contract_id = flaky_contract().pk
    assert contract_hold(contract_id=contract_id, hold="operator", reason="Invoice overdue")

    assert not contract_hold(contract_id=contract_id, hold="breaker", reason="Circuit breaker", retry_at=timezone.now())

    contract = flaky_contract()
    assert (contract.hold, contract.hold_reason, contract.breaker_retry_at) == ("operator", "Invoice overdue", None)
    assert [e["reason"] for e in events("contract.paused")] == ["Invoice overdue"]


def test_an_operators_hold_takes_over_the_breakers_and_is_never_retried(buyers, settings):
    tripped(buyers, settings, Behaviour(bid="25.00"))
    with market_scope():
        contract_id = flaky_contract().pk

    assert contract_hold(contract_id=contract_id, hold="operator", reason="Audit")
    retry_due()

    answer = ping(1)
    assert steps(answer["ping_id"])["ctr_flaky"]["reason"] == "paused"
    assert len(buyers.requests("flaky")) == 1
    contract = flaky_contract()
    assert (contract.hold, contract.hold_reason, contract.breaker_trips) == ("operator", "Audit", 0)
    patch_contract({"status": "active"})
    assert flaky_contract().hold == "operator"  # no buyer action lifts it


def test_reloading_the_market_file_without_a_hold_keeps_the_breakers_hold(buyers, settings):
    tripped(buyers, settings)
    retry_at = flaky_contract().breaker_retry_at

    load(
        rtb_buyer(buyers, "flaky", Behaviour(bid="25.00"), max_price="50.00", status="active"), buyer("fixed", "10.00")
    )

    contract = flaky_contract()
    assert (contract.hold, contract.breaker_retry_at, contract.max_price) == ("breaker", retry_at, Decimal("50.00"))


def test_the_market_file_lifts_a_hold_or_sets_the_operators(buyers, settings):
    tripped(buyers, settings)

    load(rtb_buyer(buyers, "flaky", Behaviour(bid="25.00"), hold=None), buyer("fixed", "10.00"))

    contract = flaky_contract()
    assert (contract.hold, contract.hold_reason, contract.breaker_retry_at, contract.breaker_trips) == (
        None,
        "",
        None,
        0,
    )
    assert len(events("contract.resumed")) == 1

    load(
        rtb_buyer(buyers, "flaky", Behaviour(bid="25.00"), hold="operator", hold_reason="KYC"), buyer("fixed", "10.00")
    )

    contract = flaky_contract()
    assert (contract.hold, contract.hold_reason) == ("operator", "KYC")
    assert [e["reason"] for e in events("contract.paused")][-1] == "KYC"


def test_the_buyers_contract_page_says_when_the_breaker_retries(buyers, settings):
    tripped(buyers, settings)
    membership_set(
        user=user_upsert(email="owner@flaky.test", password="correct-horse-battery"),
        organization=Organization.objects.get(slug="flaky"),
        role="owner",
    )
    Organization.objects.filter(slug="flaky").update(timezone="America/Los_Angeles")
    portal = Client()
    assert portal.login(username="owner@flaky.test", password="correct-horse-battery")
    retry_at = flaky_contract().breaker_retry_at.astimezone(ZoneInfo("America/Los_Angeles"))

    page = portal.get("/portal/contracts/ctr_flaky/").content.decode()

    # In the buyer's own time zone, as the rest of its portal.
    assert "Held by the circuit breaker" in page
    assert f"It is retried automatically at {retry_at:%Y-%m-%d %H:%M:%S %Z}" in page
    with market_scope():
        contract_hold(contract_id=flaky_contract().pk, hold="operator", reason="Unpaid invoice")
    page = portal.get("/portal/contracts/ctr_flaky/").content.decode()
    assert "retried automatically" not in page
    assert "Held by the exchange's operator: Unpaid invoice" in page
