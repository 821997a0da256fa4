"""Seller postbacks: filled, encoded, signed GETs to a real local server, retried with backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from standardwebhooks import Webhook

from accounts.models import Organization
from accounts.tenancy import market_scope
from contracts.models import Campaign
from contracts.services import campaign_update
from exchange.market import MarketError, market_load
from reporting.models import Postback, PostbackAttempt
from reporting.tasks import postbacks_due
from tests.exchange.builder import SELLER_KEY, buyer, client, lead_body, market
from tests.reporting.conftest import buyer_api, market_with, sold
from tests.sessions import member

pytestmark = pytest.mark.django_db

TEMPLATE = (
    "/pb?lead={lead_id}&ev={event}&v={value}&p={payout}&s1={sub_id1}&s2={sub_id2}&s5={sub_id5}&c={click_id}&t={test}"
)


@pytest.fixture(autouse=True)
def _no_jitter(settings):
    settings.GAVEL_POSTBACKS = {"retry_jitter": 0, "max_attempts": 3, "timeout_seconds": 2}


def base(receiver) -> str:
    return f"http://127.0.0.1:{receiver.port}"


def seller() -> Organization:
    return Organization.objects.get(slug="seller")


def postbacks() -> list[tuple[str, str, int]]:
    with market_scope():
        return [(p.event, p.status, p.attempts) for p in Postback.objects.order_by("pk")]


def attempts() -> list[tuple[int, int | None, str]]:
    with market_scope():
        return [(a.number, a.status_code, a.error) for a in PostbackAttempt.objects.order_by("postback", "number")]


def sell_tracked(n: int = 0) -> str:
    body = {**lead_body(n), "tracking": {"sub_id1": "fb ad/1&x=y", "sub_id2": "ü", "click_id": "c 9?#"}}
    answer = client(SELLER_KEY).post("/api/v1/leads", body, format="json").json()
    assert answer["status"] == "sold", answer
    return answer["lead_id"]


def verify(receiver, request) -> None:
    """The signature holds for the URL as called, with the seller's signing secret."""
    Webhook(seller().signing_secret).verify(base(receiver) + request.path, request.headers, json_parse=False)


def test_a_sold_lead_calls_the_postback_url_filled_encoded_and_signed(receiver, django_capture_on_commit_callbacks):
    market_with(campaign={"postback_url": base(receiver) + TEMPLATE})
    with django_capture_on_commit_callbacks() as queued:
        lead_id = sell_tracked()
    assert len(queued) >= 1  # the postback goes out only once the sale commits

    assert postbacks_due() == 1

    [request] = receiver.requests
    assert request.method == "GET"
    assert request.path == (
        f"/pb?lead={lead_id}&ev=sold&v=16.00&p=16.00&s1=fb%20ad%2F1%26x%3Dy&s2=%C3%BC&s5=&c=c%209%3F%23&t=0"
    )
    assert request.body == b""
    verify(receiver, request)
    assert request.headers["webhook-id"].startswith("pbk_")
    assert postbacks() == [("sold", "succeeded", 1)]
    assert attempts() == [(1, 200, "")]
    assert postbacks_due() == 0  # told once


def test_a_conversion_calls_the_postback_with_the_buyers_event_and_value(receiver):
    market_with(campaign={"postback_url": base(receiver) + "/c?ev={event}&v={value}&p={payout}&l={lead_id}"})
    sale = sold(0)
    postbacks_due()  # the sale's own postback

    response = buyer_api().post(
        "/api/v1/conversions", {"sale_id": sale.public_id, "event": "policy_bound", "value": "120.5"}, format="json"
    )
    again = buyer_api().post(
        "/api/v1/conversions", {"sale_id": sale.public_id, "event": "policy_bound", "value": "1"}, format="json"
    )
    assert (response.status_code, again.status_code) == (201, 200)
    assert postbacks_due() == 1

    assert [r.path for r in receiver.requests] == [
        f"/c?ev=sold&v=16.00&p=16.00&l={sale.lead.public_id}",
        f"/c?ev=policy_bound&v=120.50&p=16.00&l={sale.lead.public_id}",
    ]
    for request in receiver.requests:
        verify(receiver, request)
    assert postbacks() == [("sold", "succeeded", 1), ("policy_bound", "succeeded", 1)]


