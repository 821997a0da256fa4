"""The buyer's contract page shows the terms as the API and the market file write them."""

from __future__ import annotations

import html

from django.test import Client

from tests.sessions import PASSWORD


def test_the_contract_page_shows_money_in_dollars_and_terms_as_json(market):
    portal = Client()
    assert portal.login(username="owner@acme.test", password=PASSWORD)
    page = html.unescape(portal.get("/portal/contracts/ctr_acme_west/").content.decode())
    assert "<dt>Price</dt><dd>$30.00</dd>" in page
    assert "<dt>Max price</dt><dd>$60.00</dd>" in page
    assert "<dd>— / — / — / —</dd>" in page  # no budgets
    assert '"field": "state"' in page and '"op": "in"' in page and '"value": [\n    "CA",\n    "OR",' in page
    assert "{'field'" not in page
