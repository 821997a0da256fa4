"""A buyer records a conversion on a purchase; the seller sees the postbacks it set off."""

from __future__ import annotations

import pytest

from reporting.tasks import postbacks_due
from tests.browser.conftest import log_in, person, shot
from tests.exchange.builder import buyer, load, sell
from tests.exchange.receiver import Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def tracker():
    running = Receiver().start()
    yield running
    running.stop()


def test_a_buyer_records_a_conversion_and_the_seller_sees_the_postback(browser, live_server, tracker, settings):
    settings.GAVEL_POSTBACKS = {"retry_jitter": 0}
    template = f"http://127.0.0.1:{tracker.port}/pb?lead={{lead_id}}&event={{event}}&value={{value}}&payout={{payout}}"
    load(buyer("acme", "20.00"), campaign={"postback_url": template})
    person("acme", "owner@acme.test")
    person("seller", "owner@seller.test")
    lead_id = sell(0)["lead_id"]
    tracker.answer(200)
    assert postbacks_due() == 1  # the sale's postback

    page = log_in(browser, live_server, "owner@acme.test")
    page.click("nav >> text=Purchases")
    page.click("table a >> nth=0")
    page.wait_for_selector("#conversions form")  # loaded by htmx from reporting
    page.fill("#conversion-value", "a lot")
    page.click("button:has-text('Record conversion')")
    page.wait_for_selector("text=Nothing was recorded")
    assert page.input_value("#conversion-value") == "a lot"
    page.locator("#conversions").scroll_into_view_if_needed()
    shot(page, "conversion-error")

    page.fill("#conversion-value", "120.00")
    page.click("button:has-text('Record conversion')")
    page.wait_for_selector("text=recorded: sale, $120.00")
    assert "$120.00" in page.inner_text("#conversions table")
    shot(page, "conversion-recorded")

    tracker.answer(500)
    assert postbacks_due() == 1  # the conversion's postback: the tracker fails once
    assert [r.path.split("&payout")[0] for r in tracker.requests] == [
        f"/pb?lead={lead_id}&event=sold&value=16.00",
        f"/pb?lead={lead_id}&event=sale&value=120.00",
    ]

    seller = log_in(browser, live_server, "owner@seller.test")
    seller.click("nav >> text=Postbacks")
    table = seller.inner_text("table.postbacks")
    assert "HTTP 500" in table and "HTTP 200" in table and "Succeeded" in table and "Pending" in table
    shot(seller, "seller-postbacks")

    seller.click("nav >> text=Campaigns")
    seller.click("text=seller-auto")
    seller.wait_for_selector("#postback input[name=postback_url]")
    seller.fill("#id_postback_url", "https://t.example.com/pb?l={lead}")
    seller.click("button:has-text('Save postback URL')")
    seller.wait_for_selector("text=Unknown placeholder {lead}")
    seller.locator("#postback").scroll_into_view_if_needed()
    shot(seller, "seller-campaign-postback")