def test_a_campaign_without_a_postback_url_is_told_nothing(receiver):
    market_with()
    sold(0)

    assert postbacks_due() == 0
    assert postbacks() == [] and receiver.requests == []


def test_a_failing_endpoint_is_retried_with_backoff_then_given_up(receiver):
    start = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    receiver.answer(500, 503, 502, body=b"down for maintenance")
    with time_machine.travel(start, tick=False) as clock:
        market_with(campaign={"postback_url": base(receiver) + "/pb?l={lead_id}"})
        sold(0)

        assert postbacks_due() == 1
        assert postbacks() == [("sold", "pending", 1)]
        with market_scope():
            assert Postback.objects.get().next_attempt_at == start + timedelta(seconds=60)

        clock.shift(59)
        assert postbacks_due() == 0  # not due yet: nothing sent
        clock.shift(1)
        assert postbacks_due() == 1
        with market_scope():
            assert Postback.objects.get().next_attempt_at == start + timedelta(seconds=60 + 240)

        clock.shift(240)
        assert postbacks_due() == 1
        assert postbacks() == [("sold", "given_up", 3)]
        for request in receiver.requests:  # every attempt signed afresh, with the same id
            verify(receiver, request)

        clock.shift(86400)
        assert postbacks_due() == 0
    assert attempts() == [(1, 500, ""), (2, 503, ""), (3, 502, "")]
    assert len(receiver.requests) == 3
    with market_scope():
        assert PostbackAttempt.objects.first().response == "down for maintenance"


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(receiver):
    receiver.answer(302, headers={"Location": "http://127.0.0.1:1/elsewhere"})
    market_with(campaign={"postback_url": base(receiver) + "/pb?l={lead_id}"})
    sold(0)

    postbacks_due()

    assert postbacks() == [("sold", "pending", 1)]
    assert attempts() == [(1, 302, "Redirect not followed: http://127.0.0.1:1/elsewhere")]
    assert len(receiver.requests) == 1


def test_a_private_address_is_refused_when_saved_and_when_sent(receiver, settings):
    market_with(campaign={"postback_url": base(receiver) + "/pb?l={lead_id}"})
    settings.GAVEL_ALLOW_PRIVATE_URLS = False
    with market_scope():
        campaign = Campaign.objects.get(public_id="cmp_seller")

    with pytest.raises(ValidationError) as refused, market_scope():
        campaign_update(campaign=campaign, terms={"postback_url": "http://10.0.0.7/pb?l={lead_id}"})
    assert "private or reserved address" in refused.value.message_dict["postback_url"][0]

    sold(0)  # the saved URL turned private: the guard refuses it at the connection
    postbacks_due()

    assert receiver.requests == []
    [(number, code, error)] = attempts()
    assert (number, code) == (1, None) and error.startswith("Refused URL")
    with market_scope():
        assert Campaign.objects.get(pk=campaign.pk).postback_url == base(receiver) + "/pb?l={lead_id}"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://t.example.com/pb?l={lead}", "Unknown placeholder {lead}"),
        ("https://t.example.com/pb?l={lead_id", "A brace that is not part of a placeholder"),
        ("ftp://t.example.com/pb?l={lead_id}", "Must be an http:// or https:// URL."),
        ("https://{sub_id1}.example.com/pb", "The host cannot be a placeholder."),
        ("not a url {lead_id}", "Must be an http:// or https:// URL."),
    ],
)
def test_a_bad_template_is_refused_with_nothing_changed(db, url, message):
    market_with()
    with market_scope():
        campaign = Campaign.objects.get(public_id="cmp_seller")

    with pytest.raises(ValidationError) as refused, market_scope():
        campaign_update(campaign=campaign, terms={"postback_url": url})

    assert refused.value.message_dict["postback_url"][0].startswith(message)
    with market_scope():
        assert Campaign.objects.get(pk=campaign.pk).postback_url == ""


