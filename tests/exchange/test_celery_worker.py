"""A real Celery worker, on Redis, finishes a pending lead by a background re-auction."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from demo.buyers import Behaviour, BuyerSimulator
from exchange.auction.book import book_invalidate
from exchange.celery import app
from leads.models import Lead
from tests.exchange.builder import buyer, client, load, ping, post

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.REDIS_URL or connection.vendor != "postgresql", reason="needs Redis and PostgreSQL"
    ),
]


def worker_wait_ready(process: subprocess.Popen[str], name: str, timeout: float = 60) -> None:
    """Until the worker answers a control ping: it has connected and purged its queue and now
    consumes, so a task queued from here on is one it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        if app.control.ping(destination=[name], timeout=0.5):
            return
    raise AssertionError(f"the Celery worker did not answer a ping within {timeout} s")


@pytest.fixture
def worker():
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL,
        "GAVEL_REAUCTION_DELAY_S": "0",
    }
    name = f"test-{uuid.uuid4().hex[:8]}@localhost"  # its own name: the ping below asks this worker only
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "exchange",
            "worker",
            "--pool",
            "solo",
            "--purge",
            "-Q",
            settings.CELERY_TASK_DEFAULT_QUEUE,
            "--loglevel",
            "WARNING",
            "--hostname",
            name,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker_wait_ready(process, name)
    yield process
    process.terminate()
    try:
        process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def test_a_worker_sells_a_pending_lead_in_the_background(worker, settings):
    settings.GAVEL_REAUCTION_DELAY_S = 0
    buyers = BuyerSimulator({"picky": Behaviour(accept=False)}).start()
    try:
        delivery = {
            "method": "webhook",
            "url": buyers.url("picky", "deliver"),
            "timeout_ms": 1000,
            "accept": {"path": "status", "equals": "accepted"},
        }
        load(buyer("picky", "30.00", delivery=delivery), buyer("late", "20.00", status="paused"))
        answer = ping(1)
        with market_scope():
            BuyerContract.objects.filter(slug="late-c").update(status="active")
        book_invalidate()
        pending = post(answer["ping_id"], 1)
        assert pending["status"] == "pending"
        deadline = time.monotonic() + 30
        status = "pending"
        while time.monotonic() < deadline and status == "pending":
            time.sleep(0.3)
            status = client().get(f"/api/v1/leads/{pending['lead_id']}").json()["status"]
        assert status == "sold", worker.poll()
        with market_scope():
            lead = Lead.objects.get(public_id=pending["lead_id"])
        assert (lead.reauction_cycle, str(lead.payout)) == (1, "16.00")
    finally:
        buyers.stop()
