"""GET /api/v1/reports: every figure of a seller's and a buyer's report against the ledger and the
raw rows, the fold's idempotence, late returns, time zones, bad parameters and outsiders."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from accounts.models import Organization
from accounts.services import api_key_create
from accounts.tenancy import market_scope
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction
from exchange import sql
from exchange.models import Ping, Sale
from exchange.returns.services import return_decide, return_request
from exchange.services.retention import pings_prune
from reporting.models import Rollup
from reporting.rollups import rollups_fold, rollups_rebuild
from reporting.services import conversion_record
from tests.exchange.builder import SELLER2_KEY, buyer, client, lead_body, load, ping

pytestmark = pytest.mark.django_db

SELLER_REPORTS = "gvl_test_reports_seller_00000000"
SELLER2_REPORTS = "gvl_test_reports_seller2_0000000"
B1_REPORTS = "gvl_test_reports_b1_00000000000"
NO_SCOPE = "gvl_test_reports_noscope_0000000"
T0 = datetime(2026, 12, 1, 15, 10, tzinfo=UTC)


def _keys() -> None:
    for slug, key, scopes in (
        ("seller", SELLER_REPORTS, ["reports"]),
        ("seller2", SELLER2_REPORTS, ["reports"]),
        ("b1", B1_REPORTS, ["reports"]),
        ("seller", NO_SCOPE, ["leads"]),
    ):
        api_key_create(organization=Organization.objects.get(slug=slug), name=key, scopes=scopes, raw_key=key)


def _lead(n: int, *, sub_id1: str, key: str = "gvl_test_seller_00000000000000", campaign: str = "cmp_seller") -> str:
    body = {**lead_body(n, campaign=campaign), "tracking": {"sub_id1": sub_id1}}
    answer = client(key).post("/api/v1/leads", body, format="json").json()
    assert answer["status"] == "sold", answer
    return str(answer["lead_id"])


def _fold() -> None:
    rollups_fold(now=timezone.now() + timedelta(minutes=1))


def _report(key: str, **params: str) -> dict[str, Any]:
    response = client(key).get("/api/v1/reports", params)
    assert response.status_code == 200, response.content
    return dict(response.json())


def _sale(lead_id: str) -> Sale:
    with market_scope():
        return Sale.objects.get(lead__public_id=lead_id)


def _ledger(slug: str, kind: str, tx_kind: str) -> Decimal:
    with market_scope():
        entries = LedgerEntry.objects.filter(
            account__organization__slug=slug, account__kind=kind, transaction__kind=tx_kind
        )
        return sum((e.amount for e in entries), Decimal(0))


@pytest.fixture
def trade() -> dict[str, str]:
    """On 1 December 2026 (UTC): seller sells 3 leads (b1 takes two, its daily cap, then b2),
    pings once without posting; seller2 sells one lead to b2. Then b1 returns lead 0 and b2
    reports a conversion on lead 2."""
    with time_machine.travel(T0, tick=False):
        load(
            buyer("b1", "10.00", caps={"day": 2}, return_window_hours=72),
            buyer("b2", "8.00", return_window_hours=72),
        )
        _keys()
        leads = {
            "l0": _lead(0, sub_id1="fb"),
            "l1": _lead(1, sub_id1="gg"),
            "l2": _lead(2, sub_id1="fb"),
            "other": _lead(4, sub_id1="zz", key=SELLER2_KEY, campaign="cmp_seller2"),
        }
        assert ping(3)["status"] == "accepted"  # a ping never posted
        b1, b2 = Organization.objects.get(slug="b1"), Organization.objects.get(slug="b2")
        ret = return_request(buyer=b1, sale_public_id=_sale(leads["l0"]).public_id, reason="bad_phone")
        return_decide(ret=ret, approve=True, user=None)
        conversion_record(buyer=b2, sale_public_id=_sale(leads["l2"]).public_id, event="sale", value="120.00")
        _fold()
    return leads


DAY = {"from": "2026-12-01", "to": "2026-12-01"}


def test_seller_report_equals_the_ledger_and_the_raw_rows(trade: dict[str, str]) -> None:
    report = _report(SELLER_REPORTS, **DAY, group_by="day,sub_id1")

    assert report["from"] == report["to"] == "2026-12-01"
    assert report["timezone"] == "UTC"
    assert report["group_by"] == ["day", "sub_id1"]
    figures = {"pings": 0, "accepted": 0, "posted": 0, "sold": 0, "unsold": 0, "returned": 0, "conversions": 0}
    ping_row = {**figures, "pings": 1, "accepted": 1, "amount": "0.00", "returned_amount": "0.00"}
    assert report["rows"] == [
        {"day": "2026-12-01", "sub_id1": "", **ping_row, "conversion_value": "0.00"},
        {
            "day": "2026-12-01",
            "sub_id1": "fb",
            **figures,
            "pings": 2,
            "accepted": 2,
            "posted": 2,
            "sold": 2,
            "returned": 1,
            "conversions": 1,
            "amount": "14.40",
            "returned_amount": "8.00",
            "conversion_value": "120.00",
        },
        {
            "day": "2026-12-01",
            "sub_id1": "gg",
            **figures,
            "pings": 1,
            "accepted": 1,
            "posted": 1,
            "sold": 1,
            "amount": "8.00",
            "returned_amount": "0.00",
            "conversion_value": "0.00",
        },
    ]
    totals = report["totals"]
    # Against the ledger: the seller's payable, sales and returns.
    assert Decimal(totals["amount"]) == _ledger("seller", LedgerAccount.Kind.SELLER_PAYABLE, "sale") == Decimal("22.40")
    assert -Decimal(totals["returned_amount"]) == _ledger(
        "seller", LedgerAccount.Kind.SELLER_PAYABLE, LedgerTransaction.Kind.RETURN
    )
    # Against the raw rows.
    with market_scope():
        seller = Organization.objects.get(slug="seller")
        pings = Ping.objects.filter(organization=seller)
        assert totals["pings"] == pings.count() == 4
        assert totals["accepted"] == pings.filter(status="accepted").count()
        assert totals["posted"] == pings.filter(posted_at__isnull=False).count() == 3
        assert totals["sold"] == Sale.objects.filter(seller=seller, status__in=["sold", "returned"]).count()
        assert totals["returned"] == Sale.objects.filter(seller=seller, status="returned").count() == 1
    assert totals["conversions"] == 1 and totals["conversion_value"] == "120.00"
    assert totals["unsold"] == 0


def test_buyer_report_equals_the_ledger_and_the_waterfalls(trade: dict[str, str]) -> None:
    report = _report(B1_REPORTS, **DAY, group_by="contract")

    with market_scope():
        steps = [s for p in Ping.objects.all() for s in p.waterfall if s.get("contract") == "ctr_b1"]
    assert report["rows"] == [
        {
            "contract": "ctr_b1",
            "evaluated": len(steps),
            "bids": sum(1 for s in steps if s["reason"] in ("won", "outbid")),
            "won": sum(1 for s in steps if s["reason"] == "won"),
            "sold": 2,
            "returned": 1,
            "conversions": 0,
            "amount": "20.00",
            "returned_amount": "10.00",
            "conversion_value": "0.00",
        }
    ]
    assert len(steps) == 5 and report["rows"][0]["won"] == 2
    assert -_ledger("b1", LedgerAccount.Kind.BUYER_BALANCE, "sale") == Decimal(report["totals"]["amount"])
    assert _ledger("b1", LedgerAccount.Kind.BUYER_BALANCE, "return") == Decimal(report["totals"]["returned_amount"])


def test_by_source_for_a_buyer_and_both_sides_sum_to_the_platform_margin(trade: dict[str, str]) -> None:
    raw = "gvl_test_reports_b2_00000000000"
    api_key_create(organization=Organization.objects.get(slug="b2"), name="r2", scopes=["reports"], raw_key=raw)
    with market_scope():
        source = {c: t for c, t in Sale.objects.values_list("campaign__public_id", "campaign__source_token")}
    rows = _report(raw, **DAY, group_by="source")["rows"]
    assert [(r["source"], r["sold"], r["amount"], r["conversions"]) for r in rows] == sorted(
        [(source["cmp_seller"], 1, "8.00", 1), (source["cmp_seller2"], 1, "8.00", 0)]
    )
    with market_scope():
        margins = Rollup.objects.filter(contract__isnull=False, test=False).values_list("margin", flat=True)
        assert sum(margins) == _ledger_platform()


def _ledger_platform() -> Decimal:
    with market_scope():
        return sum(
            (
                e.amount
                for e in LedgerEntry.objects.filter(
                    account__kind=LedgerAccount.Kind.PLATFORM_REVENUE, transaction__kind="sale"
                )
            ),
            Decimal(0),
        )


def test_folding_again_changes_nothing_and_a_rebuild_gives_the_same(trade: dict[str, str]) -> None:
    def snapshot() -> list[tuple[Any, ...]]:
        fields = [f.attname for f in Rollup._meta.concrete_fields if f.name != "id"]
        return sorted(Rollup.objects.values_list(*fields), key=str)

    before = snapshot()
    _fold()
    _fold()
    assert snapshot() == before
    rollups_rebuild(start=T0 - timedelta(days=1), end=T0 + timedelta(days=1), now=T0)
    assert snapshot() == before


def test_a_late_return_changes_the_leads_hour(trade: dict[str, str]) -> None:
    later = T0 + timedelta(days=2)
    with time_machine.travel(later, tick=False):
        b1 = Organization.objects.get(slug="b1")
        ret = return_request(buyer=b1, sale_public_id=_sale(trade["l1"]).public_id, reason="fraud")
        return_decide(ret=ret, approve=True, user=None)
        _fold()
    day1 = _report(SELLER_REPORTS, **DAY)["totals"]
    assert (day1["returned"], day1["returned_amount"]) == (2, "16.00")
    day3 = _report(SELLER_REPORTS, **{"from": "2026-12-03", "to": "2026-12-03"})
    assert day3["rows"] == [] and day3["totals"]["returned"] == 0


def test_days_are_the_organizations(db: None) -> None:
    # 23:30 in New York on 1 December is 04:30 UTC on the 2nd.
    with time_machine.travel(datetime(2026, 12, 2, 4, 30, tzinfo=UTC), tick=False):
        load(buyer("b1", "10.00"))
        _keys()
        Organization.objects.filter(slug="seller").update(timezone="America/New_York")
        _lead(0, sub_id1="ny")
        _fold()
    first = _report(SELLER_REPORTS, **DAY, group_by="day,hour")
    assert first["timezone"] == "America/New_York"
    assert [(r["day"], r["hour"], r["sold"], r["amount"]) for r in first["rows"]] == [
        ("2026-12-01", "2026-12-01T23:00:00-05:00", 1, "8.00")
    ]
    assert _report(SELLER_REPORTS, **{"from": "2026-12-02", "to": "2026-12-02"})["totals"]["sold"] == 0


def test_an_outsider_sees_only_its_own_numbers(trade: dict[str, str]) -> None:
    report = _report(SELLER2_REPORTS, **DAY, group_by="campaign")
    assert [(r["campaign"], r["pings"], r["sold"], r["amount"]) for r in report["rows"]] == [
        ("cmp_seller2", 1, 1, "6.40")
    ]
    assert report["totals"]["returned"] == 0 and report["totals"]["conversions"] == 0
    # A seller-only organization has no buyer side.
    response = client(SELLER2_REPORTS).get("/api/v1/reports", {**DAY, "side": "buyer"})
    assert response.status_code == 422 and "side" in response.json()["error"]["fields"]


def test_csv_equals_json(trade: dict[str, str]) -> None:
    params = {**DAY, "group_by": "day,campaign,sub_id1"}
    as_json = _report(SELLER_REPORTS, **params)
    response = client(SELLER_REPORTS).get("/api/v1/reports", {**params, "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows == [{k: str(v) for k, v in row.items()} for row in as_json["rows"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "2026-12-01"}, "from"),
        ({"from": "2026-12-01"}, "to"),
        ({"from": "12/01/2026", "to": "2026-12-01"}, "from"),
        ({"from": "2026-12-02", "to": "2026-12-01"}, "to"),
        ({"from": "2025-11-30", "to": "2026-12-01"}, "to"),  # 367 days
        ({**DAY, "group_by": "day,contract"}, "group_by"),  # a buyer's dimension
        ({**DAY, "group_by": "week"}, "group_by"),
        ({**DAY, "group_by": "day,day"}, "group_by"),
        ({**DAY, "format": "xml"}, "format"),
        ({**DAY, "side": "operator"}, "side"),
        ({**DAY, "test": "yes"}, "test"),
        ({**DAY, "form": "2026-12-01"}, "form"),
    ],
)
def test_bad_parameters_are_422(trade: dict[str, str], params: dict[str, str], field: str) -> None:
    response = client(SELLER_REPORTS).get("/api/v1/reports", params)
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"]


def test_a_full_year_is_allowed(trade: dict[str, str]) -> None:
    assert _report(SELLER_REPORTS, **{"from": "2025-12-01", "to": "2026-11-30"})["totals"]["pings"] == 0


def test_keys_without_the_scope_or_without_a_key(trade: dict[str, str]) -> None:
    assert client(NO_SCOPE).get("/api/v1/reports", DAY).status_code == 403
    response = client("gvl_nonsense_000000000000000000").get("/api/v1/reports", DAY)
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"


def test_pings_prune_keeps_what_a_lead_or_sale_refers_to(trade: dict[str, str]) -> None:
    with market_scope():
        assert Ping.objects.count() == 5
        assert pings_prune(before=T0 + timedelta(seconds=1)) == 1  # only the ping never posted
        assert Ping.objects.count() == 4
    before = _report(SELLER_REPORTS, **DAY)["totals"]
    _fold()
    assert _report(SELLER_REPORTS, **DAY)["totals"] == before  # the rollups keep its figures


@pytest.mark.skipif(connection.vendor != "postgresql", reason="compares the two dialects' reads")
def test_the_portable_waterfall_reads_give_what_postgresql_gives(trade: dict[str, str]) -> None:
    """The embedded default's fold (exchange.sql, ORM and Python) and PostgreSQL's (one statement
    each) count the same steps — a waterfall's count of contracts the index left out included."""
    load(buyer("texan", "30.00", filters={"field": "state", "op": "eq", "value": "TX"}))
    answer = ping(5)  # a Californian lead: texan is left out by the offer's index
    with market_scope():
        assert Ping.objects.get(public_id=answer["ping_id"]).waterfall[-1] == {
            "reason": "filtered:state",
            "contracts": 1,
        }
        for postgres, portable in [
            (sql.ping_facts_buyer_postgres, sql.ping_facts_buyer_portable),
            (sql.ping_reason_facts_postgres, sql.ping_reason_facts_portable),
        ]:
            rows = postgres(after_id=0, upto_id=2**62, hours=None)
            assert len(rows) >= 3
            assert sorted(portable(after_id=0, upto_id=2**62, hours=None)) == sorted(rows)
