"""GET /api/v1/purchases[/{id}] and /api/v1/returns: a buyer's leads with full data and consent,
its filters (a bad one is a 422 naming it), and outsiders answered 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import api_key_create
from accounts.tenancy import market_scope
from exchange.models import Sale
from exchange.returns.services import return_decide, return_request
from tests.billing.conftest import ACME_KEY, BRAVO_KEY, return_post, sold
from tests.exchange.builder import CONSENT, SELLER_KEY, client, lead_body, org

pytestmark = pytest.mark.django_db


def purchases(key: str = ACME_KEY, **params: str) -> dict:
    response = client(key).get("/api/v1/purchases", params)
    assert response.status_code == 200, response.content
    return response.json()


def ids(page: dict) -> list[str]:
    return [p["sale_id"] for p in page["results"]]


def sold_on(sale: Sale, when) -> None:
    with market_scope():
        Sale.objects.filter(pk=sale.pk).update(sold_at=when)


def test_a_buyer_lists_its_purchases_with_the_decrypted_lead_and_the_consent(market):
    first, second = sold(1), sold(2)
    sold(3, state="TX")  # Bravo's

    page = purchases()

    assert ids(page) == [second.public_id, first.public_id]  # newest first; Bravo's is not there
    item = page["results"][1]
    assert item["lead"] == {
        "state": "CA",
        "zip": "94107",
        "age": 34,
        "email": "consumer1@example.com",
        "phone": "+12015550101",
        "first_name": "Jane",
    }
    assert list(item["lead"]) == ["state", "zip", "age", "email", "phone", "first_name"]  # the offer's order
    assert item["consent"]["text"] == CONSENT["text"] and item["consent"]["ip"] == CONSENT["ip"]
    assert item["consent"]["captured_at"] == "2026-11-22T10:00:00Z"
    assert {k: item[k] for k in ("sale_id", "lead_id", "offer", "contract", "price", "status", "test", "return")} == {
        "sale_id": first.public_id,
        "lead_id": first.lead.public_id,
        "offer": "auto",
        "contract": "ctr_acme",
        "price": "30.00",
        "status": "sold",
        "test": False,
        "return": None,
    }
    assert item["pii_available"] is True
    assert item["sold_at"] and item["returnable_until"]
    assert page["next"] is None


def test_a_purchase_shows_its_return(market, operator):
    sale = sold(1)
    ret = return_request(buyer=org("acme"), sale_public_id=sale.public_id, reason="fraud", note="Bot.")
    assert client(ACME_KEY).get(f"/api/v1/purchases/{sale.public_id}").json()["return"]["status"] == "requested"

    return_decide(ret=ret, approve=True, user=operator)

    item = client(ACME_KEY).get(f"/api/v1/purchases/{sale.public_id}").json()
    assert item["status"] == "returned"
    assert {k: item["return"][k] for k in ("return_id", "status", "reason")} == {
        "return_id": ret.public_id,
        "status": "approved",
        "reason": "fraud",
    }
    assert "email" not in item["lead"] and item["consent"] is None  # returned: the buyer paid nothing for it
    assert ids(purchases(status="returned")) == [sale.public_id]
    assert ids(purchases(status="sold")) == []


def test_the_returns_endpoints_list_and_get_the_buyers_returns(market):
    sale = sold(1)
    created = return_post(sale.public_id, reason="out_of_area", note="Lives in Nevada.").json()

    listed = client(ACME_KEY).get("/api/v1/returns").json()["results"]
    one = client(ACME_KEY).get(f"/api/v1/returns/{created['return_id']}")

    assert listed == [created]
    assert one.status_code == 200 and one.json() == created
    assert (created["sale_id"], created["lead_id"], created["refund"]) == (sale.public_id, sale.lead.public_id, "30.00")
    assert client(BRAVO_KEY).get(f"/api/v1/returns/{created['return_id']}").status_code == 404
    assert client(BRAVO_KEY).get("/api/v1/returns").json()["results"] == []


# --- filters -----------------------------------------------------------------------------------


def test_filters_by_date_in_the_buyers_time_zone_offer_contract_and_status(market):
    old, mid, new = sold(1), sold(2), sold(3)
    tz = org("acme").tz
    now = timezone.now().astimezone(tz)
    sold_on(old, now - timedelta(days=10))
    sold_on(mid, now - timedelta(days=5))
    day = (now - timedelta(days=5)).date()

    assert ids(purchases(**{"from": str(day)})) == [new.public_id, mid.public_id]
    assert ids(purchases(to=str(day))) == [mid.public_id, old.public_id]
    assert ids(purchases(**{"from": str(day), "to": str(day)})) == [mid.public_id]
    assert ids(purchases(offer="auto")) == [new.public_id, mid.public_id, old.public_id]
    assert ids(purchases(contract="ctr_acme", status="sold")) == [new.public_id, mid.public_id, old.public_id]


def test_a_day_boundary_is_midnight_in_the_buyers_time_zone(market):
    sale = sold(1)
    tz = org("acme").tz
    local_midnight = timezone.now().astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    sold_on(sale, local_midnight - timedelta(seconds=1))  # the evening before, locally
    yesterday = (local_midnight - timedelta(days=1)).date()

    assert ids(purchases(to=str(yesterday))) == [sale.public_id]
    assert ids(purchases(**{"from": str(local_midnight.date())})) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-11-22T10:00:00Z"}, "from"),
        ({"from": "11/22/2026"}, "from"),  # ISO dates only
        ({"from": "2026-11-22", "to": "2026-11-21"}, "to"),
        ({"offer": "no-such-offer"}, "offer"),
        ({"offer": "not a slug!"}, "offer"),
        ({"contract": "ctr_bravo"}, "contract"),  # another buyer's contract is an unknown one
        ({"contract": "ctr_nope"}, "contract"),
        ({"status": "reserved"}, "status"),
        ({"form": "2026-11-22"}, "form"),  # a typo is refused, not ignored
    ],
)
def test_a_bad_filter_is_a_422_naming_the_parameter(market, params, field):
    sold(1)
    response = client(ACME_KEY).get("/api/v1/purchases", params)
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == [field]


def test_pages_follow_the_cursor(market):
    sales = [sold(n) for n in range(5)]
    first = purchases(limit="2")
    assert ids(first) == [sales[4].public_id, sales[3].public_id]
    second = client(ACME_KEY).get(first["next"]).json()
    assert ids(second) == [sales[2].public_id, sales[1].public_id]


def test_the_list_costs_the_same_queries_for_one_purchase_or_many(market, django_assert_max_num_queries):
    sold(1)
    c = client(ACME_KEY)
    c.get("/api/v1/purchases")  # warm the key cache
    # One query for the sales with their leads, consents, contracts, offers and campaigns; one for their returns.
    with django_assert_max_num_queries(2):
        assert len(c.get("/api/v1/purchases").json()["results"]) == 1
    for n in range(2, 8):
        sold(n)
    with django_assert_max_num_queries(2):
        assert len(c.get("/api/v1/purchases").json()["results"]) == 7


# --- what is not a purchase, and who may not see one --------------------------------------------


def test_another_buyers_purchase_is_not_found(market):
    sale = sold(1)  # Acme's
    response = client(BRAVO_KEY).get(f"/api/v1/purchases/{sale.public_id}")
    missing = client(BRAVO_KEY).get("/api/v1/purchases/sal_nope")
    assert response.status_code == missing.status_code == 404
    assert response.json() == missing.json()
    assert purchases(BRAVO_KEY)["results"] == []


def test_a_released_sale_is_not_a_purchase(market):
    sale = sold(1)
    with market_scope():
        Sale.objects.filter(pk=sale.pk).update(status="released")
    assert client(ACME_KEY).get(f"/api/v1/purchases/{sale.public_id}").status_code == 404
    assert purchases()["results"] == []


def test_test_purchases_are_listed_as_test(market):
    answer = client().post("/api/v1/leads", lead_body(9, test=True), format="json").json()
    (item,) = purchases()["results"]
    assert (item["lead_id"], item["test"]) == (answer["lead_id"], True)


def test_keys_without_the_purchases_scope_sellers_and_strangers_are_refused(market):
    sold(1)
    _, reports_only = api_key_create(organization=org("acme"), name="ro", scopes=["reports"])
    assert client(reports_only).get("/api/v1/purchases").status_code == 403
    assert client(SELLER_KEY).get("/api/v1/purchases").status_code == 403
    assert APIClient().get("/api/v1/purchases").status_code == 401
    assert client("gvl_not_a_real_key_000000000000").get("/api/v1/purchases").status_code == 401


def test_the_openapi_schema_describes_the_buyer_endpoints(market):
    schema = client(ACME_KEY).get("/api/v1/schema", HTTP_ACCEPT="application/json").content.decode()
    for path in ("/api/v1/purchases", "/api/v1/purchases/{sale_id}", "/api/v1/purchases/{sale_id}/return"):
        assert path in schema
    assert "return_window_closed" in schema and "not_interested_at_capture" in schema
