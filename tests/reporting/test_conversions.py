"""Conversions: POST/GET /api/v1/conversions and the purchase page's "Record conversion"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tenancy import market_scope
from reporting.models import Conversion
from tests.exchange.builder import SELLER_KEY, client
from tests.reporting.conftest import BOB_KEY, buyer_api, market_with, sold
from tests.sessions import member

pytestmark = pytest.mark.django_db


@pytest.fixture
def sale(db):
    market_with()
    return sold(0)


def conversions() -> list[tuple[str, str, str]]:
    with market_scope():
        return [(c.sale.public_id, c.event, f"{c.value}") for c in Conversion.objects.order_by("pk")]


def convert(sale, value: str) -> None:
    response = buyer_api().post("/api/v1/conversions", {"sale_id": sale.public_id, "value": value}, format="json")
    assert response.status_code == 201, response.content


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- the API ------------------------------------------------------------------------------------


def test_a_conversion_is_recorded_and_answered_whole(sale):
    occurred = sale.sold_at + timedelta(minutes=1)  # within the buyer clock's allowed lead
    response = buyer_api().post(
        "/api/v1/conversions",
        {"sale_id": sale.public_id, "event": "sale", "value": "120.00", "occurred_at": iso(occurred)},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    with market_scope():
        conversion = Conversion.objects.get()
    assert body == {
        "conversion_id": conversion.public_id,
        "sale_id": sale.public_id,
        "lead_id": sale.lead.public_id,
        "event": "sale",
        "value": "120.00",
        "test": False,
        "occurred_at": iso(occurred),
        "created_at": iso(conversion.created_at),
    }
    assert body["conversion_id"].startswith("cnv_")
    assert (conversion.seller_id, conversion.campaign_id, conversion.contract_id) == (
        sale.seller_id,
        sale.campaign_id,
        sale.contract_id,
    )


def test_the_same_sale_and_event_again_answers_the_first_conversion(sale):
    first = buyer_api().post("/api/v1/conversions", {"sale_id": sale.public_id, "value": "120.00"}, format="json")
    again = buyer_api().post("/api/v1/conversions", {"sale_id": sale.public_id, "value": "999.00"}, format="json")
    other = buyer_api().post(
        "/api/v1/conversions", {"sale_id": sale.public_id, "event": "policy_bound", "value": "5.00"}, format="json"
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json() == first.json()  # the first stands, value and all
    assert first.json()["event"] == "sale"  # the default event
    assert conversions() == [(sale.public_id, "sale", "120.00"), (sale.public_id, "policy_bound", "5.00")]


def test_an_idempotency_key_replays_and_refuses_another_body(sale):
    body = {"sale_id": sale.public_id, "event": "sale", "value": "50.00"}
    headers = {"HTTP_IDEMPOTENCY_KEY": "conv-1"}
    first = buyer_api().post("/api/v1/conversions", body, format="json", **headers)
    replay = buyer_api().post("/api/v1/conversions", body, format="json", **headers)
    reused = buyer_api().post("/api/v1/conversions", {**body, "value": "60.00"}, format="json", **headers)

    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert conversions() == [(sale.public_id, "sale", "50.00")]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event": "Sale!"}, "event"),
        ({"event": "x" * 33}, "event"),
        ({"event": "sold"}, "event"),
        ({"value": "abc"}, "value"),
        ({"value": "-1.00"}, "value"),
        ({"value": "1000000.01"}, "value"),
        ({"value": None}, "value"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": iso(timezone.now() + timedelta(days=1))}, "occurred_at"),
        ({"occurred_at": "2000-01-01T00:00:00Z"}, "occurred_at"),
        ({"sale_id": None}, "sale_id"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_every_bad_input_is_a_422_naming_the_field_and_writes_nothing(sale, change, field):
    body = {"sale_id": sale.public_id, "event": "sale", "value": "120.00", **change}

    response = buyer_api().post("/api/v1/conversions", body, format="json")

    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"], error
    assert conversions() == []


def test_a_missing_value_or_a_body_that_is_not_an_object_is_refused(sale):
    missing = buyer_api().post("/api/v1/conversions", {"sale_id": sale.public_id}, format="json")
    listed = buyer_api().post("/api/v1/conversions", [1, 2], format="json")

    assert missing.status_code == 422 and "value" in missing.json()["error"]["fields"]
    assert listed.status_code in (400, 422) and "error" in listed.json()
    assert conversions() == []


def test_another_buyers_or_an_unknown_sale_is_not_found(sale):
    outsider = buyer_api(BOB_KEY).post(
        "/api/v1/conversions", {"sale_id": sale.public_id, "value": "120.00"}, format="json"
    )
    unknown = buyer_api().post("/api/v1/conversions", {"sale_id": "sal_nope", "value": "120.00"}, format="json")

    assert (outsider.status_code, unknown.status_code) == (404, 404)
    assert outsider.json() == unknown.json() == {"error": {"code": "not_found", "message": "No such purchase."}}
    assert conversions() == []


def test_a_seller_key_is_refused(sale):
    response = client(SELLER_KEY).post(
        "/api/v1/conversions", {"sale_id": sale.public_id, "value": "1.00"}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_the_list_shows_the_buyers_own_filtered_by_sale_and_paginated(sale):
    second = sold(1)
    for s, value in ((sale, "1.00"), (second, "2.00")):
        convert(s, value)

    everything = buyer_api().get("/api/v1/conversions").json()
    one = buyer_api().get(f"/api/v1/conversions?sale_id={second.public_id}").json()
    page = buyer_api().get("/api/v1/conversions?limit=1").json()
    outsider = buyer_api(BOB_KEY).get("/api/v1/conversions").json()
    typo = buyer_api().get("/api/v1/conversions?sale=x")

    assert [c["value"] for c in everything["results"]] == ["2.00", "1.00"]  # newest first
    assert [c["sale_id"] for c in one["results"]] == [second.public_id]
    assert len(page["results"]) == 1 and page["next"]
    assert outsider["results"] == []
    assert typo.status_code == 422 and typo.json()["error"]["fields"] == {"sale": ["Unknown filter."]}


def test_the_schema_documents_the_endpoint_with_examples_and_errors(sale):
    schema = client().get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    post = schema["paths"]["/api/v1/conversions"]["post"]

    assert post["summary"] == "Report that a lead you bought converted"
    assert "one conversion" in post["description"].lower()
    assert {"200", "201", "401", "403", "404", "422"} <= set(post["responses"])
    assert post["responses"]["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert post["requestBody"]["content"]["application/json"]["examples"]


# --- the portal -----------------------------------------------------------------------------------


def test_the_purchase_page_loads_the_conversions_from_reporting(sale):
    page = member("owner@acme.test", "acme", "owner").get(f"/portal/purchases/{sale.public_id}/")

    assert page.status_code == 200
    assert f'hx-get="/portal/purchases/{sale.public_id}/conversions/"'.encode() in page.content


def test_a_manager_records_a_conversion_on_the_purchase(sale):
    browser = member("manager@acme.test", "acme", "manager")
    url = f"/portal/purchases/{sale.public_id}/conversions/"

    done = browser.post(url, {"event": "sale", "value": "75.50", "occurred_at": ""}, HTTP_HX_REQUEST="true")
    again = browser.post(url, {"event": "sale", "value": "1.00", "occurred_at": ""}, HTTP_HX_REQUEST="true")

    assert done.status_code == 200
    assert b"recorded: sale, $75.50" in done.content
    assert b"already has a &#x27;sale&#x27; conversion" in again.content
    assert conversions() == [(sale.public_id, "sale", "75.50")]
    listed = browser.get(url, HTTP_HX_REQUEST="true")
    assert b"$75.50" in listed.content and b"Record conversion" in listed.content


def test_without_htmx_the_form_redirects_to_the_purchase(sale):
    browser = member("manager@acme.test", "acme", "manager")

    response = browser.post(
        f"/portal/purchases/{sale.public_id}/conversions/", {"event": "lead_qualified", "value": "3", "occurred_at": ""}
    )

    assert response.status_code == 302 and response["Location"] == f"/portal/purchases/{sale.public_id}/"
    assert conversions() == [(sale.public_id, "lead_qualified", "3.00")]


def test_a_bad_form_shows_each_error_by_its_field_and_keeps_what_was_typed(sale):
    browser = member("manager@acme.test", "acme", "manager")
    url = f"/portal/purchases/{sale.public_id}/conversions/"

    typed = {"event": "Big Sale", "value": "lots", "occurred_at": "2000-01-01T10:00"}
    bad = browser.post(url, typed, HTTP_HX_REQUEST="true")
    bad_time = browser.post(url, {"event": "sale", "value": "5", "occurred_at": "noon"}, HTTP_HX_REQUEST="true")
    whole_page = browser.post(url, {"event": "sale", "value": "lots", "occurred_at": ""})

    text = bad.content.decode()
    assert "Nothing was recorded" in text
    assert 'id="event-error"' in text and 'id="value-error"' in text
    assert 'value="Big Sale"' in text and 'value="lots"' in text and 'value="2000-01-01T10:00"' in text
    assert "A conversion cannot happen before the sale." in text
    assert 'id="time-error"' in bad_time.content.decode()
    assert whole_page.status_code == 422 and b'id="value-error"' in whole_page.content
    assert conversions() == []


def test_a_time_is_read_in_the_organizations_time_zone(sale):
    browser = member("manager@acme.test", "acme", "manager")
    local = timezone.localtime(timezone.now() - timedelta(seconds=1), sale.organization.tz)
    with market_scope():
        sale.sold_at = timezone.now() - timedelta(hours=2)
        sale.save(update_fields=["sold_at"])

    browser.post(
        f"/portal/purchases/{sale.public_id}/conversions/",
        {"event": "sale", "value": "1", "occurred_at": local.strftime("%Y-%m-%dT%H:%M")},
        HTTP_HX_REQUEST="true",
    )

    with market_scope():
        recorded = Conversion.objects.get().occurred_at
    assert recorded == local.replace(second=0, microsecond=0)


def test_an_analyst_sees_the_list_without_the_form_and_cannot_record(sale):
    convert(sale, "9.00")
    browser = member("analyst@acme.test", "acme", "analyst")
    url = f"/portal/purchases/{sale.public_id}/conversions/"

    page = browser.get(url, HTTP_HX_REQUEST="true")
    refused = browser.post(url, {"event": "other", "value": "1.00"}, HTTP_HX_REQUEST="true")

    assert page.status_code == 200
    assert b"$9.00" in page.content and b"Record conversion" not in page.content
    assert b"a manager or owner records them" in page.content
    assert refused.status_code == 403
    assert conversions() == [(sale.public_id, "sale", "9.00")]


def test_an_outsider_gets_404_for_another_buyers_purchase(sale):
    browser = member("owner@bob.test", "bob", "owner")
    url = f"/portal/purchases/{sale.public_id}/conversions/"

    assert browser.get(url).status_code == 404
    assert browser.post(url, {"event": "sale", "value": "1.00"}).status_code == 404
    assert conversions() == []
