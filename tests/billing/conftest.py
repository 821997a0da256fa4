"""A small market for returns: Acme buys California at 30.00, Bravo buys California and Texas at
20.00 (so a CA lead goes to Acme and a TX lead to Bravo); the offer keeps a 20 % margin, so a
30.00 sale pays the seller 24.00 and the exchange 6.00."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Sum
from django.test import Client

from accounts.models import Organization
from accounts.services import membership_set, user_upsert
from accounts.tenancy import market_scope
from billing.models import LedgerAccount, LedgerEntry
from exchange.models import Sale
from exchange.webhooks import Event
from tests.exchange.builder import BUYER_KEY_PREFIX, buyer, client, load, ping, post

ACME_KEY = f"{BUYER_KEY_PREFIX}acme_000000"
BRAVO_KEY = f"{BUYER_KEY_PREFIX}bravo_000000"
PASSWORD = "correct-horse-battery"


@pytest.fixture
def market(db: None) -> None:
    load(
        buyer("acme", "30.00", filters={"field": "state", "op": "in", "value": ["CA"]}),
        buyer("bravo", "20.00", filters={"field": "state", "op": "in", "value": ["CA", "TX"]}),
    )


def sell(n: int, state: str = "CA", **kwargs: Any) -> Sale:
    """Ping and post consumer ``n`` from ``state``; the sale it made."""
    answer = ping(n, state=state, **kwargs)
    assert answer["status"] == "accepted", answer
    key = kwargs.get("key")
    sold = post(answer["ping_id"], n, state=state, **({"key": key} if key else {}))
    assert sold["status"] == "sold", sold
    with market_scope():
        return Sale.objects.select_related("organization", "seller", "lead", "contract").get(
            lead__public_id=sold["lead_id"], status="sold"
        )


def org(slug: str) -> Organization:
    return Organization.objects.get(slug=slug)


def balance(slug: str | None, kind: str) -> Decimal:
    """The account's cached balance (0.00 while nothing was ever booked to it)."""
    with market_scope():
        account = LedgerAccount.objects.filter(organization__slug=slug, kind=kind).first()
    return account.balance if account is not None else Decimal("0.00")


def money() -> dict[str, Decimal]:
    """The three sides of a sale: Acme's balance, the seller's payable, the exchange's revenue."""
    return {
        "acme": balance("acme", "buyer_balance"),
        "seller": balance("seller", "seller_payable"),
        "platform": balance(None, "platform_revenue"),
    }


def ledger_is_consistent() -> None:
    """Every transaction sums to zero and every cached balance is the sum of its entries."""
    with market_scope():
        assert LedgerEntry.objects.aggregate(total=Sum("amount"))["total"] == Decimal("0.00")
        for total in LedgerEntry.objects.values("transaction").annotate(total=Sum("amount")):
            assert total["total"] == Decimal("0.00"), total
        for account in LedgerAccount.objects.all():
            entries = LedgerEntry.objects.filter(account=account).aggregate(total=Sum("amount"))["total"]
            assert account.balance == (entries or Decimal("0.00")), account


def events(slug: str, type: str) -> list[dict[str, Any]]:
    with market_scope():
        return [e.data for e in Event.objects.filter(organization__slug=slug, type=type).order_by("pk")]


def return_post(sale_id: str, key: str = ACME_KEY, **body: Any) -> Any:
    body = {"reason": "bad_phone", "note": "Disconnected.", **body}
    return client(key).post(f"/api/v1/purchases/{sale_id}/return", body, format="json")


def member(email: str, slug: str, role: str) -> Client:
    membership_set(user=user_upsert(email=email, password=PASSWORD), organization=org(slug), role=role)
    c = Client()
    assert c.login(username=email, password=PASSWORD)
    return c


@pytest.fixture
def operator() -> Any:
    return user_upsert(email="op@gavel.test", password=PASSWORD, operator=True)
