"""A buyer's purchases page and its CSV export: date range in the buyer's time zone, status,
contract, search by id or by the consumer's email or phone (matched by hash), bad filters as form
errors, the CSV equal to the page, times labelled, reasons in words, empty states, roles.

The market: Acme (New York time) buys California on ``ctr_acme_ca`` at 30.00 and Texas on
``ctr_acme_tx`` at 25.00; Bravo buys Nevada. Sale times are set by hand around New York midnights.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine

from accounts.tenancy import market_scope
from core.pii import email_hash
from exchange.models import Sale
from exchange.returns.models import Return
from exchange.returns.services import ReturnForbidden, return_decide, return_request
from tests.exchange.builder import buyer, client, lead_body, load, org, sell
from tests.sessions import member

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
# November 2026: New York is on EST (UTC-5), so its midnight is 05:00 UTC.
TIMES = {
    1: datetime(2026, 11, 10, 4, 59, 59, tzinfo=UTC),  # Nov 9, 23:59:59 in New York
    2: datetime(2026, 11, 10, 5, 0, 0, tzinfo=UTC),  # Nov 10, 00:00:00
    3: datetime(2026, 11, 11, 4, 59, 59, tzinfo=UTC),  # Nov 10, 23:59:59
    4: datetime(2026, 11, 11, 5, 0, 0, tzinfo=UTC),  # Nov 11, 00:00:00
}


def acme() -> dict[str, Any]:
    data = buyer(
        "acme",
        contracts=[
            {
                "slug": "acme-ca",
                "id": "ctr_acme_ca",
                "offer": "auto",
                "price": "30.00",
                "filters": {"field": "state", "op": "in", "value": ["CA"]},
            },
            {
                "slug": "acme-tx",
                "id": "ctr_acme_tx",
                "offer": "auto",
                "price": "25.00",
                "filters": {"field": "state", "op": "in", "value": ["TX"]},
            },
        ],
    )
    return {**data, "timezone": "America/New_York"}


def sold(n: int, state: str) -> Sale:
    answer = sell(n, state=state)
    assert answer["status"] == "sold", answer
    with market_scope():
        sale = Sale.objects.get(lead__public_id=answer["lead_id"])
        if n in TIMES:
            Sale.objects.filter(pk=sale.pk).update(created_at=TIMES[n], sold_at=TIMES[n])
            sale.refresh_from_db()
    return sale


@pytest.fixture
def sales() -> dict[int, Sale]:
    load(acme(), buyer("bravo", "20.00", filters={"field": "state", "op": "in", "value": ["NV"]}))
    found = {1: sold(1, "CA"), 2: sold(2, "TX"), 3: sold(3, "CA"), 4: sold(4, "CA"), 5: sold(5, "NV")}
    assert found[5].organization.slug == "bravo"
    return found


def get(params: dict[str, str] | None = None, email: str = "owner@acme.test", role: str = "owner", path: str = ""):
    with time_machine.travel(NOW, tick=False):
        return member(email, "acme", role).get(path or "/portal/purchases/", params or {})


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content.decode()[:2000]
    return [s.public_id for s in response.context["page"].object_list]


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.streaming
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_list_is_the_buyers_own_purchases_newest_first(sales):
    assert ids(get()) == [sales[n].public_id for n in (4, 3, 2, 1)]  # Bravo's NV purchase is not there


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"from": "2026-11-10", "to": "2026-11-10"}, [3, 2]),  # both New York midnights are edges
        ({"from": "2026-11-10"}, [4, 3, 2]),
        ({"to": "2026-11-09"}, [1]),
        ({"from": "2026-11-11", "to": "2026-11-11"}, [4]),
        ({"from": "2026-11-12"}, []),
        ({"contract": "ctr_acme_tx"}, [2]),
        ({"contract": "ctr_acme_ca", "from": "2026-11-10"}, [4, 3]),
        ({"status": "sold"}, [4, 3, 2, 1]),
        ({"status": "returned"}, []),
    ],
)
def test_each_filter_is_exact(sales, params, expected):
    assert ids(get(params)) == [sales[n].public_id for n in expected]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (" Consumer3@Example.COM ", 3),  # trimmed and lower-cased before hashing
        ("consumer1@example.com", 1),
        ("(201) 555-0102", 2),  # consumer 2's +12015550102, written the American way
        ("+1 201 555 0104", 4),
        ("2015550101", 1),
    ],
)
def test_search_by_email_or_phone_matches_the_normalized_hash(sales, q, expected):
    assert ids(get({"q": q})) == [sales[expected].public_id]


def test_search_by_lead_or_sale_id(sales):
    assert ids(get({"q": sales[2].lead.public_id})) == [sales[2].public_id]
    assert ids(get({"q": sales[3].public_id.upper()})) == [sales[3].public_id]
    # Another buyer's sale, lead or consumer: nothing, as for one that does not exist.
    assert ids(get({"q": sales[5].public_id})) == []
    assert ids(get({"q": sales[5].lead.public_id})) == []
    page = get({"q": "consumer5@example.com"})
    assert ids(page) == [] and sales[5].email_hash == email_hash("consumer5@example.com")
    assert "No purchases match these filters." in page.content.decode()
    assert 'href="/portal/purchases/">Clear filters</a>' in page.content.decode()


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"from": "2026-13-01"}, "From: Enter a date as YYYY-MM-DD."),
        ({"to": "11/10/2026"}, "To: Enter a date as YYYY-MM-DD."),
        ({"from": "2026-11-11", "to": "2026-11-10"}, "To: The end date must be on or after the start date."),
        ({"contract": "ctr_bravo"}, "Contract: No such contract of yours."),
        ({"status": "bogus"}, "Status: Select a valid choice. bogus is not one of the available choices."),
        ({"q": "hello"}, "Search: Phone is not a phone number."),
        ({"q": "someone@localhost"}, "Search: Email must have a domain such as example.com after the @."),
    ],
)
def test_a_bad_filter_is_a_form_error_with_no_rows(sales, params, error):
    response = get(params)
    assert response.status_code == 400
    page = response.content.decode()
    assert "These filters cannot be used:" in page and error in page
    assert not any(s.public_id in page for s in sales.values())
    assert "Download CSV" not in page  # nothing to download until the filters read
    export = get(params, path="/portal/purchases.csv")  # the export answers the same page
    assert export.status_code == 400 and not export.streaming


def test_the_csv_has_the_filtered_rows_with_the_contact_details_bought(sales):
    params = {"contract": "ctr_acme_ca", "from": "2026-11-10"}
    page = get(params)
    rows = csv_rows(get(params, path="/portal/purchases.csv"))

    assert [r["sale_id"] for r in rows] == ids(page) == [sales[4].public_id, sales[3].public_id]
    first = rows[0]
    assert {k: first[k] for k in ("lead_id", "contract", "contract_id", "offer", "status", "price (USD)", "test")} == {
        "lead_id": sales[4].lead.public_id,
        "contract": "acme-ca",
        "contract_id": "ctr_acme_ca",
        "offer": "auto",
        "status": "Sold",
        "price (USD)": "30.00",
        "test": "no",
    }
    assert first["bought (America/New_York)"] == "2026-11-11T00:00:00-05:00"
    assert (first["email"], first["phone"], first["first_name"], first["state"]) == (
        "consumer4@example.com",
        "+12015550104",
        "Jane",
        "CA",
    )
    assert first["consent_ip"] == "203.0.113.9"


def test_the_csv_of_everything_and_of_a_returned_lead(sales):
    ret = return_request(
        buyer=org("acme"), sale_public_id=sales[1].public_id, reason="bad_phone", note="Dead.", now=TIMES[1]
    )
    return_decide(ret=ret, approve=True, user=None)

    rows = csv_rows(get(path="/portal/purchases.csv"))

    assert [r["sale_id"] for r in rows] == [sales[n].public_id for n in (4, 3, 2, 1)]
    returned = rows[-1]
    assert returned["status"] == "Returned"
    # Given back: the buyer paid nothing for the contact details, the CSV does not carry them.
    assert (returned["email"], returned["phone"], returned["first_name"], returned["consent_ip"]) == ("", "", "", "")
    assert returned["state"] == "CA"


def test_a_formula_in_a_lead_is_not_run_by_a_spreadsheet(sales):
    answer = client().post("/api/v1/leads", lead_body(7, first_name="=HYPERLINK(1)"), format="json").json()
    assert answer["status"] == "sold", answer
    rows = csv_rows(get({"q": "consumer7@example.com"}, path="/portal/purchases.csv"))
    assert rows[0]["first_name"] == "'=HYPERLINK(1)"
    assert rows[0]["phone"] == "+12015550107"  # a signed number is left alone


def test_times_are_in_the_buyers_zone_and_labelled(sales):
    page = get().content.decode()
    assert 'Bought (<span class="tz">America/New_York</span>)' in page
    assert ">Nov 10, 00:00 EST</time>" in page and ">Nov 9, 23:59 EST</time>" in page


def test_empty_states_say_what_to_do(db):
    load(buyer("acme", contracts=[]), buyer("bravo", "20.00"))
    page = member("owner@acme.test", "acme").get("/portal/purchases/").content.decode()
    assert 'No purchases yet. <a href="/portal/contracts/">Set up a contract</a> to start buying leads.' in page
    with_contract = member("owner@bravo.test", "bravo").get("/portal/purchases/").content.decode()
    assert "No purchases yet. Your contracts buy when they win an auction" in with_contract


def test_an_analyst_reads_and_exports_but_cannot_return(sales):
    assert ids(get({"status": "sold"}, email="an@acme.test", role="analyst")) == [
        sales[n].public_id for n in (4, 3, 2, 1)
    ]
    assert len(csv_rows(get(email="an@acme.test", role="analyst", path="/portal/purchases.csv"))) == 4
    analyst = member("an@acme.test", "acme", "analyst")

    refused = analyst.post(f"/portal/purchases/{sales[4].public_id}/", {"reason": "bad_phone", "note": "x"})

    assert refused.status_code == 403 and "needs the <strong>manager</strong> role" in refused.content.decode()
    with market_scope():
        analyst_user = refused.wsgi_request.user
        with pytest.raises(ReturnForbidden):  # the service refuses an analyst too, whatever calls it
            return_request(
                buyer=org("acme"), sale_public_id=sales[4].public_id, reason="bad_phone", note="x", user=analyst_user
            )
        assert Return.objects.count() == 0


def test_a_manager_returns_a_purchase(sales):
    manager = member("m@acme.test", "acme", "manager")
    with time_machine.travel(TIMES[4], tick=False):  # within the return window
        response = manager.post(f"/portal/purchases/{sales[4].public_id}/", {"reason": "bad_phone", "note": "Dead"})
    assert response.status_code == 302
    with market_scope():
        assert list(Return.objects.values_list("sale_id", "reason")) == [(sales[4].pk, "bad_phone")]


def test_a_seller_is_told_the_page_is_for_buyers(sales):
    for path in ("/portal/purchases/", "/portal/purchases.csv"):
        response = member("s@seller.test", "seller").get(path)
        assert response.status_code == 403 and "This page is for buyers" in response.content.decode()
