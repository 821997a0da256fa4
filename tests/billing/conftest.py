"""A small market for returns: Acme buys California at 30.00, Bravo buys California and Texas at
20.00 (so a CA lead goes to Acme and a TX lead to Bravo); the offer keeps a 20 % margin, so a
30.00 sale pays the seller 24.00 and the exchange 6.00."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from accounts.services import user_upsert
from accounts.tenancy import market_scope
from exchange.models import Sale
from tests.exchange.builder import BUYER_KEY_PREFIX, buyer, client, load, sell
from tests.ledger import balance
from tests.sessions import PASSWORD

ACME_KEY = f"{BUYER_KEY_PREFIX}acme_000000"
BRAVO_KEY = f"{BUYER_KEY_PREFIX}bravo_000000"


@pytest.fixture
def market(db: None) -> None:
    load(
        buyer("acme", "30.00", filters={"field": "state", "op": "in", "value": ["CA"]}),
        buyer("bravo", "20.00", filters={"field": "state", "op": "in", "value": ["CA", "TX"]}),
    )


def sold(n: int, state: str = "CA", **kwargs: Any) -> Sale:
    """Sell consumer ``n``'s lead from ``state``; the sale it made."""
    answer = sell(n, state=state, **kwargs)
    assert answer["status"] == "sold", answer
    with market_scope():
        return Sale.objects.select_related("organization", "seller", "lead", "contract").get(
            lead__public_id=answer["lead_id"], status="sold"
        )


def money() -> dict[str, Decimal]:
    """The three sides of a sale: Acme's balance, the seller's payable, the exchange's revenue."""
    return {
        "acme": balance("acme", "buyer_balance"),
        "seller": balance("seller", "seller_payable"),
        "platform": balance(None, "platform_revenue"),
    }


def return_post(sale_id: str, key: str = ACME_KEY, **body: Any) -> Any:
    body = {"reason": "bad_phone", "note": "Disconnected.", **body}
    return client(key).post(f"/api/v1/purchases/{sale_id}/return", body, format="json")


@pytest.fixture
def operator() -> Any:
    return user_upsert(email="op@gavel.test", password=PASSWORD, operator=True)