def test_the_market_file_sets_the_template_and_names_a_bad_one(db):
    loaded = market_load(market(buyer("acme"), campaign={"postback_url": "https://t.example.com/?l={lead_id}"}))
    assert loaded["campaigns"]["seller-auto"] == "cmp_seller"
    with market_scope():
        assert Campaign.objects.get(public_id="cmp_seller").postback_url == "https://t.example.com/?l={lead_id}"

    with pytest.raises(MarketError) as refused:
        market_load(market(buyer("acme"), campaign={"postback_url": "https://t.example.com/?l={leadid}"}))
    assert "postback_url" in str(refused.value) and "{leadid}" in str(refused.value)
    with market_scope():
        assert Campaign.objects.get(public_id="cmp_seller").postback_url == "https://t.example.com/?l={lead_id}"


def test_the_seller_sees_each_attempt_and_no_one_else_does(receiver):
    receiver.answer(500, body=b"tracker hiccup")
    market_with(campaign={"postback_url": base(receiver) + "/pb?l={lead_id}"})
    sale = sold(0)
    postbacks_due()

    owner = member("owner@seller.test", "seller", "owner")
    page = owner.get("/portal/postbacks/").content.decode()
    fragment = owner.get("/portal/campaigns/cmp_seller/postbacks/", HTTP_HX_REQUEST="true").content.decode()
    for shown in (page, fragment):
        assert sale.lead.public_id in shown
        assert "HTTP 500" in shown and "tracker hiccup" in shown
        assert f"/pb?l={sale.lead.public_id}" in shown

    other_seller = member("owner@seller2.test", "seller2", "owner")
    assert sale.lead.public_id not in other_seller.get("/portal/postbacks/").content.decode()
    assert other_seller.get("/portal/campaigns/cmp_seller/postbacks/").status_code == 404
    buyer_member = member("owner@acme.test", "acme", "owner")
    assert buyer_member.get("/portal/postbacks/").status_code == 403


def test_a_manager_sets_the_postback_url_on_the_campaign_page_and_an_analyst_cannot(receiver):
    market_with()
    url = "/portal/campaigns/cmp_seller/postbacks/"
    manager = member("manager@seller.test", "seller", "manager")

    bad = manager.post(url, {"postback_url": "https://t.example.com/?x={nope}"}, HTTP_HX_REQUEST="true")
    good = manager.post(url, {"postback_url": base(receiver) + "/pb?l={lead_id}"}, HTTP_HX_REQUEST="true")

    assert "Unknown placeholder {nope}" in bad.content.decode()
    assert 'value="https://t.example.com/?x={nope}"' in bad.content.decode()  # kept as typed
    assert "Saved: called from the next lead sold." in good.content.decode()
    analyst = member("analyst@seller.test", "seller", "analyst")
    assert analyst.post(url, {"postback_url": ""}).status_code == 403
    assert "a manager or owner changes it" in analyst.get(url, HTTP_HX_REQUEST="true").content.decode()
    with market_scope():
        assert Campaign.objects.get(public_id="cmp_seller").postback_url == base(receiver) + "/pb?l={lead_id}"


def test_a_postback_url_saved_on_the_page_is_called_for_the_next_lead_sold_and_not_the_one_before(receiver):
    market_with()
    sold(0)  # the book compiled then knows no postback URL of this seller
    manager = member("manager@seller.test", "seller", "manager")
    saved = manager.post(
        "/portal/campaigns/cmp_seller/postbacks/",
        {"postback_url": base(receiver) + "/pb?l={lead_id}"},
        HTTP_HX_REQUEST="true",
    )
    assert "Saved: called from the next lead sold." in saved.content.decode()

    after = sold(1)

    assert postbacks_due() == 1
    assert postbacks() == [("sold", "succeeded", 1)]
    assert [r.path for r in receiver.requests] == [f"/pb?l={after.lead.public_id}"]
