"""Read-only fields sent in a write are refused by name (issue 19): a price paid, a status, an
organization, a balance, a hold, an id — never silently dropped, and nothing changes."""

from __future__ import annotations

import pytest

from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from core.api.serializers import READ_ONLY, UNKNOWN, StrictSerializer
from tests.conftest import ACME_KEY, LEADGEN_KEY, api_client

pytestmark = pytest.mark.django_db

PING = {"campaign": "cmp_leadgen_auto", "lead": {"state": "CA", "zip": "94107"}}
CONSENT = {"text": "I agree.", "captured_at": "2026-11-22T10:00:00Z", "ip": "203.0.113.9"}
LEAD = {"state": "CA", "zip": "94107", "email": "jane@example.com", "phone": "+12015550123"}

# Every write endpoint of /api/v1 (exchange/urls.py), a valid body, and read-only fields of its answer.
WRITES = [
    ("post", "/api/v1/ping", LEADGEN_KEY, PING, ["ping_id", "status", "payout", "bids", "expires_at", "organization"]),
    (
        "post",
        "/api/v1/post",
        LEADGEN_KEY,
        {"ping_id": "png_x", "lead": LEAD, "consent": CONSENT},
        ["lead_id", "status", "payout", "price", "reason"],
    ),
    (
        "post",
        "/api/v1/leads",
        LEADGEN_KEY,
        {"campaign": "cmp_leadgen_auto", "lead": LEAD, "consent": CONSENT},
        ["lead_id", "ping_id", "status", "payout", "sales", "organization"],
    ),
    (
        "patch",
        "/api/v1/contracts/ctr_acme_west",
        ACME_KEY,
        {"status": "paused"},
        ["id", "offer", "organization", "hold", "hold_reason", "balance", "created_at", "price_paid", "priority"],
    ),
    (
        "post",
        "/api/v1/contracts",
        ACME_KEY,
        {"slug": "acme-east", "offer": "auto-insurance", "price": "5.00"},
        ["id", "organization", "hold", "balance", "created_at"],
    ),
    (
        "post",
        "/api/v1/purchases/sal_none/return",
        ACME_KEY,
        {"reason": "bad_phone"},
        ["status", "return_id", "price", "refund", "organization"],
    ),
    (
        "post",
        "/api/v1/suppressions",
        ACME_KEY,
        {"email": "jane@example.com", "scope": "organization"},
        ["suppression_id", "kind", "consumer_sha256", "created_at", "organization"],
    ),
    (
        "post",
        "/api/v1/privacy-requests",
        LEADGEN_KEY,
        {"kind": "delete", "email": "jane@example.com"},
        ["request_id", "status", "organization", "completed_at"],
    ),
    (
        "post",
        "/api/v1/conversions",
        ACME_KEY,
        {"sale_id": "sal_none", "value": "1.00"},
        ["conversion_id", "lead_id", "test", "created_at", "organization", "price"],
    ),
]


@pytest.mark.parametrize(("method", "path", "key", "body", "read_only"), WRITES, ids=[w[1] for w in WRITES])
def test_a_write_with_a_read_only_field_is_a_422_naming_it(market, method, path, key, body, read_only):
    for field in read_only:
        answer = getattr(api_client(key), method)(path, {**body, field: "x"}, format="json")
        if answer.status_code == 404:  # an object the body refers to is looked up first
            continue
        assert answer.status_code == 422, (path, field, answer.content)
        error = answer.json()["error"]
        assert error["code"] == "validation_error"
        assert field in error["fields"], (path, field, error)


def test_a_contract_patch_with_a_read_only_field_changes_nothing(market):
    answer = api_client(ACME_KEY).patch(
        "/api/v1/contracts/ctr_acme_west", {"status": "paused", "id": "ctr_mine", "offer": "other"}, format="json"
    )
    assert answer.status_code == 422
    assert set(answer.json()["error"]["fields"]) == {"id", "offer"}
    with market_scope():
        contract = BuyerContract.objects.get(public_id="ctr_acme_west")
    assert (contract.status, contract.public_id) == ("active", "ctr_acme_west")


def test_a_strict_serializers_read_only_field_is_refused_as_read_only_not_dropped():
    from rest_framework import serializers

    class Input(StrictSerializer):
        name = serializers.CharField()
        status = serializers.CharField(read_only=True)

    checked = Input(data={"name": "a", "status": "sold", "colour": "red"})
    assert not checked.is_valid()
    assert checked.errors == {"colour": [UNKNOWN], "status": [READ_ONLY]}
    assert Input(data={"name": "a"}).is_valid()
