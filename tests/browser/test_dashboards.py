"""The dashboards in a real browser at 1366 px: the seller's, the buyer's and the operator's /ops/,
with a week of trade behind them (screenshots in artifacts/ to look at)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.models import Organization
from accounts.services import user_upsert
from accounts.tenancy import market_scope
from exchange.models import Sale
from exchange.returns.services import return_decide, return_request
from reporting.rollups import rollups_fold
from tests.browser.conftest import WIDTH, log_in, person, shot
from tests.exchange.builder import buyer, client, lead_body, load, ping

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SUBS = ["facebook", "google", "tiktok"]


def _week() -> None:
    """Leads on each of the last 6 days (more each day), some returned, some pings not posted."""
    load(
        buyer("acme", "20.00", return_window_hours=240),
        buyer("bob", "12.00", return_window_hours=240),
    )
    now = timezone.now()
    n = 0
    for days_ago in range(5, -1, -1):
        with time_machine.travel(now - timedelta(days=days_ago, hours=1), tick=False):
            for _ in range(1 + (5 - days_ago) % 4):
                body = {**lead_body(n), "tracking": {"sub_id1": SUBS[n % 3], "sub_id2": f"ad{n % 2}"}}
                answer = client().post("/api/v1/leads", body, format="json").json()
                assert answer["status"] == "sold", answer
                n += 1
            ping(200 + days_ago)  # pinged, never posted
    acme = Organization.objects.get(slug="acme")
    with market_scope():
        first = Sale.objects.filter(organization=acme).order_by("id").first()
    assert first is not None
    ret = return_request(buyer=acme, sale_public_id=first.public_id, reason="bad_phone")
    return_decide(ret=ret, approve=True, user=None)
    rollups_fold(now=timezone.now() + timedelta(minutes=1))


def _fits(page) -> None:
    """Nothing scrolls sideways at 1366 px."""
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH


def test_seller_buyer_and_ops_dashboards(browser, live_server):
    _week()
    person("seller", "owner@seller.test")
    person("acme", "owner@acme.test")
    person("seller", "ops@gavel.test")
    user = user_upsert(email="ops@gavel.test")
    user.is_staff = True
    user.save(update_fields=["is_staff"])

    seller = log_in(browser, live_server, "owner@seller.test")
    seller.click("nav >> text=Dashboard")
    seller.wait_for_selector("figure.chart svg")
    assert "REVENUE" in seller.inner_text("dl.kpis").upper()
    assert "facebook" in seller.inner_text("#by-sub-id")
    _fits(seller)
    shot(seller, "dashboard-seller")
    seller.click("#id_sub_id")
    seller.select_option("#id_sub_id", "sub_id2")
    seller.click("form.custom button")
    seller.wait_for_selector("#by-sub-id >> text=ad1")
    seller.fill("#id_from", "2026-12-09")
    seller.fill("#id_to", "2026-12-01")
    seller.click("form.custom button")
    seller.wait_for_selector("text=This range cannot be shown.")
    shot(seller, "dashboard-seller-bad-range")

    buyer_page = log_in(browser, live_server, "owner@acme.test")
    buyer_page.click("nav >> text=Dashboard")
    buyer_page.wait_for_selector("#lost")
    assert "SPEND" in buyer_page.inner_text("dl.kpis").upper()
    assert "Seller" not in buyer_page.inner_text("#by-source")
    _fits(buyer_page)
    shot(buyer_page, "dashboard-buyer")

    ops = log_in(browser, live_server, "ops@gavel.test")
    ops.click("nav >> text=Ops")
    ops.wait_for_selector("#buyers")
    assert "p50" in ops.inner_text(".health")
    ops.click("a.preset >> text=Last 30 days")
    ops.wait_for_selector("a.preset.current >> text=Last 30 days")
    _fits(ops)
    shot(ops, "dashboard-ops")
