"""The dashboards (/portal/dashboard/ for sellers and buyers, /ops/ for operators): the figures on
the pages and in their CSVs equal the report selectors', ranges and their edges, bad ranges,
outsiders, and no raw-ping scan on page load."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Organization
from accounts.services import user_upsert
from accounts.tenancy import market_scope
from billing.models import LedgerAccount, LedgerEntry, ReconciliationRun
from contracts.models import BuyerContract
from exchange.models import Ping, Sale
from exchange.returns.services import return_decide, return_request
from reporting.models import ReasonRollup
from reporting.reports import BUYER, SELLER, report_of
from reporting.rollups import rollups_fold, rollups_rebuild
from reporting.services import conversion_record
from tests.exchange.builder import SELLER2_KEY, buyer, client, lead_body, load, ping
from tests.sessions import PASSWORD, login, member

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 1, 15, 10, tzinfo=UTC)
NOON = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)  # when the pages are looked at
DAY = {"range": "custom", "from": "2026-12-01", "to": "2026-12-01"}


def _lead(n: int, *, sub_id1: str, key: str = "gvl_test_seller_00000000000000", campaign: str = "cmp_seller") -> str:
    body = {**lead_body(n, campaign=campaign), "tracking": {"sub_id1": sub_id1, "sub_id2": f"ad{n}"}}
    answer = client(key).post("/api/v1/leads", body, format="json").json()
    assert answer["status"] == "sold", answer
    return str(answer["lead_id"])


def _sale(lead_id: str) -> Sale:
    with market_scope():
        return Sale.objects.get(lead__public_id=lead_id)


@pytest.fixture
def trade() -> dict[str, str]:
    """On 1 December 2026 (UTC): seller sells 3 leads (b1 takes two, its daily cap, then b2) and
    pings once without posting; seller2 sells one to b2. b1 returns lead 0; b2 converts lead 2."""
    with time_machine.travel(T0, tick=False):
        load(
            buyer("b1", "10.00", caps={"day": 2}, return_window_hours=72),
            buyer("b2", "8.00", return_window_hours=72),
        )
        leads = {
            "l0": _lead(0, sub_id1="fb"),
            "l1": _lead(1, sub_id1="gg"),
            "l2": _lead(2, sub_id1="fb"),
            "other": _lead(4, sub_id1="zz", key=SELLER2_KEY, campaign="cmp_seller2"),
        }
        assert ping(3)["status"] == "accepted"
        b1, b2 = Organization.objects.get(slug="b1"), Organization.objects.get(slug="b2")
        ret = return_request(buyer=b1, sale_public_id=_sale(leads["l0"]).public_id, reason="bad_phone")
        return_decide(ret=ret, approve=True, user=None)
        conversion_record(buyer=b2, sale_public_id=_sale(leads["l2"]).public_id, event="sale", value="120.00")
        rollups_fold(now=timezone.now() + timedelta(minutes=1))
    return leads


def _get(c: Client, url: str, **params: str) -> Any:
    with time_machine.travel(NOON, tick=False):
        return c.get(url, params)


def _csv(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def _kpis(response: Any) -> dict[str, str]:
    return dict(response.context["kpis"])


def _table(response: Any, slug: str) -> Any:
    if response.context["day"].slug == slug:
        return response.context["day"]
    return next(t for t in response.context["tables"] if t.slug == slug)


def _staff() -> Client:
    user = user_upsert(email="ops@gavel.test", password=PASSWORD)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return login("ops@gavel.test")


# --- the seller's dashboard -----------------------------------------------------------------------


def test_seller_dashboard_shows_the_report_selectors_figures(trade: dict[str, str]) -> None:
    seller = Organization.objects.get(slug="seller")
    c = member("s@seller.test", "seller", "analyst")
    page = _get(c, "/portal/dashboard/", **DAY)

    assert page.status_code == 200
    totals = report_of(organization=seller, side=SELLER, start=date(2026, 12, 1), end=date(2026, 12, 1), group_by=[])
    assert totals.totals["amount"] == "22.40" and totals.totals["sold"] == 3 and totals.totals["pings"] == 4
    assert _kpis(page) == {
        "Revenue": "$22.40",
        "Leads sold": "3",
        "Sell-through": "75.0 %",  # 3 sold of 4 pings
        "Average payout": "$7.47",  # 22.40 / 3
        "Return rate": "33.3 %",  # 1 of 3
        "Conversion rate": "33.3 %",
    }
    html = page.content.decode()
    assert "$22.40" in html and "Revenue per day" in html and "<svg" in html and "<script" not in html.split("<main")[1]
    by_sub = _table(page, "by-sub-id")
    assert [(r["sub_id"], r["sold"], r["revenue"]) for r in by_sub.rows] == [
        ("(none)", 0, Decimal("0.00")),  # the ping never posted
        ("fb", 2, Decimal("14.40")),
        ("gg", 1, Decimal("8.00")),
    ]
    by_campaign = _table(page, "by-campaign")
    assert [(r["campaign_id"], r["pings"], r["sold"], r["revenue"]) for r in by_campaign.rows] == [
        ("cmp_seller", 4, 3, Decimal("22.40"))
    ]
    quality = _table(page, "quality")
    assert [(r["campaign_id"], r["sold"], r["return_rate"], r["conversion_rate"]) for r in quality.rows] == [
        ("cmp_seller", 3, Decimal("33.3"), Decimal("33.3"))
    ]
    # Another seller's campaign is nowhere on the page.
    assert "cmp_seller2" not in html and "Seller Two" not in html and ">zz<" not in html


def test_seller_csvs_are_the_pages_tables(trade: dict[str, str]) -> None:
    c = member("s@seller.test", "seller")
    rows = _csv(_get(c, "/portal/dashboard/seller/by-day.csv", **DAY))
    assert rows == [
        [
            "Day",
            "Pings",
            "Sold",
            "Sell-through (%)",
            "Revenue",
            "Avg payout",
            "Returned",
            "Return rate (%)",
            "Conversions",
            "Conversion rate (%)",
        ],
        ["2026-12-01", "4", "3", "75.0", "22.40", "7.47", "1", "33.3", "1", "33.3"],
        ["Total", "4", "3", "75.0", "22.40", "7.47", "1", "33.3", "1", "33.3"],
    ]
    by_sub2 = _csv(_get(c, "/portal/dashboard/seller/by-sub-id.csv", **DAY, sub_id="sub_id2"))
    assert by_sub2[0][0] == "sub_id2"
    assert [(r[0], r[2], r[4]) for r in by_sub2[1:]] == [
        ("(none)", "0", "0.00"),
        ("ad0", "1", "8.00"),
        ("ad1", "1", "8.00"),
        ("ad2", "1", "6.40"),
    ]
    campaign = _csv(_get(c, "/portal/dashboard/seller/by-campaign.csv", **DAY))
    assert campaign[0][:5] == ["Campaign", "Id", "Pings", "Sold", "Sell-through (%)"]
    assert campaign[1][1:5] == ["cmp_seller", "4", "3", "75.0"] and len(campaign) == 2


# --- the buyer's dashboard ----------------------------------------------------------------------


def test_buyer_dashboard_shows_the_report_selectors_figures_and_why_it_lost(trade: dict[str, str]) -> None:
    b1 = Organization.objects.get(slug="b1")
    c = member("b@b1.test", "b1", "analyst")
    page = _get(c, "/portal/dashboard/", **DAY)

    assert page.status_code == 200 and page.context["side"] == BUYER
    report = report_of(organization=b1, side=BUYER, start=date(2026, 12, 1), end=date(2026, 12, 1), group_by=[])
    with market_scope():
        steps = [s for p in Ping.objects.all() for s in p.waterfall if s["contract"] == "ctr_b1"]
    assert report.totals["evaluated"] == len(steps) == 5 and report.totals["won"] == 2
    assert _kpis(page) == {
        "Spend": "$20.00",
        "Leads bought": "2",
        "Win rate": "40.0 %",  # 2 wins of 5 evaluations
        "Average price": "$10.00",
        "Return rate": "50.0 %",
        "Conversion rate": "0.0 %",
    }
    lost = _table(page, "lost")
    expected = Counter(s["reason"] for s in steps if s["reason"] != "won")
    assert {r["code"]: r["times"] for r in lost.rows} == dict(expected)
    assert all(not r["reason"].startswith("cap_reached") for r in lost.rows)  # in words, not codes
    with market_scope():
        token = Sale.objects.filter(organization=b1).values_list("campaign__source_token", flat=True).first()
        other = Sale.objects.get(campaign__public_id="cmp_seller2").campaign.source_token
    by_source = _table(page, "by-source")
    # seller2's lead came while b1's cap was reached: evaluated there, nothing bought.
    assert [(r["source"], r["sold"], r["spend"]) for r in by_source.rows] == sorted(
        [(token, 2, Decimal("20.00")), (other, 0, Decimal("0.00"))]
    )
    html = page.content.decode()
    assert token in html and "Seller" not in html.split("<main")[1]  # the source token, never the seller's name
    quality = _csv(_get(c, "/portal/dashboard/buyer/quality.csv", **DAY))
    assert quality == [
        [
            "Source",
            "Sold",
            "Returned",
            "Return rate (%)",
            "Delivery rejects",
            "Delivery reject rate (%)",
            "Conversions",
            "Conversion rate (%)",
        ],
        [token, "2", "1", "50.0", "0", "0.0", "0", "0.0"],
    ]
    lost_csv = _csv(_get(c, "/portal/dashboard/buyer/lost.csv", **DAY))
    assert sum(int(r[2]) for r in lost_csv[1:]) == sum(expected.values())


def test_b2_sees_its_conversion_and_never_b1s_figures(trade: dict[str, str]) -> None:
    c = member("b@b2.test", "b2")
    page = _get(c, "/portal/dashboard/", **DAY)
    assert _kpis(page)["Spend"] == "$16.00" and _kpis(page)["Conversion rate"] == "50.0 %"
    assert "ctr_b1" not in page.content.decode()
    # The seller side is not theirs: the tab falls back, the CSV is not found.
    assert _get(c, "/portal/dashboard/", side="seller", **DAY).context["side"] == BUYER
    assert _get(c, "/portal/dashboard/seller/by-day.csv", **DAY).status_code == 404
    assert _get(c, "/portal/dashboard/buyer/nope.csv", **DAY).status_code == 404


def test_an_organization_that_both_sells_and_buys_gets_both_tabs(trade: dict[str, str]) -> None:
    Organization.objects.filter(slug="seller").update(is_buyer=True)
    c = member("s@seller.test", "seller")
    selling = _get(c, "/portal/dashboard/", **DAY)
    buying = _get(c, "/portal/dashboard/", side="buyer", **DAY)
    assert selling.context["side"] == SELLER and buying.context["side"] == BUYER
    assert 'href="?side=buyer&amp;range=custom&amp;from=2026-12-01&amp;to=2026-12-01' in selling.content.decode()
    assert _kpis(buying)["Spend"] == "$0.00"
    assert "No pings reached your contracts" in buying.content.decode()  # the empty state says what to do


# --- ranges -------------------------------------------------------------------------------------


def test_presets_and_edges_of_the_organizations_days(trade: dict[str, str]) -> None:
    c = member("s@seller.test", "seller")
    assert _kpis(_get(c, "/portal/dashboard/", range="today"))["Revenue"] == "$22.40"
    assert _kpis(_get(c, "/portal/dashboard/", range="7d"))["Revenue"] == "$22.40"
    assert _kpis(_get(c, "/portal/dashboard/", range="month"))["Revenue"] == "$22.40"
    assert _kpis(_get(c, "/portal/dashboard/"))["Revenue"] == "$22.40"  # 7 days by default
    day_after = _get(c, "/portal/dashboard/", range="custom", **{"from": "2026-12-02", "to": "2026-12-02"})
    assert _kpis(day_after)["Revenue"] == "$0.00" and _kpis(day_after)["Sell-through"] == "—"
    assert "No pings in this range" in day_after.content.decode()
    # 15:10 UTC on 1 December is 05:10 on 2 December at UTC+14: the trade moves to the local day.
    Organization.objects.filter(slug="seller").update(timezone="Pacific/Kiritimati")
    assert _kpis(_get(c, "/portal/dashboard/", **DAY))["Revenue"] == "$0.00"
    local = _get(c, "/portal/dashboard/", range="custom", **{"from": "2026-12-02", "to": "2026-12-02"})
    assert _kpis(local)["Revenue"] == "$22.40"
    assert "Pacific/Kiritimati" in local.content.decode()
    # A range ending the day before the trade does not include it.
    before = _get(c, "/portal/dashboard/", range="custom", **{"from": "2026-11-01", "to": "2026-12-01"})
    assert _kpis(before)["Revenue"] == "$0.00"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"range": "custom", "from": "2026-12-05", "to": "2026-12-01"}, "on or after the first day"),
        ({"range": "custom", "from": "yesterday", "to": "2026-12-01"}, "Enter a date as YYYY-MM-DD."),
        ({"range": "custom", "to": "2026-12-01"}, "Give the first day of a custom range."),
        ({"range": "custom", "from": "2024-01-01", "to": "2026-12-01"}, "at most 366 days"),
        ({"range": "fortnight"}, "Select a valid choice"),
        ({"sub_id": "sub_id9"}, "Select a valid choice"),
    ],
)
def test_a_bad_range_is_a_form_error_never_a_500(trade: dict[str, str], params: dict[str, str], message: str) -> None:
    c = member("s@seller.test", "seller")
    page = _get(c, "/portal/dashboard/", **params)
    assert page.status_code == 400
    html = page.content.decode()
    assert "This range cannot be shown." in html and message in html
    assert "kpis" not in page.context or not page.context.get("kpis")
    export = _get(c, "/portal/dashboard/seller/by-day.csv", **params)
    assert export.status_code == 400 and message in export.content.decode()
    staff = _get(_staff(), "/ops/", **params)
    assert staff.status_code == 400 and message in staff.content.decode()


# --- the operator's page ------------------------------------------------------------------------


def test_ops_shows_the_exchanges_figures(trade: dict[str, str]) -> None:
    with market_scope():
        BuyerContract.objects.filter(public_id="ctr_b2").update(hold="breaker")
        ReconciliationRun.objects.create(
            key="manual:t",
            checked_at=T0,
            is_clean=False,
            accounts=7,
            transactions=9,
            problems=["b1 balance drifts by 1.00"],
        )
        platform = sum(
            (
                e.amount
                for e in LedgerEntry.objects.filter(
                    account__kind=LedgerAccount.Kind.PLATFORM_REVENUE, transaction__kind="sale"
                )
            ),
            Decimal(0),
        )
        latencies = sorted(p.latency_ms for p in Ping.objects.exclude(source="reauction"))
    page = _get(_staff(), "/ops/", **DAY)

    assert page.status_code == 200
    assert _kpis(page) == {
        "Pings": "5",
        "Leads sold": "4",
        "Unsold leads": "0",
        "Revenue": "$36.00",  # 10 + 10 + 8 + 8 paid by buyers
        "Margin": f"${platform:,.2f}",
    }
    health = page.context["health"]
    assert health.latency.pings == len(latencies) == 5
    assert health.latency.p50 == pytest.approx(latencies[2])
    html = page.content.decode()
    assert "Drift" in html and "b1 balance drifts by 1.00" in html
    buyers = {r["buyer"]: r for r in _table(page, "buyers").rows}
    assert buyers["B2"]["breaker_holds"] == 1 and buyers["B1"]["breaker_holds"] == 0
    assert (buyers["B1"]["sold"], buyers["B2"]["sold"]) == (2, 2)
    with market_scope():
        all_steps = [s["reason"] for p in Ping.objects.all() for s in p.waterfall if s["reason"] != "won"]
    reasons = _table(page, "reasons")
    assert sum(r["times"] for r in reasons.rows) == len(all_steps)
    quality = _csv(_get(_staff(), "/ops/quality.csv", **DAY))
    assert [(r[0], r[3], r[5]) for r in quality[1:]] == [("Seller", "3", "33.3"), ("Seller Two", "1", "0.0")]
    by_day = _csv(_get(_staff(), "/ops/by-day.csv", **DAY))
    assert by_day[1] == ["2026-12-01", "5", "4", "4", "0", "36.00", f"{36 - platform:.2f}", f"{platform:.2f}"]


def test_ops_is_refused_to_everyone_but_staff(trade: dict[str, str]) -> None:
    anonymous = Client().get("/ops/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    owner = member("s@seller.test", "seller", "owner")
    assert owner.get("/ops/").status_code == 404
    assert owner.get("/ops/by-day.csv").status_code == 404
    assert Client().get("/ops/by-day.csv").status_code == 302
    assert _staff().get("/ops/nope.csv").status_code == 404


# --- no raw pings on page load ------------------------------------------------------------------


def _ping_queries(c: Client, url: str, **params: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = _get(c, url, **params)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    assert response.status_code == 200
    return [q["sql"] for q in queries.captured_queries if "exchange_ping" in q["sql"]]


def test_pages_and_csvs_never_scan_raw_pings(trade: dict[str, str]) -> None:
    Organization.objects.filter(slug="seller").update(is_buyer=True)
    seller = member("s@seller.test", "seller")
    assert _ping_queries(seller, "/portal/dashboard/", range="30d") == []
    assert _ping_queries(seller, "/portal/dashboard/", side="buyer", range="30d") == []
    assert _ping_queries(member("b@b1.test", "b1"), "/portal/dashboard/", range="30d") == []
    for table in ("by-day", "by-campaign", "by-sub-id", "quality"):
        assert _ping_queries(seller, f"/portal/dashboard/seller/{table}.csv", range="30d") == []
    # /ops/: only the bounded latency read of the latest pings.
    (latency,) = _ping_queries(_staff(), "/ops/", range="30d")
    assert "percentile_cont" in latency and "LIMIT" in latency
    assert _ping_queries(_staff(), "/ops/reasons.csv", range="30d") == []


# --- the reason rollup --------------------------------------------------------------------------


def test_reason_counts_fold_once_and_a_rebuild_gives_the_same(trade: dict[str, str]) -> None:
    def snapshot() -> list[tuple[Any, ...]]:
        return sorted(ReasonRollup.objects.values_list("hour", "contract_id", "reason", "test", "count"))

    before = snapshot()
    assert before
    rollups_fold(now=timezone.now() + timedelta(minutes=2))
    rollups_fold(now=timezone.now() + timedelta(minutes=2))
    assert snapshot() == before
    rollups_rebuild(start=T0 - timedelta(days=1), end=T0 + timedelta(days=1), now=T0)
    assert snapshot() == before
    with market_scope():
        raw = Counter((s["contract"], s["reason"]) for p in Ping.objects.all() for s in p.waterfall)
    with market_scope():
        ids = dict(BuyerContract.objects.values_list("id", "public_id"))
    assert Counter({(ids[c], r): n for _, c, r, _, n in before}) == raw


def test_the_admin_index_and_the_nav_link_ops_for_staff(trade: dict[str, str]) -> None:
    staff = _staff()
    assert 'href="/ops/"' in staff.get("/admin/").content.decode()
    user = user_upsert(email="ops@gavel.test", password=PASSWORD)
    member("ops@gavel.test", "seller")
    assert user.is_staff
    assert 'href="/ops/"' in _get(staff, "/portal/dashboard/").content.decode()
    assert 'href="/ops/"' not in _get(member("s@seller.test", "seller"), "/portal/dashboard/").content.decode()
