"""Delivery to buyers' systems, post-reject re-routing and background re-auctions."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from standardwebhooks.webhooks import Webhook

from accounts.models import Organization
from accounts.services import user_upsert
from accounts.tenancy import market_scope
from billing.models import LedgerAccount
from contracts.models import BuyerContract, CapCounter
from demo.buyers import Behaviour
from exchange.auction.book import book_invalidate
from exchange.delivery import accepted_by_rule
from exchange.models import DeliveryAttempt, Ping, Sale
from exchange.services import lead_reauction_run
from leads.models import Lead
from tests.exchange.builder import buyer, client, load, ping, post
from tests.exchange.receiver import Receiver
from tests.ledger import balance, held

pytestmark = pytest.mark.django_db


def webhook_buyer(buyers, slug: str, price: str, behaviour: Behaviour, **contract) -> dict:
    buyers.behaviours[slug] = behaviour
    delivery = {
        "method": "webhook",
        "url": buyers.url(slug, "deliver"),
        "timeout_ms": 1000,
        "accept": {"path": "status", "equals": "accepted"},
        "reason_path": "message",
    }
    return buyer(slug, price, delivery=delivery, **contract)


def test_a_webhook_buyer_receives_the_signed_lead_and_accepts(buyers):
    load(webhook_buyer(buyers, "hook", "30.00", Behaviour(accept=True)))
    answer = ping(1)
    sold = post(answer["ping_id"], 1)
    assert (sold["status"], sold["payout"]) == ("sold", "24.00")
    received = buyers.requests("hook", "delivery")[0]
    body = received.json()
    assert body["lead"]["email"] == "consumer1@example.com" and body["price"] == "30.00"
    assert body["lead_id"] == sold["lead_id"] and body["sale_id"].startswith("sal_")
    assert body["consent"]["text"] == "I agree to be contacted."
    headers = {k.lower(): v for k, v in received.headers.items()}
    assert Webhook(Organization.objects.get(slug="hook").signing_secret).verify(received.body, headers)
    with market_scope():
        attempt = DeliveryAttempt.objects.get()
    assert (attempt.outcome, attempt.status_code) == ("accepted", 200)
    assert attempt.request["lead"]["email"] == "[redacted]" and attempt.request["lead"]["state"] == "CA"
    assert '"accepted"' in attempt.response
    assert (balance("hook"), held("hook")) == (Decimal("970.00"), Decimal("0.00"))


def test_a_rejecting_buyer_hands_the_lead_to_the_next_bid(buyers):
    load(
        webhook_buyer(
            buyers, "picky", "30.00", Behaviour(accept=False, reject_reason="already have it"), caps={"day": 5}
        ),
        webhook_buyer(buyers, "easy", "20.00", Behaviour(accept=True)),
    )
    answer = ping(1)
    assert answer["payout"] == "24.00"
    sold = post(answer["ping_id"], 1)
    assert (sold["status"], sold["payout"]) == ("sold", "16.00")
    with market_scope():
        sales = list(Sale.objects.order_by("pk").values_list("contract__slug", "status", "release_reason"))
        attempts = list(DeliveryAttempt.objects.order_by("pk").values_list("contract__slug", "outcome", "reason"))
        counters = dict(CapCounter.objects.values_list("contract__slug", "count"))
    assert sales == [("picky-c", "released", "post_rejected: already have it"), ("easy-c", "sold", "")]
    assert attempts == [("picky-c", "rejected", "already have it"), ("easy-c", "accepted", "")]
    assert counters == {"picky-c": 0}
    assert (balance("picky"), held("picky")) == (Decimal("1000.00"), Decimal("0.00"))
    assert (balance("easy"), held("easy")) == (Decimal("980.00"), Decimal("0.00"))


def test_the_operator_sees_the_hand_over_on_the_pings_page(buyers, operator_client):
    load(
        webhook_buyer(buyers, "picky", "30.00", Behaviour(accept=False, reject_reason="already have it")),
        webhook_buyer(buyers, "easy", "20.00", Behaviour(accept=True)),
    )
    answer = ping(1)
    post(answer["ping_id"], 1)
    with market_scope():
        ping_row = Ping.objects.get(public_id=answer["ping_id"])
        picky, easy = Sale.objects.order_by("pk")
    page = operator_client.get(reverse("admin:exchange_ping_change", args=[ping_row.pk])).content.decode()

    routing = page[page.index("Routing after the post") :]
    assert routing.index(picky.public_id) < routing.index(easy.public_id)
    assert "<td>Released</td><td>Rejected (200): already have it</td>" in routing
    assert "<td>Sold</td><td>Accepted (200)</td>" in routing


def test_a_buyer_that_times_out_is_a_rejection(buyers):
    load(
        webhook_buyer(buyers, "slow", "30.00", Behaviour(delivery_latency_ms=3000)),
        webhook_buyer(buyers, "easy", "20.00", Behaviour()),
    )
    answer = ping(1)
    sold = post(answer["ping_id"], 1)
    assert sold["status"] == "sold" and sold["payout"] == "16.00"
    with market_scope():
        assert DeliveryAttempt.objects.get(contract__slug="slow-c").outcome == "timeout"


def test_when_every_bid_rejects_the_lead_is_pending_then_sold_by_a_re_auction(buyers):
    load(
        webhook_buyer(buyers, "picky", "30.00", Behaviour(accept=False)),
        webhook_buyer(buyers, "late", "25.00", Behaviour(), status="paused"),
    )
    answer = ping(1)
    pending = post(answer["ping_id"], 1)
    assert (pending["status"], pending["payout"]) == ("pending", "0.00")
    assert client().get(f"/api/v1/leads/{pending['lead_id']}").json()["status"] == "pending"

    with market_scope():
        BuyerContract.objects.filter(slug="late-c").update(status="active")
    book_invalidate()
    with market_scope():
        lead_pk = Lead.objects.get(public_id=pending["lead_id"]).pk
    assert lead_reauction_run(lead_id=lead_pk, cycle=1) == "sold"

    detail = client().get(f"/api/v1/leads/{pending['lead_id']}").json()
    assert (detail["status"], detail["payout"]) == ("sold", "20.00")
    assert len(buyers.requests("picky", "delivery")) == 1  # the rejecter was not asked again
    from exchange.webhooks import Event

    with market_scope():
        event = Event.objects.get(type="lead.sold")
    assert event.data["lead_id"] == pending["lead_id"] and event.data["payout"] == "20.00"
    # A redelivered task for the same cycle, or an old one, changes nothing.
    assert lead_reauction_run(lead_id=lead_pk, cycle=1) == "skipped"
    with market_scope():
        assert Sale.objects.filter(status="sold").count() == 1


def test_re_auctions_end_unsold_after_the_offers_limit(buyers):
    load(webhook_buyer(buyers, "picky", "30.00", Behaviour(accept=False)), reauction_cycles=2)
    answer = ping(1)
    assert post(answer["ping_id"], 1)["status"] == "pending"
    with market_scope():
        lead = Lead.objects.get()
    assert lead_reauction_run(lead_id=lead.pk, cycle=1) == "pending"
    assert lead_reauction_run(lead_id=lead.pk, cycle=2) == "unsold"
    with market_scope():
        lead.refresh_from_db()
        from exchange.webhooks import Event

        event = Event.objects.get(type="lead.unsold")
    assert (lead.status, lead.reason, lead.reauction_cycle) == ("unsold", "no_buyers", 2)
    assert event.data["lead_id"] == lead.public_id
    assert lead_reauction_run(lead_id=lead.pk, cycle=2) == "skipped"


def test_without_re_auctions_a_rejected_lead_is_unsold_at_once(buyers):
    load(webhook_buyer(buyers, "picky", "30.00", Behaviour(accept=False)), reauction_cycles=0)
    answer = ping(1)
    assert post(answer["ping_id"], 1)["status"] == "unsold"


def test_an_unreachable_buyer_is_an_error_and_the_next_bid_buys(buyers):
    delivery = {"method": "webhook", "url": "http://127.0.0.1:9/nothing", "timeout_ms": 500}
    load(buyer("gone", "30.00", delivery=delivery), buyer("easy", "20.00"))
    answer = ping(1)
    assert post(answer["ping_id"], 1)["payout"] == "16.00"
    with market_scope():
        assert DeliveryAttempt.objects.get().outcome == "error"


@pytest.mark.parametrize("status", [302, 307, 308])
def test_a_buyer_that_redirects_is_a_rejection_and_the_lead_goes_nowhere_else(buyers, status):
    """A ``307 Location: <elsewhere>`` is never followed: the lead is not re-POSTed there, the
    answer there is not stored, the sale is released and the next bid buys."""
    hop = Receiver().start()
    try:
        hop.answer(status, body=b"see elsewhere", headers={"location": buyers.url("elsewhere", "deliver")})
        buyers.behaviours["elsewhere"] = Behaviour(accept=True)
        delivery = {"method": "webhook", "url": hop.url, "timeout_ms": 1000}
        load(
            buyer("hop", "30.00", delivery=delivery, caps={"day": 5}),
            webhook_buyer(buyers, "easy", "20.00", Behaviour()),
        )

        sold = post(ping(1)["ping_id"], 1)

        assert (sold["status"], sold["payout"]) == ("sold", "16.00")
        assert len(hop.requests) == 1
        assert buyers.requests("elsewhere") == []
        with market_scope():
            sales = list(Sale.objects.order_by("pk").values_list("contract__slug", "status", "release_reason"))
            attempt = DeliveryAttempt.objects.get(contract__slug="hop-c")
            counters = dict(CapCounter.objects.values_list("contract__slug", "count"))
        assert sales == [("hop-c", "released", "post_rejected: redirect"), ("easy-c", "sold", "")]
        assert (attempt.outcome, attempt.reason, attempt.status_code) == ("rejected", "redirect", status)
        assert attempt.response == f"Location: {buyers.url('elsewhere', 'deliver')}"
        assert counters == {"hop-c": 0}
        assert (balance("hop"), held("hop")) == (Decimal("1000.00"), Decimal("0.00"))
    finally:
        hop.stop()


def test_a_redirecting_buyer_with_no_other_bid_leaves_the_lead_unsold(buyers):
    hop = Receiver().start()
    try:
        hop.answer(307, headers={"location": buyers.url("elsewhere", "deliver")})
        delivery = {"method": "webhook", "url": hop.url, "timeout_ms": 1000}
        load(buyer("hop", "30.00", delivery=delivery), reauction_cycles=0)

        assert post(ping(1)["ping_id"], 1)["status"] == "unsold"
        assert buyers.requests("elsewhere") == []
        with market_scope():
            assert list(Sale.objects.values_list("status", "release_reason")) == [
                ("released", "post_rejected: redirect")
            ]
        assert (balance("hop"), held("hop")) == (Decimal("1000.00"), Decimal("0.00"))
    finally:
        hop.stop()


def test_the_sweeper_releases_a_reservation_a_dead_process_left_and_moves_the_lead_on(buyers):
    from datetime import timedelta

    from django.utils import timezone

    from exchange.services import market_sweep

    load(buyer("a", "30.00", caps={"day": 1}), reauction_cycles=0)
    answer = ping(1)
    sold = post(answer["ping_id"], 1)
    # Simulate a process that died between reservation and delivery: a reserved sale, a pending lead.
    with market_scope():
        sale = Sale.objects.get()
        Sale.objects.filter(pk=sale.pk).update(
            status="reserved", sold_at=None, created_at=timezone.now() - timedelta(hours=1)
        )
        Lead.objects.filter(public_id=sold["lead_id"]).update(
            status="pending", updated_at=timezone.now() - timedelta(hours=1)
        )
        LedgerAccount.objects.filter(organization__slug="a", kind="buyer_balance").update(held=Decimal("30.00"))
    assert market_sweep() == {"released": 1, "requeued": 0, "finished": 1}
    with market_scope():
        assert Sale.objects.get().status == "released"
        assert Lead.objects.get().status == "unsold"
        assert CapCounter.objects.get().count == 0
    assert held("a") == Decimal("0.00")
    assert market_sweep() == {"released": 0, "requeued": 0, "finished": 0}


def test_the_buyer_sees_its_delivery_attempts_on_the_purchase_page(buyers):
    from accounts.services import membership_set

    load(
        webhook_buyer(buyers, "picky", "30.00", Behaviour(accept=False, reject_reason="Already have it")),
        webhook_buyer(buyers, "easy", "20.00", Behaviour()),
    )
    post(ping(1)["ping_id"], 1)
    user = user_upsert(email="p@picky.test", password="correct-horse-battery")
    membership_set(user=user, organization=Organization.objects.get(slug="picky"), role="analyst")
    web = Client()
    web.login(username="p@picky.test", password="correct-horse-battery")
    with market_scope():
        released = Sale.objects.get(contract__slug="picky-c")
    page = web.get(f"/portal/purchases/{released.public_id}/").content.decode()
    assert "Delivery to your system" in page and "Already have it" in page and "Rejected" in page
    # Released: the buyer won the auction but did not buy the lead.
    assert "· won at auction <time" in page and "· bought" not in page
    # Why, in words: not the code "post_rejected: …".
    assert "Your delivery endpoint turned the lead down: Already have it" in page and "post_rejected" not in page


def test_the_accept_regex_runs_on_re2_in_linear_time():
    catastrophic = "(.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*)*x"
    started = time.perf_counter()
    assert accepted_by_rule({"regex": catastrophic}, 200, "a" * 5000) is False
    assert time.perf_counter() - started < 0.05  # Python's re would take minutes
    assert accepted_by_rule({"regex": "^OK "}, 200, "OK lead 17") is True
    # A pattern stored before RE2 was checked at save time (a backreference) accepts nothing.
    assert accepted_by_rule({"regex": r"(a)\1"}, 200, "aa") is False
