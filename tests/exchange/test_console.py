"""The campaign page's test console: a test ping and its post through the API's own code, as the
seller; both answers shown; nothing billed, capped or counted."""

from __future__ import annotations

import html
import json

import pytest

from accounts.tenancy import market_scope
from billing.models import LedgerTransaction
from contracts.models import Campaign, CapCounter
from contracts.posting import PostingGuide, posting_guide
from exchange.models import Ping, Sale
from leads.models import Lead
from tests.exchange.builder import buyer, load
from tests.ledger import balance
from tests.sessions import member

pytestmark = pytest.mark.django_db

CONSOLE = "/portal/campaigns/cmp_seller/console/"


def guide() -> PostingGuide:
    with market_scope():
        return posting_guide(campaign=Campaign.objects.get(public_id="cmp_seller"))


def test_the_console_sends_a_test_ping_and_post_and_nothing_is_billed():
    load(buyer("acme", "30.00", caps={"day": 5}))
    example = guide()
    with market_scope():
        before = (balance("acme"), balance("seller", "seller_payable"), LedgerTransaction.objects.count())
    portal = member("manager@seller.test", "seller", "manager")
    ping = {**example.ping, "test": False}  # the console sends tests whatever the body says

    response = portal.post(CONSOLE, {"ping": json.dumps(ping), "post": example.post_json}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    with market_scope():
        sent = Ping.objects.get()
        sale = Sale.objects.get()
        lead = Lead.objects.get()
        counters = list(CapCounter.objects.values_list("count", flat=True))
    assert (sent.test, lead.test, sale.test, sale.status) == (True, True, True, "sold")
    assert f'"ping_id": "{sent.public_id}"' in page and '"status": "accepted"' in page
    assert f'"lead_id": "{lead.public_id}"' in page and '"status": "sold"' in page and '"payout": "24.00"' in page
    assert page.count("200 OK") == 2 and '"test": true' in page
    with market_scope():
        after = (balance("acme"), balance("seller", "seller_payable"), LedgerTransaction.objects.count())
    assert after == before  # nothing billed
    assert counters in ([], [0])  # nothing capped


def test_a_ping_the_api_refuses_is_shown_as_the_api_answers_it_and_no_post_is_sent():
    load(buyer("acme", "30.00"))
    example = guide()
    bad = {**example.ping, "lead": {**example.ping["lead"], "zip": "nope", "email": "a@b.co"}}
    portal = member("owner@seller.test", "seller")

    response = portal.post(CONSOLE, {"ping": json.dumps(bad), "post": example.post_json}, HTTP_HX_REQUEST="true")

    page = html.unescape(response.content.decode())
    assert response.status_code == 200
    assert "422 validation_error" in page and "The lead is not valid." in page
    assert "lead.zip" in page and "lead.email" in page and "PII is not allowed in a ping." in page
    assert "not sent" in page
    with market_scope():
        assert not Ping.objects.exists() and not Lead.objects.exists()


def test_malformed_json_and_a_bad_post_are_answered_like_the_api():
    load(buyer("acme", "30.00"))
    example = guide()
    portal = member("owner@seller.test", "seller")

    page = html.unescape(portal.post(CONSOLE, {"ping": "{oops", "post": "{}"}, HTTP_HX_REQUEST="true").content.decode())
    assert "400 malformed_json" in page and "The request body is not valid JSON." in page

    post = {**example.post, "lead": {**example.post["lead"], "state": "TX"}}
    page = html.unescape(
        portal.post(
            CONSOLE, {"ping": example.ping_json, "post": json.dumps(post)}, HTTP_HX_REQUEST="true"
        ).content.decode()
    )
    assert "200 OK" in page and "422 ping_mismatch" in page and "lead.state" in page
    with market_scope():
        assert Ping.objects.get().test is True and not Sale.objects.exists()


def test_without_htmx_the_console_answers_with_a_whole_page():
    load(buyer("acme", "30.00"))
    example = guide()
    portal = member("owner@seller.test", "seller")
    page = portal.post(CONSOLE, {"ping": example.ping_json, "post": example.post_json}).content.decode()
    assert "<h1>Test console answers</h1>" in page and page.count("200 OK") == 2
