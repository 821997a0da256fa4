"""A Celery worker killed mid-task: a real worker on the Redis broker is running a re-auction whose
delivery is stuck at a slow buyer when it is SIGKILLed; another worker is started, the broker gives
it the task again (acks_late: the message was never acknowledged). The redelivered cycle was
claimed already, so it does nothing twice; the sweep releases the reservation the dead worker left
and runs the next cycle, and the lead ends sold once, with the money exact and the books balanced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from demo.buyers import Behaviour
from exchange.auction.book import book_invalidate
from exchange.models import Sale
from exchange.services.intake import market_sweep
from leads.models import Lead
from tests.exchange.builder import buyer, load, ping, post
from tests.exchange.test_celery_worker import worker_wait_ready
from tests.ledger import ZERO, balance, held, ledger_is_consistent
from tests.waiting import until

ROOT = Path(__file__).resolve().parents[2]
VISIBILITY_S = 2  # the workers' broker: an unacknowledged task goes to another worker after it
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL or connection.vendor != "postgresql", reason="Redis, PostgreSQL"),
]


def worker_start(purge: bool) -> subprocess.Popen[str]:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "GAVEL_REAUCTION_DELAY_S": "0",
        "GAVEL_TEST_VISIBILITY_TIMEOUT": str(VISIBILITY_S),
    }
    name = f"fault-{uuid.uuid4().hex[:8]}@localhost"
    command = [sys.executable, "-m", "celery", "-A", "exchange", "worker", "--pool", "solo"]
    command += ["-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "--loglevel", "WARNING", "--hostname", name]
    process = subprocess.Popen(
        command + (["--purge"] if purge else []),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the kill below reaches it and nothing else
    )
    try:
        worker_wait_ready(process, name)
    except BaseException:
        worker_stop(process, signal.SIGKILL)
        raise
    return process


def worker_stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    try:
        return process.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.communicate()[0]


def lead_status(lead_id: str) -> str:
    with market_scope():
        return Lead.objects.get(public_id=lead_id).status


def broker() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def test_a_task_whose_worker_was_killed_is_redelivered_and_the_sweep_sells_the_lead_once(buyers, settings):
    settings.GAVEL_REAUCTION_DELAY_S = 0
    buyers.behaviours["picky"] = Behaviour(accept=False)
    buyers.behaviours["slow"] = Behaviour(delivery_latency_ms=8_000)  # the worker dies first

    def webhook(name: str) -> dict:
        url = buyers.url(name, "deliver")
        return {
            "method": "webhook",
            "url": url,
            "timeout_ms": 60_000,
            "accept": {"path": "status", "equals": "accepted"},
        }

    load(
        buyer("picky", "30.00", delivery=webhook("picky")),
        buyer("slow", "20.00", status="paused", delivery=webhook("slow")),
    )
    answer = ping(1)
    with market_scope():
        BuyerContract.objects.filter(slug="slow-c").update(status="active")
    book_invalidate()
    first = worker_start(purge=True)
    try:
        pending = post(answer["ping_id"], 1)  # picky refuses the delivery: pending, a re-auction queued
        assert pending["status"] == "pending"
        until(lambda: buyers.requests("slow"), "the re-auction's delivery to reach the slow buyer", timeout=60)
    finally:
        worker_stop(first, signal.SIGKILL)  # mid-task: the delivery is still waiting on the buyer
    assert first.returncode == -signal.SIGKILL
    # Not acknowledged (acks_late): the broker still holds the task the dead worker had taken.
    assert broker().hlen("unacked") == 1
    with market_scope():
        lead = Lead.objects.get(public_id=pending["lead_id"])
        assert (lead.status, lead.reauction_cycle) == ("pending", 1)
        assert Sale.objects.get(lead=lead, contract__slug="slow-c").status == "reserved"
    assert held("slow") == Decimal("20.00")

    buyers.behaviours["slow"] = Behaviour()  # the buyer is fast again and accepts
    second = worker_start(purge=False)
    try:
        # Redelivered to the new worker once the visibility timeout passed, run and acknowledged:
        # the cycle was claimed already (a compare-and-set), so the second run does nothing twice.
        until(lambda: broker().hlen("unacked") == 0 and broker().llen("gavel") == 0, "the redelivery", timeout=60)
        assert lead_status(pending["lead_id"]) == "pending"
        # What finishes a cycle a dead worker left: the sweep (beat, every few minutes; its
        # 10-minute staleness cut to none here) releases the stuck reservation and queues the
        # next cycle, which the new worker runs.
        assert market_sweep(stale_after=timedelta(0))["released"] == 1
        until(lambda: lead_status(pending["lead_id"]) != "pending", "the next cycle to finish", timeout=60)
    finally:
        log = worker_stop(second)
    assert lead_status(pending["lead_id"]) == "sold", log
    assert len(buyers.requests("slow")) == 2  # the killed delivery, then the sale
    with market_scope():
        sales = sorted(
            Sale.objects.filter(lead__public_id=pending["lead_id"]).values_list("contract__slug", "status", "price")
        )
    assert sales == [
        ("picky-c", "released", Decimal("30.00")),
        ("slow-c", "released", Decimal("20.00")),
        ("slow-c", "sold", Decimal("20.00")),
    ]
    assert (balance("slow"), held("slow"), balance("picky")) == (Decimal("980.00"), ZERO, Decimal("1000.00"))
    ledger_is_consistent(settled=True)
