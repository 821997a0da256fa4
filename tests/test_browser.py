"""The portals in a real browser (Debian's Chromium, driven by Playwright), as people use them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from accounts.models import Organization
from accounts.services import membership_set, user_upsert
from tests.exchange.builder import buyer, load, sell
from tests.sessions import PASSWORD

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    # Playwright drives the browser from an event loop in this thread; the ORM calls the tests
    # make between page actions are still plain synchronous calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield chromium
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def person(slug: str, email: str, role: str = "owner") -> None:
    user = user_upsert(email=email, password=PASSWORD)
    membership_set(user=user, organization=Organization.objects.get(slug=slug), role=role)


def log_in(browser, live_server, email: str):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/portal/")
    return page


def test_a_buyer_sees_its_contract_and_returns_a_purchase(browser, live_server):
    load(buyer("acme", "30.00", caps={"day": 10}))
    person("acme", "owner@acme.test")
    sold = sell(1)

    page = log_in(browser, live_server, "owner@acme.test")
    assert "Acme" in page.text_content("h1")
    page.click("text=Contracts")
    page.click("text=Acme-C")
    assert page.locator("text=ctr_acme").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "buyer-contract.png"))

    page.click("nav >> text=Purchases")
    assert sold["lead_id"] in page.content()
    page.click("a[href*='/portal/purchases/sal_']")
    assert "consumer1@example.com" in page.content()  # the buyer bought it: full data
    page.select_option("select[name=reason]", "bad_phone")
    page.fill("textarea[name=note]", "Disconnected number")
    page.click("button:has-text('Return')")
    page.wait_for_load_state()
    assert "Requested" in page.content() or "requested" in page.content()
    page.screenshot(path=str(ARTIFACTS / "buyer-return.png"))


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
    page.screenshot(path=str(ARTIFACTS / "seller-lead.png"))


def test_an_outsider_gets_not_found(browser, live_server):
    load(buyer("acme", "30.00"))
    person("seller", "owner@seller.test")
    sold = sell(3)
    page = log_in(browser, live_server, "owner@seller.test")
    response = page.goto(f"{live_server.url}/portal/purchases/{sold['lead_id']}/")
    assert response.status == 404
    assert "Not found" in page.content()
