""" "Test my contracts" in a real browser: a buyer picks a recent ping, then changes a field and the
hour, and reads what each contract would do."""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in, person, shot
from tests.exchange.builder import load, ping

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_buyer_tests_its_contracts_on_a_recent_ping_and_on_its_own_lead(browser, live_server):
    load(
        {
            "slug": "acme",
            "name": "Acme",
            "roles": ["buyer"],
            "timezone": "America/New_York",
            "balance": "1000.00",
            "contracts": [
                {
                    "slug": "acme-west",
                    "id": "ctr_west",
                    "name": "West coast",
                    "offer": "auto",
                    "price": "30.00",
                    "filters": {"field": "state", "op": "in", "value": ["CA", "OR", "WA"]},
                    "modifiers": [{"when": {"field": "age", "op": "gte", "value": 30}, "add": "4.00"}],
                },
                {
                    "slug": "acme-office",
                    "id": "ctr_office",
                    "name": "Office hours",
                    "offer": "auto",
                    "price": "22.00",
                    "filters": {"field": "$hour", "op": "between", "value": [9, 17]},
                },
                {
                    "slug": "acme-rest",
                    "id": "ctr_rest",
                    "name": "Weekend test",
                    "offer": "auto",
                    "price": "18.00",
                    "status": "paused",
                },
            ],
        }
    )
    person("acme", "owner@acme.test")
    sent = ping(1, state="TX", zip="73301", age=44)

    page = log_in(browser, live_server, "owner@acme.test")
    page.click("nav >> text=Contracts")
    page.click("text=Test my contracts")
    page.click(f"text={sent['ping_id']}")
    page.wait_for_selector("#verdicts")
    table = page.text_content("#verdicts")
    assert "Filtered out on state" in table and "Paused by you" in table
    shot(page, "contract-test-recent-ping")

    page.select_option("#id_f_state", "CA")
    page.select_option("#id_weekday", "tue")
    page.select_option("#id_hour", "8")
    page.click("button:has-text('Test my contracts')")
    page.wait_for_selector("#verdicts")
    table = page.text_content("#verdicts")
    assert "Would bid $34.00" in table  # 30.00 + 4.00 for age 44, now in CA
    assert "Filtered out on hour of the day ($hour)" in table
    shot(page, "contract-test")
