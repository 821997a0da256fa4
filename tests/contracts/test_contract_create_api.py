"""``POST /api/v1/contracts`` (DESIGN.md §6.1): a buyer creates a contract through the one write path;
it bids on the very next ping; every refusal is the error envelope and creates nothing."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from tests.exchange.builder import BUYER_KEY_PREFIX, SELLER_KEY, buyer, client, load, ping

pytestmark = pytest.mark.django_db

KEY = f"{BUYER_KEY_PREFIX}a_000000"
OTHER_KEY = f"{BUYER_KEY_PREFIX}b_000000"


def create(body: Any, key: str = KEY, **headers: str) -> Any:
    return client(key).post("/api/v1/contracts", body, format="json", **headers)


def contract_count() -> int:
    with market_scope():
        return BuyerContract.objects.count()


X = {"name": "x", "offer": "auto", "price": "1.00"}


def west(**terms: Any) -> dict[str, Any]:
    return {
        "name": "West coast",
        "offer": "auto",
        "price": "42.00",
        "filters": {"field": "state", "op": "in", "value": ["CA", "OR"]},
        "caps": {"day": 5},
        "budget": {"day": "500.00"},
        **terms,
    }


def test_a_new_contract_is_answered_as_get_renders_it_and_bids_on_the_next_ping():
    load(buyer("a", "10.00"))
    assert ping(1)["payout"] == "8.00"  # the old contract wins at 10.00 (20 % margin)

    response = create(west(modifiers=[{"when": {"field": "age", "op": "gte", "value": 30}, "add": "3.00"}]))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("ctr_")
    assert body == client(KEY).get(f"/api/v1/contracts/{body['id']}").json()
    assert (body["name"], body["offer"], body["status"], body["price"], body["hold"]) == (
        "West coast",
        "auto",
        "active",
        "42.00",
        None,
    )
    assert body["caps"] == {"day": 5, "week": None, "month": None, "total": None}
    assert body["budget"] == {"day": "500.00", "week": None, "month": None, "total": None}
    assert (body["priority"], body["weight"]) == (0, 1)
    # The very next ping: the new contract bids 42.00 + 3.00 (age 34) and wins.
    answer = ping(2)
    assert (answer["status"], answer["payout"]) == ("accepted", "36.00")
    with market_scope():
        created = BuyerContract.objects.get(public_id=body["id"])
    assert created.organization.slug == "a"
    assert ping(3, state="TX")["payout"] == "8.00"  # filtered out of a TX lead: the old one wins


def test_a_paused_new_contract_does_not_bid():
    load(buyer("a", "10.00"))
    response = create(west(status="paused"))
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "paused"
    assert ping(1)["payout"] == "8.00"


def test_an_rtb_contract_is_created_with_its_max_price():
    load(buyer("a", "10.00"))
    response = create(
        {"name": "RTB", "offer": "auto", "rtb_url": "https://b.test/rtb", "max_price": "40.00", "rtb_timeout_ms": 99}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["price"], body["rtb_url"], body["max_price"], body["rtb_timeout_ms"]) == (
        None,
        "https://b.test/rtb",
        "40.00",
        99,
    )


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "x", "offer": "nope", "price": "1.00"}, {"offer": ["No such offer: 'nope'."]}),
        ({"name": "x", "price": "1.00"}, {"offer": ["This field is required."]}),
        ({"offer": "auto", "price": "1.00"}, {"name": ["This field is required."]}),
        ({"name": "x", "offer": "auto"}, {"price": ["Give a fixed price or an RTB URL."]}),
        (
            {**X, "rtb_url": "https://buyer.test/rtb"},
            {"price": ["Give a fixed price or an RTB URL, not both."]},
        ),
        ({**X, "price": "-1.00"}, {"price": ["Ensure this value is greater than or equal to 0."]}),
        ({"name": "x", "offer": "auto", "price": "20000.00"}, {"price": ["Above the offer's max bid of 10000.00."]}),
        ({**X, "caps": {"day": -1}}, None),
        ({**X, "filters": {"field": "email", "op": "exists", "value": True}}, None),
        ({**X, "filters": {"field": "$foo", "op": "eq", "value": 1}}, None),
        ({**X, "status": "held"}, {"status": ['"held" is not a valid choice.']}),
        ({**X, "slug": "mine"}, {"slug": ["Unknown field."]}),
        ({**X, "priority": 9}, {"priority": ["Set by the exchange's operator."]}),
        ({**X, "weight": 9}, {"weight": ["Set by the exchange's operator."]}),
        (
            {**X, "hold": None},
            {"hold": ["Set by the exchange (the operator or the circuit breaker); no buyer action lifts a hold."]},
        ),
        (["not", "an", "object"], None),
    ],
)
def test_a_refused_contract_is_a_422_that_names_the_term_and_creates_nothing(body, fields):
    load(buyer("a", "10.00"))
    before = contract_count()

    response = create(body)

    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    if fields is not None:
        assert error["fields"] == fields
    else:
        assert error["fields"]
    assert contract_count() == before


def test_the_unknown_pseudo_field_is_named_in_the_error():
    load(buyer("a", "10.00"))
    response = create(west(filters={"field": "$foo", "op": "eq", "value": 1}))
    assert response.status_code == 422
    (message,) = response.json()["error"]["fields"]["filters"]
    assert "unknown field '$foo'" in message and "$source, $hour, $weekday" in message


def test_malformed_json_is_a_400_and_creates_nothing():
    load(buyer("a", "10.00"))
    before = contract_count()
    response = client(KEY).post("/api/v1/contracts", b'{"name": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    assert contract_count() == before


def test_a_seller_or_a_key_without_the_scope_cannot_create():
    load(buyer("a", "10.00"))
    before = contract_count()
    assert create(west(), key=SELLER_KEY).json()["error"]["code"] == "permission_denied"
    assert create(west(), key="gvl_nope").status_code == 401
    assert contract_count() == before


def test_a_repeat_with_the_same_idempotency_key_replays_the_first_contract():
    load(buyer("a", "10.00"))
    before = contract_count()

    first = create(west(), HTTP_IDEMPOTENCY_KEY="new-west-1")
    again = create(west(), HTTP_IDEMPOTENCY_KEY="new-west-1")
    other = create(west(name="Other"), HTTP_IDEMPOTENCY_KEY="new-west-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert contract_count() == before + 1


def test_a_refusal_is_replayed_too_and_still_creates_nothing():
    load(buyer("a", "10.00"))
    before = contract_count()
    first = create({"name": "x", "offer": "auto"}, HTTP_IDEMPOTENCY_KEY="k")
    again = create({"name": "x", "offer": "auto"}, HTTP_IDEMPOTENCY_KEY="k")
    assert (first.status_code, again.status_code) == (422, 422)
    assert again.json() == first.json()
    assert contract_count() == before


def test_an_outsider_cannot_see_or_change_the_new_contract():
    load(buyer("a", "10.00"), buyer("b", "5.00"))
    created = create(west()).json()

    outsider = client(OTHER_KEY)
    assert outsider.get(f"/api/v1/contracts/{created['id']}").status_code == 404
    assert outsider.patch(f"/api/v1/contracts/{created['id']}", {"price": "1.00"}, format="json").status_code == 404
    assert created["id"] not in {c["id"] for c in outsider.get("/api/v1/contracts").json()["results"]}
    assert created["id"] in {c["id"] for c in client(KEY).get("/api/v1/contracts").json()["results"]}
