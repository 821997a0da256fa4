"""A buyer builds a contract in the browser with the builder, and the exchange bids with it; then
pauses it, and it stops bidding."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from tests.browser.conftest import log_in, person, shot
from tests.exchange.builder import buyer, load, ping
from tests.exchange.receiver import Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def test_a_buyer_builds_a_contract_that_bids_then_pauses_it(browser, live_server):
    load(buyer("acme", contracts=[]))  # the organization's time zone is UTC
    person("acme", "owner@acme.test")
    page = log_in(browser, live_server, "owner@acme.test")
    page.click("nav >> text=Contracts")
    assert "Create your first contract" in page.text_content("table")
    shot(page, "contract-list-empty")
    page.click("text=New contract")
    page.fill("#id_name", "Sunbelt builder")
    page.fill("#id_price", "20.00")

    # Which leads: State is one of CA, TX.
    page.click(".rule-group.root[data-node=filters] >> .js-add-leaf >> nth=-1")
    row = page.locator(".group-rows[data-parent=filters] > .rule-row").first
    assert row.locator("select.js-op").input_value() == "in"
    row.locator("label:has-text('CA') input").check()
    row.locator("label:has-text('TX') input").check()

    # Modifier: add $5.00 when State is one of TX.
    page.click("text=+ Modifier")
    modifier = page.locator("#modifiers .modifier").first
    modifier.locator("input[name$='-amount']").fill("5.00")
    modifier.locator(".js-add-leaf").click()
    modifier.locator(".rule-row label:has-text('TX') input").check()

    # Schedule: every hour but the night of a day three days from now (whatever today is), the
    # night painted out by dragging over it.
    page.check("input[name=schedule_mode][value=grid]")
    page.click("button.js-fill[data-fill=all]")
    closed = DAYS[(datetime.now(UTC).weekday() + 3) % 7]
    first = page.locator(f"input[value='{closed}:0'] + span").bounding_box()
    last = page.locator(f"input[value='{closed}:5'] + span").bounding_box()
    page.mouse.move(first["x"] + 5, first["y"] + 5)
    page.mouse.down()
    page.mouse.move(last["x"] + 5, last["y"] + 5, steps=8)
    page.mouse.up()
    assert not page.locator(f"input[value='{closed}:3']").is_checked()
    assert page.locator(f"input[value='{closed}:6']").is_checked()
    page.fill("input[name=cap_day]", "50")
    shot(page, "contract-new")

    # A typo: nothing is saved, the refusal is by the price, and the rows and hours built stay.
    page.fill("#id_price", "20,00")
    page.click("button:has-text('Create contract')")
    page.wait_for_selector("text=Nothing was saved")
    assert "A valid number is required." in page.text_content("#id_price + p.field-error")
    assert page.locator(".group-rows[data-parent=filters] input[value=TX]").is_checked()
    assert page.locator("#modifiers input[name$='-amount']").input_value() == "5.00"
    assert not page.locator(f"input[value='{closed}:3']").is_checked()
    shot(page, "contract-new-refused")
    page.fill("#id_price", "20.00")
    page.click("button:has-text('Create contract')")
    page.wait_for_selector("text=Contract created")
    text = page.text_content("dl.facts")
    assert "State is one of CA, TX" in text and "When State is one of TX: add $5.00" in text
    assert f"{closed.title()} 6:00–24:00" in text and "(UTC)" in text
    assert "Today: 0 of 50 leads" in text
    shot(page, "contract-detail")
    with market_scope():
        contract = BuyerContract.objects.get(name="Sunbelt builder")
    assert contract.filters == {"field": "state", "op": "in", "value": ["CA", "TX"]}
    assert contract.schedule["windows"][closed] == [["06:00", "24:00"]]

    # The next ping: a Texas lead gets the bid at 25.00 (20.00 + 5.00; the seller is paid 80%).
    answer = ping(1, state="TX")
    assert answer["status"] == "accepted" and [b["payout"] for b in answer["bids"]] == ["20.00"]
    assert ping(2, state="NY")["status"] == "rejected"  # filtered out

    page.click("text=Edit")
    page.wait_for_selector("h1:has-text('Edit Sunbelt builder')")
    assert page.locator(".group-rows[data-parent=filters] input[value=TX]").is_checked()
    shot(page, "contract-edit")
    page.click("text=Cancel")

    page.click("button:has-text('Pause')")
    page.wait_for_selector("text=Paused: the contract no longer bids.")
    assert ping(3, state="TX")["status"] == "rejected"
    shot(page, "contract-paused")


def test_a_buyer_sends_a_test_lead_and_sees_the_answer_on_the_page(browser, live_server):
    server = Receiver().start()
    try:
        delivery = {"method": "webhook", "url": server.url, "accept": {"path": "status", "equals": "accepted"}}
        load(buyer("acme", "30.00", delivery={**delivery, "reason_path": "error"}))
        person("acme", "owner@acme.test")
        server.answer(200, body=b'{"status": "rejected", "error": "ZIP outside our area"}')
        page = log_in(browser, live_server, "owner@acme.test")
        page.goto(f"{live_server.url}/portal/contracts/ctr_acme/")
        page.click("button:has-text('Send test lead')")
        page.wait_for_selector("#test-delivery-log")
        assert page.url.endswith("/portal/contracts/ctr_acme/")  # shown in place, by htmx
        log = page.text_content("#test-delivery-log")
        assert "Not accepted" in log and "Your server rejected it: ZIP outside our area" in log
        assert f"POST {server.url}" in log and '"test": true' in log
        assert len(server.requests) == 1
        shot(page, "contract-test-delivery")
        page.click("text=Edit")
        page.check("input[name=pricing][value=rtb]")
        page.fill("#id_rtb_url", "not a url")
        page.click("button:has-text('Save changes')")
        page.wait_for_selector("text=Nothing was saved")
        assert "Enter a valid URL." in page.text_content("#id_rtb_url + p.field-error")
        assert page.locator("#id_delivery_url").input_value() == server.url
        shot(page, "contract-edit-rtb-delivery")
    finally:
        server.stop()


def test_an_analyst_reads_the_contract_but_is_refused_its_editor(browser, live_server):
    load(buyer("acme", "30.00"))
    person("acme", "analyst@acme.test", role="analyst")
    page = log_in(browser, live_server, "analyst@acme.test")

    page.click("nav >> text=Contracts")
    assert page.locator("text=New contract").count() == 0  # no button to a page the role lacks
    page.click("text=Acme-C")
    assert page.locator("button:has-text('Pause')").count() == 0
    assert page.locator("a:has-text('Edit')").count() == 0
    edit_url = page.url.rstrip("/") + "/edit"

    response = page.goto(edit_url)
    assert response is not None and response.status == 403
    assert "needs the manager role or higher" in page.inner_text("body")
    shot(page, "contract-edit-refused-analyst")
