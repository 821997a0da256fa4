"""Delivery formats: each received by a real local buyer server exactly as the contract's terms
write it (JSON, form, XML; field names, fixed values, value maps, headers), each accept rule
accepting and rejecting, bad terms refused by field, and the contract page's preview being the
very request that is sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import pytest
from django.core.exceptions import ValidationError
from standardwebhooks.webhooks import Webhook

from accounts.models import Organization
from accounts.tenancy import market_scope
from contracts.delivery_format import delivery_render
from contracts.delivery_preview import delivery_preview, sample_payload
from contracts.models import BuyerContract
from contracts.services import contract_update
from exchange.market import MarketError
from exchange.models import DeliveryAttempt, Sale
from tests.exchange.builder import BUYER_KEY_PREFIX, buyer, client, load, ping, post, sell
from tests.sessions import member

pytestmark = pytest.mark.django_db

MAPPED = {
    "fields": {"state": "State", "zip": "ZipCode", "email": "Email", "first_name": "FirstName", "price": "Cost"},
    "constants": {"Source": "gavel", "Vendor": 42},
    "values": {"state": {"CA": "California"}},
    "headers": {"Authorization": "Bearer s3cret", "X-Campaign": "auto-1"},
}


def hook(receiver, **terms) -> dict:
    return {"method": "webhook", "url": receiver.url, "timeout_ms": 2000, **terms}


def received(receiver):
    assert len(receiver.requests) == 1, receiver.requests
    request = receiver.requests[0]
    secret = Organization.objects.get(slug="acme").signing_secret
    # Signed over the exact body, whatever the format (verify() itself would parse it as JSON).
    at = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), tz=UTC)
    signature = Webhook(secret).sign(request.headers["webhook-id"], at, request.body.decode())
    assert request.headers["webhook-signature"] == signature
    return request


def outcome() -> tuple[str, str]:
    with market_scope():
        attempt = DeliveryAttempt.objects.get()
        return attempt.outcome, attempt.reason


def test_a_form_delivery_sends_the_buyers_names_fixed_values_mapped_values_and_headers(receiver):
    load(buyer("acme", "30.00", delivery=hook(receiver, format="form", **MAPPED)))
    assert sell(1)["status"] == "sold"
    request = received(receiver)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert (request.headers["authorization"], request.headers["x-campaign"]) == ("Bearer s3cret", "auto-1")
    assert sorted(parse_qsl(request.body.decode(), keep_blank_values=True)) == [
        ("Cost", "30.00"),
        ("Email", "consumer1@example.com"),
        ("FirstName", "Jane"),
        ("Source", "gavel"),
        ("State", "California"),
        ("Vendor", "42"),
        ("ZipCode", "94107"),
    ]


def test_an_xml_delivery_has_its_root_and_escapes_every_value(receiver):
    terms = hook(receiver, format="xml", root="LeadData", **MAPPED)
    load(buyer("acme", "30.00", delivery=terms))
    answer = ping(1)
    assert post(answer["ping_id"], 1, first_name='Jo <&> "Ann" \x07')["status"] == "sold"
    request = received(receiver)
    assert request.headers["content-type"] == "application/xml; charset=utf-8"
    root = ElementTree.fromstring(request.body)  # noqa: S314 - our own output
    assert root.tag == "LeadData"
    assert sorted((child.tag, child.text) for child in root) == [
        ("Cost", "30.00"),
        ("Email", "consumer1@example.com"),
        ("FirstName", 'Jo <&> "Ann" '),  # escaped on the wire, the bell character dropped
        ("Source", "gavel"),
        ("State", "California"),
        ("Vendor", "42"),
        ("ZipCode", "94107"),
    ]
    assert b"&lt;&amp;&gt;" in request.body


def test_a_mapped_json_delivery_is_flat_and_an_unmapped_one_is_the_exchanges_document(receiver):
    load(buyer("acme", "30.00", delivery=hook(receiver, **MAPPED)))
    sell(1)
    body = json.loads(received(receiver).body)
    assert body == {
        "State": "California",
        "ZipCode": "94107",
        "Email": "consumer1@example.com",
        "FirstName": "Jane",
        "Cost": "30.00",
        "Source": "gavel",
        "Vendor": 42,
    }


def test_a_form_delivery_without_fields_is_the_whole_lead_flat(receiver):
    load(buyer("acme", "30.00", delivery=hook(receiver, format="form", values={"state": {"CA": "California"}})))
    sell(1)
    body = dict(parse_qsl(received(receiver).body.decode(), keep_blank_values=True))
    with market_scope():
        sale = Sale.objects.get()
    assert body["sale_id"] == sale.public_id and body["price"] == "30.00" and body["test"] == "false"
    assert (body["state"], body["zip"], body["age"], body["email"]) == (
        "California",
        "94107",
        "34",
        "consumer1@example.com",
    )
    assert body["consent_text"] == "I agree to be contacted."


ACCEPT_CASES = [
    ("json path", {"accept": {"path": "result.status", "equals": "ok"}}, b'{"result": {"status": "ok"}}', True),
    (
        "json path, refused",
        {"accept": {"path": "result.status", "equals": "ok"}, "reason_path": "result.why"},
        b'{"result": {"status": "no", "why": "dupe"}}',
        "dupe",
    ),
    (
        "xml path",
        {"accept": {"xpath": "Result/Status", "equals": "Accepted"}},
        b"<R><Result><Status> Accepted </Status></Result></R>",
        True,
    ),
    (
        "xml path, refused",
        {"accept": {"xpath": ".//Status", "equals": "Accepted"}, "reason_xpath": ".//Message"},
        b"<R><Status>Rejected</Status><Message>Duplicate lead</Message></R>",
        "Duplicate lead",
    ),
    (
        "xml entities are never expanded",
        {"accept": {"xpath": "Status", "equals": "Accepted"}},
        b'<?xml version="1.0"?><!DOCTYPE R [<!ENTITY a "Accepted">]><R><Status>&a;</Status></R>',
        "not accepted",
    ),
    ("regex", {"accept": {"regex": r"^OK\b"}}, b"OK lead 17", True),
    ("regex, refused", {"accept": {"regex": r"^OK\b"}}, b"ERROR lead 17", "not accepted"),
]


@pytest.mark.parametrize(
    ("terms", "answer", "expected"), [c[1:] for c in ACCEPT_CASES], ids=[c[0] for c in ACCEPT_CASES]
)
def test_each_accept_rule_accepts_and_rejects(receiver, terms, answer, expected):
    load(buyer("acme", "30.00", delivery=hook(receiver, **terms)), reauction_cycles=0)
    receiver.answer(200, body=answer)
    lead = sell(1)
    if expected is True:
        assert lead["status"] == "sold" and outcome() == ("accepted", "")
    else:
        assert lead["status"] == "unsold" and outcome() == ("rejected", expected)
        with market_scope():
            assert Sale.objects.get().status == "released"


BAD_TERMS = [
    ({"format": "soap"}, "delivery.format", "must be one of json, form, xml"),
    ({"root": "Lead"}, "delivery.root", "goes with format: xml"),
    ({"format": "xml", "root": "1Lead"}, "delivery.root", "is not an XML element name"),
    ({"format": "xml", "fields": {"zip": "Zip Code"}}, "delivery.fields.zip", "is not an XML element name"),
    ({"fields": {"zip": "Zip", "state": "Zip"}}, "delivery.fields.state", "'Zip' is already sent for zip"),
    ({"fields": {"zipcode": "Zip"}}, "delivery.fields.zipcode", "not a field of the offer nor of the sale"),
    ({"values": {"colour": {"a": "b"}}}, "delivery.values.colour", "not a field of the offer nor of the sale"),
    ({"constants": {"Source": {"nested": 1}}}, "delivery.constants.Source", "must be a text, number or boolean"),
    ({"headers": {"webhook-signature": "x"}}, "delivery.headers.webhook-signature", "set by the exchange"),
    ({"headers": {"X-A": "one\r\nX-B: two"}}, "delivery.headers.X-A", "must be one line of text"),
    ({"headers": {"Bad Name": "x"}}, "delivery.headers.Bad Name", "not a header name"),
    ({"accept": {"xpath": "a[@b='c']", "equals": "x"}}, "delivery.accept.xpath", "must be an element path"),
    ({"accept": {"xpath": "a", "path": "b", "equals": "x"}}, "delivery.accept", "not both"),
    ({"accept": {"regex": "(a)\\1"}}, "delivery.accept.regex", "invalid regular expression"),
    ({"reason_xpath": "//x"}, "delivery.reason_xpath", "must be an element path"),
]


@pytest.mark.parametrize(("terms", "path", "message"), BAD_TERMS, ids=[p for _, p, _ in BAD_TERMS])
def test_bad_delivery_terms_are_refused_by_field_and_nothing_changes(receiver, terms, path, message):
    good = hook(receiver)
    load(buyer("acme", "30.00", delivery=good))
    with market_scope():
        contract = BuyerContract.objects.get(slug="acme-c")
        with pytest.raises(ValidationError) as refused:
            contract_update(contract=contract, terms={"delivery": hook(receiver, **terms)})
        errors = refused.value.message_dict
        # The input names the key itself; a check that needs the offer names it in its message.
        assert any(message in m for m in errors.get(path, [])) or any(
            m.startswith(f"{path}: ") and message in m for m in errors.get("delivery", [])
        ), errors
        contract.refresh_from_db()
    assert contract.delivery == good
    with pytest.raises(MarketError) as error:
        load(buyer("acme", "30.00", delivery=hook(receiver, **terms)))
    assert error.value.path == f"organizations[0].contracts[0].{path}" and message in error.value.message


def test_the_contract_page_previews_the_exact_request_that_is_sent(receiver):
    terms = hook(receiver, format="xml", root="LeadData", **MAPPED)
    load(buyer("acme", "30.00", delivery=terms))
    with market_scope():
        contract = BuyerContract.objects.select_related("offer").get(slug="acme-c")
    preview = delivery_preview(contract)
    _, body, headers = delivery_render(contract.delivery, sample_payload(contract))
    assert preview.body == body.decode() and preview.body.startswith("<?xml")
    assert "<State>California</State>" in preview.body and "<ZipCode>94107</ZipCode>" in preview.body
    assert dict(preview.headers)["Authorization"] == "Bearer s3cret"
    page = member("buyer@acme.test", "acme", "analyst").get(f"/portal/contracts/{contract.public_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "What your system receives" in html
    assert "&lt;State&gt;California&lt;/State&gt;" in html  # the body, escaped on the page
    assert "&lt;Cost&gt;30.00&lt;/Cost&gt;" in html
    assert "content-type: application/xml; charset=utf-8" in html and "Authorization: Bearer s3cret" in html

    # The request a sale sends is that body, for the sale's own lead.
    sell(1)
    sent = received(receiver).body.decode()
    expected = body.decode().replace("jane.doe@example.com", "consumer1@example.com")
    assert sent == expected  # the sample's values aside, the very document previewed


def test_a_contract_without_webhook_delivery_says_what_to_do():
    load(buyer("acme", "30.00"))
    with market_scope():
        contract = BuyerContract.objects.get(slug="acme-c")
    html = member("buyer@acme.test", "acme", "analyst").get(f"/portal/contracts/{contract.public_id}/").content.decode()
    assert "Nothing is sent" in html and "delivery.method: webhook" in html


def test_the_api_refuses_bad_delivery_terms_by_field_and_takes_good_ones(receiver):
    load(buyer("acme", "30.00"))
    api = client(f"{BUYER_KEY_PREFIX}acme_000000")
    refused = api.patch("/api/v1/contracts/ctr_acme", {"delivery": hook(receiver, format="soap")}, format="json")
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"] == {"delivery.format": ["must be one of json, form, xml"]}
    unknown = api.patch(
        "/api/v1/contracts/ctr_acme", {"delivery": hook(receiver, fields={"zipcode": "Zip"})}, format="json"
    )
    assert unknown.status_code == 422 and "delivery.fields.zipcode" in json.dumps(unknown.json())
    with market_scope():
        assert BuyerContract.objects.get(slug="acme-c").delivery == {}
    taken = api.patch("/api/v1/contracts/ctr_acme", {"delivery": hook(receiver, format="xml", **MAPPED)}, format="json")
    assert taken.status_code == 200 and taken.json()["delivery"]["format"] == "xml"
