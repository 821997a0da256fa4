"""A seller's campaign page in a real browser: the posting instructions, the test console, the
floor and blocked buyers."""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in, person, shot
from tests.exchange.builder import buyer, load, sell

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_seller_reads_the_instructions_and_runs_the_test_console(browser, live_server):
    load(buyer("acme", "30.00"))
    person("seller", "owner@seller.test")
    sell(1)  # a buyer to list under its token

    page = log_in(browser, live_server, "owner@seller.test")
    page.click("nav >> text=Campaigns")
    page.click("text=seller-auto")
    page.wait_for_selector("#terms input[name=floor]")  # loaded by htmx
    assert page.locator("#field-email").inner_text().count("Never") == 1
    assert "$GAVEL_API_KEY" in page.inner_text("#ping-curl")
    shot(page, "seller-campaign")

    page.click("button:has-text('Send test ping and post')")
    page.wait_for_selector("#answer-2 pre")
    answers = page.inner_text("#console-answers")
    assert "Ping answer" in answers and "Post answer" in answers
    assert '"status": "accepted"' in answers and '"status": "sold"' in answers and answers.count("200 OK") == 2
    page.locator("#console").scroll_into_view_if_needed()
    shot(page, "seller-console")

    page.fill("#id_floor", "nope")
    page.click("button:has-text('Save floor and blocks')")
    page.wait_for_selector("text=Nothing was saved")
    page.fill("#id_floor", "2.50")
    page.check("#terms input[name=blocked_buyers]")
    page.click("button:has-text('Save floor and blocks')")
    page.wait_for_selector("text=Saved:")
    shot(page, "seller-terms")
    page.wait_for_selector("#terms .pill.paused")  # the buyer shows as blocked
    shot(page, "seller-terms")
