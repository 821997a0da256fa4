"""The lists people work from, in a real browser: a buyer filters its purchases, searches a
consumer by email and downloads the CSV of what it sees; its returns and statements."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from accounts.tenancy import market_scope
from exchange.models import Sale
from tests.browser.conftest import log_in, person, shot
from tests.exchange.builder import buyer, load, sell

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_buyer_filters_purchases_and_exports_the_csv(browser, live_server):
    data = buyer("acme", "30.00", filters={"field": "state", "op": "in", "value": ["CA", "TX"]})
    load({**data, "timezone": "America/New_York"})
    person("acme", "owner@acme.test")
    leads = [sell(n, state="TX" if n == 2 else "CA")["lead_id"] for n in (1, 2, 3)]

    page = log_in(browser, live_server, "owner@acme.test")
    page.click("nav >> text=Purchases")
    assert page.locator("tbody tr").count() == 3
    assert page.locator("th", has_text="Bought (America/New_York)").count() == 1
    shot(page, "lists-purchases")

    # A search that cannot be read: said by the field, nothing listed.
    page.fill("#id_q", "not a phone")
    page.click("button:has-text('Filter')")
    assert "Search: Phone is not a phone number." in page.text_content("#filter-errors")
    shot(page, "lists-purchases-error")

    page.fill("#id_q", "  Consumer3@Example.COM ")
    page.select_option("#id_status", "sold")
    page.click("button:has-text('Filter')")
    assert page.locator("tbody tr").count() == 1 and leads[2] in page.text_content("tbody")
    shot(page, "lists-purchases-filtered")

    with page.expect_download() as download_info:
        page.click("text=Download CSV")
    download = download_info.value
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert [r["lead_id"] for r in rows] == [leads[2]]
    assert rows[0]["email"] == "consumer3@example.com"

    page.click("text=Clear filters")
    assert page.locator("tbody tr").count() == 3
    page.fill("#id_q", "consumer9@example.com")
    page.click("button:has-text('Filter')")
    assert "No purchases match these filters." in page.text_content("tbody")
    shot(page, "lists-purchases-empty")

    page.click("nav >> text=Returns")
    assert "No returns yet." in page.text_content("tbody")
    shot(page, "lists-returns")

    page.click("nav >> text=Statements")
    assert "month in progress" in page.content()
    shot(page, "lists-statement")


def test_a_seller_sees_its_leads_with_reasons_in_words(browser, live_server):
    load(buyer("acme", "30.00", filters={"field": "state", "op": "in", "value": ["CA"]}))
    person("seller", "owner@seller.test")
    sell(1)
    with market_scope():
        assert Sale.objects.count() == 1

    page = log_in(browser, live_server, "owner@seller.test")
    page.click("nav >> text=Leads")
    assert page.locator("tbody tr").count() == 1
    shot(page, "lists-leads")
