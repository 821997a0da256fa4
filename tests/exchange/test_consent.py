"""One-to-one consent (a lead goes only to the buyers its consent names) and the pluggable
TrustedForm/Jornaya certificate verifier (a real local HTTP server stands in for the vendor)."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from django.test import Client, override_settings

from accounts.tenancy import market_scope
from exchange.consent_verify import certificate_verify
from exchange.models import Ping
from leads.models import ConsentRecord, Lead
from tests.exchange.builder import CONSENT, buyer, client, full_lead, load, ping_body
from tests.waiting import free_port

pytestmark = pytest.mark.django_db


def one_to_one_market() -> None:
    # "other" pays five times as much: only the consent keeps it from winning.
    load(buyer("named", "10.00"), buyer("other", "50.00"), buyer("third", "5.00"), one_to_one_consent=True)


def waterfall(ping_id: str) -> dict[str, str]:
    with market_scope():
        return {s["contract"]: s["reason"] for s in Ping.objects.get(public_id=ping_id).waterfall}


def buyers_of(lead_id: str) -> list[str]:
    with market_scope():
        return sorted(Lead.objects.get(public_id=lead_id).sales.values_list("organization__slug", flat=True))


def test_a_ping_sells_only_to_the_buyers_its_consent_names():
    one_to_one_market()
    body = {**ping_body(1), "consent": {"named_buyers": ["named", "Third"]}}  # a slug and a public name
    answer = client().post("/api/v1/ping", body, format="json").json()
    assert answer["status"] == "accepted"
    assert waterfall(answer["ping_id"]) == {
        "ctr_named": "won",
        "ctr_other": "not_named_in_consent",
        "ctr_third": "outbid",
    }


def test_a_one_to_one_ping_naming_no_one_has_no_buyer():
    one_to_one_market()
    answer = client().post("/api/v1/ping", ping_body(2), format="json").json()
    assert (answer["status"], answer["reason"]) == ("rejected", "no_buyers")
    assert set(waterfall(answer["ping_id"]).values()) == {"not_named_in_consent"}


def test_an_offer_without_one_to_one_consent_ignores_the_names():
    load(buyer("named", "10.00"), buyer("other", "50.00"))
    body = {**ping_body(3), "consent": {"named_buyers": ["named"]}}
    answer = client().post("/api/v1/ping", body, format="json").json()
    assert waterfall(answer["ping_id"])["ctr_other"] == "won"


def test_a_full_lead_is_sold_only_to_a_named_buyer_and_the_record_keeps_the_names():
    one_to_one_market()
    body = {"campaign": "cmp_seller", "lead": full_lead(4), "consent": {**CONSENT, "named_buyers": ["named"]}}
    answer = client().post("/api/v1/leads", body, format="json").json()
    assert answer["status"] == "sold"
    assert buyers_of(answer["lead_id"]) == ["named"]
    with market_scope():
        record = ConsentRecord.objects.get(lead__public_id=answer["lead_id"])
    assert record.raw["named_buyers"] == ["named"]


def test_a_post_whose_consent_names_fewer_buyers_than_its_ping_never_sells_to_the_others():
    # The ping named "other" too, so "other" won; the consent the post carries names only "named".
    load(buyer("named", "10.00"), buyer("other", "50.00"), one_to_one_consent=True, distribution="exclusive")
    answer = (
        client()
        .post("/api/v1/ping", {**ping_body(5), "consent": {"named_buyers": ["named", "other"]}}, format="json")
        .json()
    )
    assert waterfall(answer["ping_id"]) == {"ctr_named": "outbid", "ctr_other": "won"}
    body = {"ping_id": answer["ping_id"], "lead": full_lead(5), "consent": {**CONSENT, "named_buyers": ["named"]}}
    sold = client().post("/api/v1/post", body, format="json").json()
    assert sold["status"] == "sold"
    assert buyers_of(sold["lead_id"]) == ["named"]


def test_named_buyers_must_be_a_list_of_names():
    one_to_one_market()
    body = {**ping_body(6), "consent": {"named_buyers": "named"}}
    response = client().post("/api/v1/ping", body, format="json")
    assert response.status_code == 422
    assert "consent.named_buyers" in response.json()["error"]["fields"]


def test_the_hosted_form_of_a_one_to_one_offer_shows_the_names_and_sells_only_to_them():
    one_to_one_market()
    browser = Client()
    html = browser.get("/f/cmp_seller").content.decode()
    names = re.findall(r"<li>([^<]+)</li>", html.split('class="named-buyers"')[1].split("</ul>")[0])
    assert names == ["Named", "Other", "Third"]
    hidden = {k: unescape(v) for k, v in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html)}
    lead = {k: str(v) for k, v in full_lead(7).items()}
    with override_settings(GAVEL_FORM_MIN_SECONDS=0):
        response = browser.post("/f/cmp_seller", {**hidden, **lead, "consent_agreed": "yes"})
    assert response.status_code == 200
    with market_scope():
        lead_row = Lead.objects.get()
        record = ConsentRecord.objects.get(lead=lead_row)
    assert record.raw["named_buyers"] == ["named", "other", "third"]
    assert record.text.endswith("Named buyers: Named, Other, Third.")
    assert buyers_of(lead_row.public_id) == ["other"]  # named, so the highest bid wins


# --- the certificate verifier ---------------------------------------------------------------------

CERT = {"trusted_form_cert_url": "https://cert.trustedform.com/0123abcd"}


def test_the_verifier_is_off_by_default(receiver):
    assert certificate_verify(CERT) is None
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("status", "answer", "verdict"),
    [
        (200, b'{"valid": true}', "verified"),
        (200, b'{"valid": false}', "invalid"),
        (404, b"no such certificate", "invalid"),
        (500, b"oops", "unreachable"),
        (200, b"not json", "unreachable"),
    ],
)
def test_the_verifiers_answers(receiver, status, answer, verdict):
    receiver.script.append((status, answer, {}))
    with override_settings(GAVEL_CONSENT_VERIFIER_URL=receiver.url, GAVEL_CONSENT_VERIFIER_TOKEN="s3cret"):
        assert certificate_verify({**CERT, "jornaya_leadid": "LEADID-9"}) == verdict
    (sent,) = receiver.requests
    assert sent.headers["authorization"] == "Bearer s3cret"
    assert json.loads(sent.body) == {**CERT, "jornaya_leadid": "LEADID-9"}


def test_an_unreachable_verifier_counts_nothing():
    with override_settings(GAVEL_CONSENT_VERIFIER_URL=f"http://127.0.0.1:{free_port()}/claim"):
        assert certificate_verify(CERT) == "unreachable"


@pytest.mark.parametrize(("answer", "points"), [(b'{"valid": true}', 5), (b'{"valid": false}', -25), (None, None)])
def test_the_verifiers_answer_feeds_the_leads_score(receiver, answer, points):
    load(buyer("a", "10.00"))
    if answer is not None:
        receiver.script.append((200, answer, {}))
    else:
        receiver.script.append((503, b"down", {}))
    body = {"campaign": "cmp_seller", "lead": full_lead(8), "consent": {**CONSENT, **CERT}}
    with override_settings(GAVEL_CONSENT_VERIFIER_URL=receiver.url):
        answer_json = client().post("/api/v1/leads", body, format="json").json()
    with market_scope():
        lead = Lead.objects.get(public_id=answer_json["lead_id"])
    assert lead.quality_signals.get("certificate") == points
    assert lead.quality_signals["trusted_form"] == 10
