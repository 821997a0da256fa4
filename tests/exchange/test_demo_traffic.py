"""The demo's simulated seller traffic, sent over real HTTP to a live server on the demo market."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count, Sum

from accounts.tenancy import market_scope
from billing.models import LedgerEntry
from core.money import to_money
from core.pii import email_normalize, phone_normalize
from demo.traffic import BAD_INPUTS, GEO, SUN_BELT, traffic_plan, traffic_run
from exchange.market import market_load, market_read
from exchange.models import Ping, Sale
from leads.models import ConsentRecord, Lead
from tests.waiting import free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO_MARKET = ROOT / "exchange" / "fixtures" / "demo_market.yaml"


# --- the plan (no server) -------------------------------------------------------------------------


def test_the_plan_is_a_function_of_leads_and_seed():
    assert traffic_plan(60, 7) == traffic_plan(60, 7)
    assert traffic_plan(60, 7) != traffic_plan(60, 8)
    assert traffic_plan(0, 7) == []
    with pytest.raises(ValueError):
        traffic_plan(-1, 7)


def test_the_plan_mixes_paths_repeats_and_every_bad_input():
    plan = traffic_plan(60, 7)
    kinds = [s.kind for s in plan]
    assert len(plan) == 60
    assert plan[0].kind == "ping_post"
    assert kinds.count("ping_post") + kinds.count("no_buyers") >= 30  # ~60% ping then post
    assert 12 <= kinds.count("full_lead") <= 18  # ~25%
    assert kinds.count("repeat") == 6  # ~10%
    assert kinds.count("no_buyers") >= 2
    assert sorted(s.bad for s in plan if s.kind == "bad") == sorted(BAD_INPUTS)
    assert any(s.idempotency_key for s in plan) and any(s.retry for s in plan)
    for step in plan:
        if step.kind == "repeat":
            original = plan[step.repeat_of]
            assert step.repeat_of < step.index and original.kind in ("ping_post", "full_lead")
            assert step.consumer == original.consumer and step.offer == original.offer
            assert step.seller != original.seller  # the consumer shops around
        if step.kind == "no_buyers":
            assert step.offer == "solar" and step.consumer.homeowner is False
            assert step.consumer.state not in SUN_BELT
    # Half the repeats come back as solar homeowners in the sun belt, whom both solar buyers bought.
    assert any(s.kind == "repeat" and s.offer == "solar" for s in plan)


def test_consumers_look_real_and_are_distinct():
    plan = traffic_plan(300, 11)
    fresh = [s for s in plan if s.kind != "repeat"]
    emails = [email_normalize(s.consumer.email) for s in fresh]
    phones = [s.consumer.phone for s in fresh]
    assert len(set(emails)) == len(emails) and len(set(phones)) == len(phones)
    for step in fresh:
        consumer = step.consumer
        cities = GEO[consumer.state][1]
        city = next(c for c in cities if c[0] == consumer.city)
        assert consumer.zip.startswith(city[1]) and len(consumer.zip) == 5
        assert consumer.phone[2:5] in city[2] and consumer.phone[5:10] == "55501"
        assert phone_normalize(consumer.phone_typed) == consumer.phone
        assert email_normalize(consumer.email).endswith(("example.com", "example.net", "example.org"))
        assert 18 <= consumer.age <= 80
        assert "email" not in consumer.ping_fields(step.offer)
        assert set(consumer.lead_fields(step.offer)) >= {"email", "phone", "first_name", "state", "zip"}
    states = [s.consumer.state for s in fresh]
    top = {state for state, _ in Counter(states).most_common(5)}
    assert len(top & {"CA", "TX", "FL", "NY", "WA"}) >= 4


# --- against a live server ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_demo_traffic_sells_through_the_real_api(live_server):
    market_load(market_read(DEMO_MARKET))
    lines: list[str] = []

    report = traffic_run(live_server.url, leads=60, seed=7, log=lines.append)

    assert report.problems == []
    assert report.leads == 60 and len(lines) == 60
    assert report.sold >= 20
    assert report.outcomes["rejected:duplicate"] >= 1
    assert report.outcomes["rejected:no_buyers"] >= 1
    assert report.idempotent_replays >= 1
    assert {b.kind for b in report.bad_inputs} == set(BAD_INPUTS)
    for bad in report.bad_inputs:
        assert (bad.status, bad.code) == BAD_INPUTS[bad.kind], bad
    assert report.summary().startswith(f"60 leads sent — {report.sold} sold (${report.payout:,.2f}")

    with market_scope():
        sold = Lead.objects.filter(status=Lead.Status.SOLD)
        assert sold.count() == report.sold
        # SQLite sums decimals as floats: compare to the cent.
        assert to_money(sold.aggregate(total=Sum("payout"))["total"]) == report.payout
        assert Sale.objects.filter(status=Sale.Status.SOLD).count() >= report.sold
        assert Lead.objects.filter(status=Lead.Status.REJECTED, reason="duplicate").exists()
        # A repeat of an auto consumer sold again, to another buyer (auto sells exclusive).
        assert (
            Sale.objects.filter(offer__slug="auto-insurance")
            .values("email_hash")
            .annotate(buyers=Count("organization", distinct=True))
            .filter(buyers__gte=2)
            .exists()
        )
        assert Ping.objects.exclude(waterfall=[]).count() >= report.sold
        entries = LedgerEntry.objects.aggregate(total=Sum("amount"), n=Count("id"))
        assert entries["n"] > 0 and to_money(entries["total"]) == Decimal("0.00")
        for ip in ConsentRecord.objects.values_list("ip", flat=True):
            assert ipaddress.ip_address(ip) in ipaddress.ip_network("203.0.113.0/24")


@pytest.mark.django_db(transaction=True)
def test_the_command_prints_a_summary(live_server, capsys):
    market_load(market_read(DEMO_MARKET))

    call_command("demo_traffic", "--base-url", live_server.url, "--leads", "12", "--seed", "3")

    out = capsys.readouterr().out
    assert "Demo traffic: 12 leads sent — " in out and " sold ($" in out


def test_the_command_fails_when_the_server_does_not_answer(capsys):
    with pytest.raises(CommandError, match="unexpected answer"):
        call_command("demo_traffic", "--base-url", f"http://127.0.0.1:{free_port()}", "--leads", "5")
    assert "stopped answering" in capsys.readouterr().err


# --- `make demo`: demo_serve sends the traffic, then keeps serving ------------------------------------


@pytest.mark.slow
def test_demo_serve_sells_then_keeps_serving(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    env.pop("PYTHONUNBUFFERED", None)  # the summary must reach a pipe or a file without it
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    subprocess.run(
        [*manage, "load_market", str(DEMO_MARKET)], cwd=ROOT, env=env, check=True, timeout=120, capture_output=True
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [*manage, "demo_serve", "--port", str(port), "--traffic-leads", "15", "--logs", str(tmp_path / "log")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while "Demo traffic: 15 leads sent" not in log.read_text() and time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()
            time.sleep(0.2)
        output = log.read_text()
        assert "Demo traffic: 15 leads sent — " in output, output
        assert f"open http://127.0.0.1:{port}/admin/ to see them" in output
        assert "problem" not in output and "Traceback" not in output, output
        assert "owner@acme.test" in output  # the banner is still there
        assert "POST /api/v1/ping" not in output  # the simulated sellers' request lines are hidden
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=10) as page:  # noqa: S310
            assert page.status == 200
    finally:
        server.terminate()
        server.wait(timeout=20)
