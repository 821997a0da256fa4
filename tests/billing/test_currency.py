"""GAVEL_CURRENCY drives every money label: portal pages, statements (CSV, PDF) and CSV exports,
shown here with the euro. One format: the symbol (or the code) and two decimals."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.statements import statement_csv, statement_pdf
from core.money import currency_symbol, money_label
from tests.billing.test_statements import build, ledger, pdf_text  # noqa: F401 - the fixture
from tests.exchange.builder import buyer, load, sell
from tests.sessions import member

pytestmark = pytest.mark.django_db


@pytest.fixture
def euro(settings):
    settings.GAVEL_CURRENCY = "EUR"


def test_the_format_is_one_symbol_or_code_and_two_decimals(settings):
    assert money_label(Decimal("1248")) == "$1,248.00"
    assert money_label(Decimal("-10.01")) == "−$10.01"
    assert money_label(None) == "—"
    assert money_label(Decimal("1248"), "EUR") == "€1,248.00"
    assert money_label(Decimal("5"), "CHF") == "CHF 5.00"  # no symbol listed: the code
    settings.GAVEL_CURRENCY = "gbp"
    assert money_label(Decimal("3.5")) == "£3.50" and currency_symbol() == "£"


def test_the_statement_page_csv_and_pdf_in_euros(ledger, euro):  # noqa: F811
    c = member("a@acme.test", "acme", "analyst")
    page = c.get("/portal/billing/statements/?month=2026-10").content.decode()
    for expected in ("€970.00", "−€10.01", "€1,129.99"):
        assert expected in page, expected
    assert "$" not in page.split("<main", 1)[1].replace("$GAVEL", "")

    rows = list(csv.reader(io.StringIO(statement_csv(build("acme", 2026, 10)))))
    assert rows[0][-2:] == ["amount (EUR)", "balance (EUR)"]
    text = pdf_text(statement_pdf(build("acme", 2026, 10)))
    assert "Amount \\(EUR\\)" in text and "USD" not in text


def test_the_balance_page_in_euros(ledger, euro):  # noqa: F811
    page = member("b@acme.test", "acme", "owner").get("/portal/billing/balance/").content.decode()
    assert "€1,089.99" in page or "€" in page.split("Balance", 1)[1][:200]
    assert "Low-balance alert below (€)" in page or "(€)" in page


def test_pages_and_exports_of_leads_and_purchases_in_euros(euro):
    load(buyer("acme", "30.00"))
    assert sell(2)["status"] == "sold"
    seller = member("s@seller.test", "seller", "analyst")
    leads_page = seller.get("/portal/leads/").content.decode()
    assert "€24.00" in leads_page  # 30.00 less the 20 % margin
    export = b"".join(seller.get("/portal/leads.csv").streaming_content).decode()
    header = next(csv.reader(io.StringIO(export)))
    assert "payout (EUR)" in header

    purchaser = member("b@acme.test", "acme", "analyst")
    assert "€30.00" in purchaser.get("/portal/purchases/").content.decode()
    export = b"".join(purchaser.get("/portal/purchases.csv").streaming_content).decode()
    assert "price (EUR)" in next(csv.reader(io.StringIO(export)))


def test_the_api_names_the_exchanges_currency(client):
    schema = client.get(reverse("api:schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    info = json.loads(schema.content)["info"]
    assert info["x-currency"] == "USD" and "**USD**" in info["description"]
