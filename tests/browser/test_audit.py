"""The audit trail in a real browser: an owner reads who changed what, filters it, and sees no
other organization's entries."""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in, person, shot
from tests.exchange.builder import BUYER_KEY_PREFIX, buyer, client, load

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_an_owner_reads_the_trail_and_filters_it(browser, live_server):
    load(buyer("acme", "30.00"))
    person("acme", "owner@acme.test")
    answer = client(f"{BUYER_KEY_PREFIX}acme_000000").patch(
        "/api/v1/contracts/ctr_acme", {"price": "32.00"}, format="json"
    )
    assert answer.status_code == 200, answer.content

    page = log_in(browser, live_server, "owner@acme.test")
    page.click("nav >> text=Audit trail")
    table = page.locator("table.audit-trail").inner_text()
    assert "API key k" in table and "30.00" in table and "32.00" in table
    assert "Seller" not in table  # the sellers' own entries are theirs
    shot(page, "audit-trail")

    page.select_option("select[name=kind]", "member")
    page.click("button:has-text('Filter')")
    page.wait_for_load_state()
    rows = page.locator("table.audit-trail > tbody > tr")
    assert rows.count() == 1 and "created member" in rows.first.inner_text()
    assert "o•••@acme.test" in rows.first.inner_text()  # emails are masked, members' too
    shot(page, "audit-trail-members")
