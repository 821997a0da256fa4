"""The buyer's contract page shows the terms in words, money in dollars."""

from __future__ import annotations

import html

from django.test import Client

from tests.sessions import PASSWORD


def test_the_contract_page_shows_money_in_dollars_and_terms_in_words(market):
    portal = Client()
    assert portal.login(username="owner@acme.test", password=PASSWORD)
    page = html.unescape(portal.get("/portal/contracts/ctr_acme_west/").content.decode())
    assert "<dt>Price</dt><dd>$30.00</dd>" in page
    assert "<dt>Max price</dt><dd>$60.00</dd>" in page
    assert "<dd>Today: 0 of 100 leads</dd>" in page  # a cap, no budget
    assert "<dd>State is one of CA, OR, WA</dd>" in page
    assert "<dd>Any time (America/New_York)</dd>" in page
    assert '"field"' not in page and "{'field'" not in page
