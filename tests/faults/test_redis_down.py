"""Redis down: the exchange treats it as a cache (decision 64), so pings are still decided and posts
still sell, from PostgreSQL, and the books balance afterwards."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import redis
import time_machine
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.test import override_settings

from accounts.tenancy import market_scope
from demo.buyers import Behaviour
from exchange.celery import app
from exchange.services.intake import market_sweep
from leads.models import Lead, PrivacyRequest
from leads.tasks import WORK_GRACE, work_due_task
from tests.exchange.builder import buyer, client, load, ping_body, post_body
from tests.ledger import balance, ledger_is_consistent
from tests.waiting import free_port

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not settings.REDIS_URL or connection.vendor != "postgresql", reason="Redis, PostgreSQL"),
]


def redis_down():
    """The cache pointed at a port nothing listens on: every connection is refused."""
    closed = f"redis://127.0.0.1:{free_port()}/0"
    return override_settings(CACHES={"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": closed}})


def test_with_redis_down_pings_are_decided_posts_sell_and_the_books_balance(caplog):
    load(buyer("acme", "10.00"), buyer("zeta", "7.00"))
    with redis_down():
        assert caches["default"].get("anything") is None  # a miss, not an error
        answers = []
        for n in range(3):
            pinged = client().post("/api/v1/ping", ping_body(n), format="json")
            assert pinged.status_code == 200, pinged.content
            assert (pinged.json()["status"], pinged.json()["payout"]) == ("accepted", "8.00")
            posted = client().post("/api/v1/post", post_body(pinged.json()["ping_id"], n), format="json")
            assert posted.status_code == 200, posted.content
            answers.append(posted.json())
    assert [(a["status"], a["payout"]) for a in answers] == [("sold", "8.00")] * 3
    with market_scope():
        assert sorted(Lead.objects.values_list("status", flat=True)) == ["sold"] * 3
    assert balance("acme") == Decimal("970.00")
    assert abs(balance("seller", "seller_payable")) == Decimal("24.00")
    assert abs(balance(None, "platform_revenue")) == Decimal("6.00")
    ledger_is_consistent(settled=True)
    assert "Redis unreachable" in caplog.text


def test_a_cache_that_comes_back_is_used_again():
    with redis_down():
        caches["default"].set("gavel:fault-probe", 1, 30)
        assert caches["default"].get("gavel:fault-probe") is None
    caches["default"].set("gavel:fault-probe", 2, 30)
    assert caches["default"].get("gavel:fault-probe") == 2
    caches["default"].delete("gavel:fault-probe")


@pytest.fixture
def broker_down():
    """Celery's producer pointed at a closed port (the broker is the same Redis, down); calling
    what this yields brings the real broker back (the app's own pools, never closed)."""
    kept = (app.conf.broker_url, app._pool, app.amqp._producer_pool)
    app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    app._pool = app.amqp._producer_pool = None

    def back() -> None:
        if app.conf.broker_url != kept[0]:
            if app._pool is not None:
                app._pool.force_close_all()
            app.conf.broker_url, app._pool, app.amqp._producer_pool = kept

    yield back
    back()


@pytest.mark.django_db(transaction=True)
def test_a_lead_left_pending_while_the_broker_is_down_is_queued_by_the_sweep_when_it_returns(
    buyers, broker_down, settings, caplog
):
    """The re-auction a pending lead needs cannot be queued: the seller still gets its answer, the
    lead stays pending in PostgreSQL, and the sweep (beat) queues the cycle once Redis is back."""
    buyers.behaviours["picky"] = Behaviour(accept=False)
    delivery = {"method": "webhook", "url": buyers.url("picky", "deliver"), "timeout_ms": 2000}
    load(buyer("picky", "30.00", delivery={**delivery, "accept": {"path": "status", "equals": "accepted"}}))
    pinged = client().post("/api/v1/ping", ping_body(1), format="json").json()
    posted = client().post("/api/v1/post", post_body(pinged["ping_id"], 1), format="json")
    assert (posted.status_code, posted.json()["status"]) == (200, "pending")
    assert "in on_commit()" in caplog.text and "Connection refused" in caplog.text  # logged, not raised
    queue = redis.Redis.from_url(settings.REDIS_URL)
    queue.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    with market_scope():
        assert Lead.objects.get(public_id=posted.json()["lead_id"]).status == "pending"
    ledger_is_consistent(settled=True)
    broker_down()  # Redis is back
    assert market_sweep(stale_after=timedelta(0))["requeued"] == 1
    assert queue.llen(settings.CELERY_TASK_DEFAULT_QUEUE) == 1
    queue.delete(settings.CELERY_TASK_DEFAULT_QUEUE)


@pytest.mark.django_db(transaction=True)
def test_a_privacy_request_confirmed_while_the_broker_is_down_is_done_by_the_sweep(broker_down, settings, caplog):
    """Its task cannot be queued: the organization still gets its 201, the request stays confirmed
    in PostgreSQL, and ``leads.work_due`` completes it once its grace has passed."""
    load(buyer("acme", "30.00"))
    filed = client().post("/api/v1/privacy-requests", {"kind": "access", "email": "gone@example.com"}, format="json")
    assert (filed.status_code, filed.json()["status"]) == (201, "confirmed")
    assert "in on_commit()" in caplog.text  # logged, not raised
    broker_down()  # Redis is back
    with market_scope():
        request = PrivacyRequest.objects.get(public_id=filed.json()["request_id"])
    assert work_due_task.run() == {"privacy_requests": 0, "uploads": 0}  # still within its grace
    with time_machine.travel(request.confirmed_at + WORK_GRACE + timedelta(seconds=1)):
        assert work_due_task.run() == {"privacy_requests": 1, "uploads": 0}
    request.refresh_from_db()
    assert request.status == "completed"
