"""The portals in a real browser, as people use them: what a buyer and a seller see."""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in, person, shot
from tests.exchange.builder import buyer, load, sell

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_buyer_sees_its_contract_and_returns_a_purchase(browser, live_server):
    load(buyer("acme", "30.00", caps={"day": 10}))
    person("acme", "owner@acme.test")
    sold = sell(1)

    page = log_in(browser, live_server, "owner@acme.test")
    assert "Acme" in page.text_content("h1")
    page.click("text=Contracts")
    page.click("text=Acme-C")
    assert page.locator("text=ctr_acme").count() >= 1
    shot(page, "buyer-contract")

    page.click("nav >> text=Purchases")
    assert sold["lead_id"] in page.content()
    page.click("a[href*='/portal/purchases/sal_']")
    assert "consumer1@example.com" in page.content()  # the buyer bought it: full data
    page.select_option("select[name=reason]", "bad_phone")
    page.fill("textarea[name=note]", "Disconnected number")
    page.click("button:has-text('Return')")
    page.wait_for_load_state()
    assert "Requested" in page.content() or "requested" in page.content()
    shot(page, "buyer-return")


def test_a_seller_sees_its_lead_sold_but_not_the_buyer(browser, live_server):
    load(buyer("acme", "30.00"))
    person("seller", "owner@seller.test")
    sold = sell(2)

    page = log_in(browser, live_server, "owner@seller.test")
    page.click("nav >> text=Leads")
    assert sold["lead_id"] in page.content()
    page.click(f"text={sold['lead_id']}")
    content = page.content()
    assert "24.00" in content and "Sold" in content
    assert "Acme" not in content and "consumer2@example.com" not in content  # no buyer, no PII
    shot(page, "seller-lead")


def test_an_outsider_gets_not_found(browser, live_server):
    load(buyer("acme", "30.00"), buyer("bravo", "20.00"))
    person("bravo", "owner@bravo.test")
    sold = sell(3)  # Acme's purchase
    page = log_in(browser, live_server, "owner@bravo.test")
    response = page.goto(f"{live_server.url}/portal/purchases/{sold['lead_id']}/")
    assert response.status == 404
    assert "Not found" in page.content()
