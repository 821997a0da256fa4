"""The post and the full lead: checks against the ping, bad input that changes nothing, routing."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.tenancy import market_scope
from billing.models import LedgerAccount, LedgerEntry
from contracts.models import CapCounter
from exchange.models import Ping, Sale
from leads.crypto import pii_decrypt
from leads.models import ConsentRecord, Lead
from tests.exchange.builder import (
    SELLER2_KEY,
    buyer,
    client,
    lead_body,
    load,
    ping,
    ping_body,
    post,
    post_body,
    sell,
)

pytestmark = pytest.mark.django_db


def state() -> dict[str, object]:
    """Everything a bad request must leave alone."""
    with market_scope():
        return {
            "leads": Lead.objects.count(),
            "consents": ConsentRecord.objects.count(),
            "sales": list(Sale.objects.values_list("public_id", "status")),
            "posted": list(Ping.objects.values_list("public_id", "posted_at")),
            "pings": Ping.objects.count(),
            "entries": LedgerEntry.objects.count(),
            "balances": list(LedgerAccount.objects.order_by("pk").values_list("balance", "held")),
            "counters": list(CapCounter.objects.values_list("count", "spend")),
        }


def error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


@pytest.fixture
def market():
    load(buyer("a", "30.00", caps={"day": 10}), buyer("b", "20.00"))


def test_post_sells_stores_encrypted_pii_and_an_immutable_consent(market):
    answer = ping(1)
    sold = post(answer["ping_id"], 1)

    assert sold["status"] == "sold" and sold["payout"] == "24.00" and sold["lead_id"].startswith("led_")
    with market_scope():
        lead = Lead.objects.get(public_id=sold["lead_id"])
        row = Lead.objects.filter(pk=lead.pk).values_list("pii_encrypted", "data").get()
    assert "consumer1@example.com" not in json.dumps(row)
    assert pii_decrypt(lead.pii_encrypted) == {
        "email": "consumer1@example.com",
        "phone": "+12015550101",
        "first_name": "Jane",
    }
    assert lead.data == {"state": "CA", "zip": "94107", "age": 34}
    with market_scope():
        consent = ConsentRecord.objects.get(lead=lead)
    assert (consent.text, consent.ip) == ("I agree to be contacted.", "203.0.113.9")
    with pytest.raises(ValueError, match="immutable"):
        consent.save()
    with pytest.raises(ValueError, match="immutable"):
        consent.delete()


def test_get_lead_shows_status_sales_and_payout_without_the_buyer(market):
    sold = sell(1)
    response = client().get(f"/api/v1/leads/{sold['lead_id']}")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["payout"], body["campaign"], body["offer"]) == ("sold", "24.00", "cmp_seller", "auto")
    assert [(s["status"], s["payout"]) for s in body["sales"]] == [("sold", "24.00")]
    assert "organization" not in json.dumps(body) and "ctr_" not in json.dumps(body)


def test_another_seller_cannot_see_or_post_my_ping_or_lead(market):
    answer = ping(1)
    before = state()
    response = client(SELLER2_KEY).post("/api/v1/post", post_body(answer["ping_id"], 1), format="json")
    assert response.status_code == 404 and error(response)["code"] == "not_found"
    assert state() == before
    sold = post(answer["ping_id"], 1)
    assert client(SELLER2_KEY).get(f"/api/v1/leads/{sold['lead_id']}").status_code == 404
    assert client().get("/api/v1/leads/led_nope").status_code == 404


def test_a_campaign_of_another_seller_is_like_a_missing_one(market):
    mine = client(SELLER2_KEY).post("/api/v1/ping", ping_body(1, campaign="cmp_seller"), format="json")
    missing = client(SELLER2_KEY).post("/api/v1/ping", ping_body(1, campaign="cmp_nope"), format="json")
    assert mine.status_code == missing.status_code == 422
    assert (
        error(mine)
        == error(missing)
        == {
            "code": "validation_error",
            "message": "The request is not valid.",
            "fields": {"campaign": ["No such campaign."]},
        }
    )


def test_a_replayed_post_is_409_and_changes_nothing(market):
    answer = ping(1)
    post(answer["ping_id"], 1)
    before = state()
    response = client().post("/api/v1/post", post_body(answer["ping_id"], 1), format="json")
    assert response.status_code == 409 and error(response)["code"] == "ping_already_posted"
    assert state() == before


def test_an_expired_ping_is_410(market):
    answer = ping(1)
    with market_scope():
        Ping.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    before = state()
    response = client().post("/api/v1/post", post_body(answer["ping_id"], 1), format="json")
    assert response.status_code == 410 and error(response)["code"] == "ping_expired"
    assert state() == before


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"state": "NV"}, {"lead.state": ["Differs from the ping."]}),
        ({"age": 35}, {"lead.age": ["Differs from the ping."]}),
        ({"email": "someone@else.com"}, {"lead.email": ["Does not match the ping's consumer.email_sha256."]}),
        ({"phone": "+12015550199"}, {"lead.phone": ["Does not match the ping's consumer.phone_sha256."]}),
    ],
)
def test_a_post_that_differs_from_its_ping_is_422_ping_mismatch(market, change, fields):
    answer = ping(1)
    before = state()
    response = client().post("/api/v1/post", post_body(answer["ping_id"], 1, **change), format="json")
    assert response.status_code == 422
    assert error(response) == {
        "code": "ping_mismatch",
        "message": "The post does not match its ping.",
        "fields": fields,
    }
    assert state() == before
    assert post(answer["ping_id"], 1)["status"] == "sold"  # the ping is still good


def test_the_email_is_compared_after_normalization(market):
    answer = ping(1)
    assert post(answer["ping_id"], 1, email="  Consumer1@Example.COM ", phone="(201) 555-0101")["status"] == "sold"


BAD_PINGS = [
    (
        {"campaign": "cmp_seller", "lead": {"state": "CA", "zip": "94107", "email": "a@b.co"}},
        "lead.email",
        "PII is not allowed in a ping.",
    ),
    ({"campaign": "cmp_seller", "lead": {"zip": "94107"}}, "lead.state", "This field is required."),
    ({"campaign": "cmp_seller", "lead": {"state": "CA", "zip": "94107", "age": "old"}}, "lead.age", None),
    (
        {"campaign": "cmp_seller", "lead": {"state": "CA", "zip": "94107", "colour": "red"}},
        "lead.colour",
        "Unknown field.",
    ),
    ({"campaign": "cmp_seller", "lead": "CA"}, "lead", None),
    ({"campaign": "cmp_seller", "lead": {"state": "CA", "zip": "94107"}, "extra": 1}, "extra", "Unknown field."),
    ({"campaign": "cmp_seller", "lead": {"state": "CA", "zip": "94107"}, "test": "yes"}, "test", None),
    ({"campaign": 7, "lead": {"state": "CA", "zip": "94107"}}, "campaign", None),
    ({"lead": {"state": "CA", "zip": "94107"}}, "campaign", None),
    (
        {"campaign": "cmp_seller", "lead": {"state": "CA", "zip": "94107"}, "consumer": {"email_sha256": "abc"}},
        "consumer.email_sha256",
        None,
    ),
    (
        {"campaign": "cmp_seller", "lead": {"state": "CA", "zip": "94107"}, "tracking": {"sub_id9": "x"}},
        "tracking.sub_id9",
        "Unknown field.",
    ),
    ([1, 2, 3], "non_field_errors", None),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_PINGS)
def test_a_bad_ping_is_422_naming_the_field_and_changes_nothing(market, body, field, message):
    before = state()
    response = client().post("/api/v1/ping", body, format="json")
    assert response.status_code == 422, response.content
    problem = error(response)
    assert problem["code"] == "validation_error"
    assert field in problem["fields"], problem
    if message:
        assert problem["fields"][field] == [message]
    assert state() == before


@pytest.mark.parametrize("path", ["/api/v1/ping", "/api/v1/post", "/api/v1/leads"])
@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"", b"\xff\xfe", b"null", b'"string"', b"123", b"[]", b'{"lead": {"state": "' + b"C" * 10 + b'"}}'],
)
def test_malformed_bodies_never_give_a_500(market, path, payload):
    before = state()
    response = client().generic("POST", path, payload, content_type="application/json")
    assert response.status_code in (400, 422), response.content
    assert error(response)["code"] in ("malformed_json", "validation_error")
    assert state() == before


def test_malformed_json_is_400(market):
    response = client().generic("POST", "/api/v1/ping", b"{not json", content_type="application/json")
    assert response.status_code == 400
    assert error(response) == {
        "code": "malformed_json",
        "message": "The request body is not valid JSON. "
        "Expecting property name enclosed in double quotes (line 1, column 2).",
    }


def test_an_oversized_body_is_413(market):
    body = json.dumps({"campaign": "cmp_seller", "lead": {"state": "CA", "zip": "94107", "pad": "x" * 400_000}})
    response = client().generic("POST", "/api/v1/ping", body, content_type="application/json")
    assert response.status_code == 413
    assert error(response)["code"] == "payload_too_large"


def test_a_post_missing_required_fields_and_consent_is_422(market):
    answer = ping(1)
    body = post_body(answer["ping_id"], 1)
    del body["lead"]["email"]
    del body["consent"]["captured_at"]
    before = state()
    response = client().post("/api/v1/post", body, format="json")
    assert response.status_code == 422
    assert set(error(response)["fields"]) == {"consent.captured_at"}
    body["consent"]["captured_at"] = "2026-11-22T10:00:00Z"
    response = client().post("/api/v1/post", body, format="json")
    assert error(response)["fields"] == {"lead.email": ["This field is required."]}
    assert state() == before


def test_a_buyer_key_cannot_ping(market):
    response = client("gvl_test_buyer_a_000000").post("/api/v1/ping", ping_body(1), format="json")
    assert response.status_code == 403 and error(response)["code"] == "permission_denied"


# --- routing -------------------------------------------------------------------------------------


def test_a_winner_that_can_no_longer_buy_hands_over_to_the_next_bid():
    load(buyer("a", "30.00", balance="30.00"), buyer("b", "20.00"))
    first, second = ping(1), ping(2)  # both won by "a", which can pay for one lead only
    assert post(first["ping_id"], 1)["payout"] == "24.00"
    sold = post(second["ping_id"], 2)
    assert (sold["status"], sold["payout"]) == ("sold", "16.00")
    with market_scope():
        assert list(Sale.objects.order_by("pk").values_list("contract__public_id", "price")) == [
            ("ctr_a", Decimal("30.00")),
            ("ctr_b", Decimal("20.00")),
        ]


def test_a_lead_no_bid_can_buy_is_unsold_when_the_offer_has_no_re_auctions():
    load(buyer("a", "30.00", balance="30.00"), reauction_cycles=0)
    first, second = ping(1), ping(2)
    post(first["ping_id"], 1)
    unsold = post(second["ping_id"], 2)
    assert (unsold["status"], unsold["payout"], unsold["reason"]) == ("unsold", "0.00", "no_buyers")


def test_a_lead_no_bid_can_buy_goes_pending_for_re_auctions():
    load(buyer("a", "30.00", balance="30.00"))
    first, second = ping(1), ping(2)
    post(first["ping_id"], 1)
    assert post(second["ping_id"], 2)["status"] == "pending"


def test_a_post_of_a_rejected_ping_is_pending_for_its_re_auctions_or_unsold_without():
    load(buyer("a", "30.00", filters={"field": "state", "op": "eq", "value": "TX"}))
    answer = ping(1)
    assert answer["reason"] == "no_buyers"
    assert post(answer["ping_id"], 1)["status"] == "pending"  # re-auctioned (test_reauction_cycles.py)
    load(buyer("a", "30.00", filters={"field": "state", "op": "eq", "value": "TX"}), reauction_cycles=0)
    answer = ping(2)
    assert post(answer["ping_id"], 2)["status"] == "unsold"


def test_full_lead_in_one_call():
    load(buyer("a", "30.00"), buyer("b", "20.00"))
    response = client().post("/api/v1/leads", lead_body(1), format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["payout"]) == ("sold", "24.00")
    with market_scope():
        ping_row = Ping.objects.get(public_id=body["ping_id"])
    assert ping_row.source == "lead" and ping_row.posted_at is not None
    posted_again = client().post("/api/v1/post", post_body(body["ping_id"], 1), format="json")
    assert posted_again.status_code == 409 and error(posted_again)["code"] == "ping_already_posted"
    again = client().post("/api/v1/leads", lead_body(1), format="json").json()
    assert (again["status"], again["payout"]) == ("sold", "16.00")  # "a" has it already: "b" buys
    third = client().post("/api/v1/leads", lead_body(1), format="json").json()
    assert (third["status"], third["reason"]) == ("rejected", "duplicate")


def test_the_direct_route_sells_its_share_at_the_fixed_price():
    load(
        buyer("a", "30.00"),
        buyer("b", "5.00"),
        campaign={"direct_route": {"contract": "b-c", "price": "12.50", "share_percent": 100}},
    )
    body = client().post("/api/v1/leads", lead_body(1), format="json").json()
    assert (body["status"], body["payout"]) == ("sold", "10.00")
    with market_scope():
        sale = Sale.objects.get()
    assert (sale.contract.public_id, sale.price, sale.direct) == ("ctr_b", Decimal("12.50"), True)


def test_a_direct_route_that_cannot_buy_falls_back_to_the_auction():
    load(
        buyer("a", "30.00"),
        buyer("b", "5.00", balance="0.00"),
        campaign={"direct_route": {"contract": "b-c", "price": "12.50", "share_percent": 100}},
    )
    body = client().post("/api/v1/leads", lead_body(1), format="json").json()
    assert (body["status"], body["payout"]) == ("sold", "24.00")


def test_test_mode_runs_the_path_and_books_nothing():
    load(buyer("a", "30.00", caps={"day": 1}))
    before = state()
    body = client().post("/api/v1/leads", lead_body(1, test=True), format="json").json()
    assert (body["status"], body["payout"], body["test"]) == ("sold", "24.00", True)
    with market_scope():
        assert Sale.objects.get().test is True
        assert LedgerEntry.objects.count() == before["entries"]
        assert list(CapCounter.objects.values_list("count", flat=True)) == []
    # A real lead still finds the cap and the consumer untouched.
    assert client().post("/api/v1/leads", lead_body(1), format="json").json()["status"] == "sold"


def test_idempotency_key_replays_a_post(market):
    answer = ping(1)
    first = client().post("/api/v1/post", post_body(answer["ping_id"], 1), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = client().post("/api/v1/post", post_body(answer["ping_id"], 1), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    with market_scope():
        assert Sale.objects.count() == 1
