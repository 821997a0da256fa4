"""A real Celery worker, on Redis, finishes a pending lead by a background re-auction."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
from tests.waiting import until

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


@contextmanager
def worker_running(log: Path | None = None, **extra_env: str) -> Iterator[subprocess.Popen[str]]:
    """A Celery worker of its own name on the test database and Redis, consuming the exchange's
    queue (its output in ``log``, if given), stopped on the way out."""
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL,
        "GAVEL_REAUCTION_DELAY_S": "0",
        **extra_env,
    }
    name = f"test-{uuid.uuid4().hex[:8]}@localhost"  # its own name: the ping below asks this worker only
    output = log.open("w") if log is not None else subprocess.PIPE
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
            extra_env.get("LOG_LEVEL", "WARNING"),
            "--hostname",
            name,
        ],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        worker_wait_ready(process, name)
        yield process
    finally:
        process.terminate()
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        if log is not None:
            output.close()  # type: ignore[union-attr]


@pytest.fixture
def worker():
    with worker_running() as process:
        yield process


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


def test_a_request_id_reaches_the_log_lines_of_the_task_it_queued_on_a_real_worker(tmp_path):
    """The id travels in the task's message headers to another process (core.logs)."""
    load(buyer("acme"))
    rid = "7d1e0c2a-5b4f-4e3d-9c8b-aabbccddeeff"
    log = tmp_path / "worker.log"
    with worker_running(log, LOG_JSON="1", LOG_LEVEL="INFO"):
        answer = client().post(
            "/api/v1/privacy-requests",
            {"kind": "access", "phone": "+14155550100"},
            format="json",
            HTTP_X_REQUEST_ID=rid,
        )
        assert (answer.status_code, answer["X-Request-ID"]) == (201, rid)
        request_id = answer.json()["request_id"]

        def completed() -> bool:
            return client().get(f"/api/v1/privacy-requests/{request_id}").json()["status"] == "completed"

        until(completed, what="the worker to complete the privacy request", timeout=30)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    done = [line for line in lines if line.get("event") == f"Privacy request {request_id} (access) completed"]
    assert len(done) == 1, log.read_text()[-3000:]
    assert done[0]["request_id"] == rid
    assert done[0]["task"] and done[0]["task_id"]
