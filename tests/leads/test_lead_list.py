"""A seller's leads page and its CSV export: date range in the seller's time zone, status,
campaign, search by id or by the consumer's email or phone (matched by hash, the seller's own leads
only), bad filters as form errors, the CSV equal to the page and without the PII, reasons in words.

The market: Seller (Los Angeles time) posts on ``cmp_seller`` and ``cmp_seller_b``; Acme buys
California; Seller Two is the outsider, and posts consumer 1 too.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine

from accounts.tenancy import market_scope
from exchange.market import market_load
from exchange.models import Sale
from leads.models import Lead
from tests.exchange.builder import SELLER2_KEY, buyer, client, lead_body, load, market, sell
from tests.sessions import member

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
# November 2026: Los Angeles is on PST (UTC-8), so its midnight is 08:00 UTC.
TIMES = {
    "sold": datetime(2026, 11, 10, 7, 59, 59, tzinfo=UTC),  # Nov 9, 23:59:59 in Los Angeles
    "unsold": datetime(2026, 11, 10, 8, 0, 0, tzinfo=UTC),  # Nov 10, 00:00:00
    "other_campaign": datetime(2026, 11, 11, 8, 0, 0, tzinfo=UTC),  # Nov 11, 00:00:00
}


def full_lead(n: int, campaign: str = "cmp_seller", key: str | None = None, **lead: Any) -> dict[str, Any]:
    answer = client(*([key] if key else [])).post("/api/v1/leads", lead_body(n, campaign, **lead), format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()


@pytest.fixture
def leads() -> dict[str, Lead]:
    data = market(
        buyer("acme", "30.00", filters={"field": "state", "op": "in", "value": ["CA"]}),
        reauction_cycles=0,  # the NY leads nobody buys are unsold at once
    )
    seller = next(o for o in data["organizations"] if o["slug"] == "seller")
    seller["timezone"] = "America/Los_Angeles"
    seller["campaigns"].append({"slug": "seller-b", "id": "cmp_seller_b", "offer": "auto"})
    market_load(data)
    answers = {
        "sold": sell(1),  # consumer 1, CA: sold to Acme
        "unsold": full_lead(2, state="NY"),  # nobody buys New York
        "other_campaign": full_lead(3, "cmp_seller_b"),  # sold to Acme
        "outsider": full_lead(1, "cmp_seller2", key=SELLER2_KEY, state="NY"),  # the same consumer, another seller
    }
    assert [a["status"] for a in answers.values()] == ["sold", "unsold", "sold", "unsold"]
    with market_scope():
        found = {name: Lead.objects.get(public_id=a["lead_id"]) for name, a in answers.items()}
        for name, when in TIMES.items():
            Lead.objects.filter(pk=found[name].pk).update(created_at=when)
    return found


def get(params: dict[str, str] | None = None, path: str = "/portal/leads/", role: str = "analyst"):
    with time_machine.travel(NOW, tick=False):
        return member("s@seller.test", "seller", role).get(path, params or {})


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content.decode()[:2000]
    return [lead.public_id for lead in response.context["page"].object_list]


def csv_text(response) -> str:
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return b"".join(response.streaming_content).decode()


def test_the_list_is_the_sellers_own_leads_newest_first(leads):
    assert ids(get()) == [leads[n].public_id for n in ("other_campaign", "unsold", "sold")]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"from": "2026-11-10", "to": "2026-11-10"}, ["unsold"]),  # a Los Angeles day, both ends in
        ({"to": "2026-11-09"}, ["sold"]),
        ({"from": "2026-11-10"}, ["other_campaign", "unsold"]),
        ({"from": "2026-11-11", "to": "2026-11-11"}, ["other_campaign"]),
        ({"from": "2026-11-12"}, []),
        ({"status": "sold"}, ["other_campaign", "sold"]),
        ({"status": "unsold"}, ["unsold"]),
        ({"status": "rejected"}, []),
        ({"campaign": "cmp_seller_b"}, ["other_campaign"]),
        ({"campaign": "cmp_seller", "status": "sold"}, ["sold"]),
    ],
)
def test_each_filter_is_exact(leads, params, expected):
    assert ids(get(params)) == [leads[n].public_id for n in expected]


def test_search_finds_only_the_sellers_own_leads(leads):
    # Consumer 1 was posted by both sellers: a seller finds its own lead only.
    assert ids(get({"q": " Consumer1@Example.COM "})) == [leads["sold"].public_id]
    assert ids(get({"q": "(201) 555-0101"})) == [leads["sold"].public_id]
    assert ids(get({"q": "+1 201 555 0102"})) == [leads["unsold"].public_id]
    assert ids(get({"q": leads["unsold"].public_id})) == [leads["unsold"].public_id]
    assert ids(get({"q": leads["outsider"].public_id})) == []
    with market_scope():
        sale = Sale.objects.get(lead=leads["other_campaign"])
    assert ids(get({"q": sale.public_id})) == [leads["other_campaign"].public_id]  # the sale id on its page


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"from": "yesterday"}, "From: Enter a date as YYYY-MM-DD."),
        ({"from": "2026-11-12", "to": "2026-11-10"}, "To: The end date must be on or after the start date."),
        ({"campaign": "cmp_seller2"}, "Campaign: No such campaign of yours."),
        ({"status": "returned"}, "Status: Select a valid choice."),
        ({"q": "555"}, "Search: Phone is not a valid number."),
    ],
)
def test_a_bad_filter_is_a_form_error_with_no_rows(leads, params, error):
    for path in ("/portal/leads/", "/portal/leads.csv"):
        response = get(params, path=path)
        assert response.status_code == 400 and not response.streaming
        page = response.content.decode()
        assert error in page and not any(lead.public_id in page for lead in leads.values())


def test_the_csv_is_the_filtered_page_without_the_pii(leads):
    params = {"from": "2026-11-09", "to": "2026-11-10"}
    text = csv_text(get(params, path="/portal/leads.csv"))
    rows = list(csv.DictReader(io.StringIO(text)))

    assert [r["lead_id"] for r in rows] == ids(get(params)) == [leads["unsold"].public_id, leads["sold"].public_id]
    assert list(rows[0]) == [
        "lead_id",
        "received (America/Los_Angeles)",
        "campaign",
        "campaign_id",
        "status",
        "reason",
        "payout (USD)",
        "quality_score",
        "test",
        "state",
        "zip",
        "age",
    ]
    assert {k: rows[0][k] for k in ("campaign_id", "status", "reason", "payout (USD)", "state")} == {
        "campaign_id": "cmp_seller",
        "status": "Unsold",
        "reason": "No buyer bid on it",
        "payout (USD)": "0.00",
        "state": "NY",
    }
    assert rows[0]["received (America/Los_Angeles)"] == "2026-11-10T00:00:00-08:00"
    assert rows[1]["status"] == "Sold" and rows[1]["payout (USD)"] == "24.00"
    # What the lead's page shows and no more: no contact details, no buyer.
    for secret in ("consumer1@example.com", "consumer2@example.com", "+1201555", "Jane", "Acme", "acme"):
        assert secret not in text, secret


def test_the_page_labels_times_and_reasons(leads):
    page = get().content.decode()
    assert 'Received (<span class="tz">America/Los_Angeles</span>)' in page
    assert ">Nov 10, 00:00 PST</time>" in page and ">Nov 9, 23:59 PST</time>" in page
    assert "No buyer bid on it" in page and "no_buyers" not in page


def test_empty_states_point_to_the_posting_instructions(db):
    load(buyer("acme", "30.00"))
    page = get().content.decode()
    assert 'No leads yet. Send your first one with <a href="/portal/campaigns/cmp_seller/">' in page
    filtered = get({"status": "sold"}).content.decode()
    assert 'No leads match these filters. <a href="/portal/leads/">Clear filters</a>' in filtered


def test_a_buyer_is_told_the_page_is_for_sellers(leads):
    for path in ("/portal/leads/", "/portal/leads.csv"):
        response = member("a@acme.test", "acme").get(path)
        assert response.status_code == 403 and "This page is for sellers" in response.content.decode()
