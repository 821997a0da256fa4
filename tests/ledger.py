"""What the books say, for tests: accounts' balances by organization and kind, and the ledger's
invariants (STYLE.md: money tests assert ledger sum = cached balance)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pgtrigger
from django.db import connection, transaction
from django.db.models import Sum

from accounts.models import Organization
from accounts.tenancy import market_scope
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction
from billing.services import funds_hold, sale_book
from core.money import to_money

ZERO = Decimal("0.00")


@contextmanager
def ledger_tampering() -> Iterator[None]:
    """Edit the ledger behind the services' back (tests only): on PostgreSQL its triggers refuse
    any change of an entry and an unbalanced transaction (billing.models.LedgerEntry); pgtrigger's
    ignore switches them off for the block's statements (a setting local to the transaction)."""
    with pgtrigger.ignore(
        "billing.LedgerEntry:ledger_entry_append_only", "billing.LedgerEntry:ledger_transaction_balanced"
    ):
        yield
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # the deferred balance check runs now, still ignored
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def account(slug: str | None, kind: str = "buyer_balance") -> LedgerAccount | None:
    """The organization's account of ``kind`` (``slug`` None: the exchange's own), if one was opened."""
    with market_scope():
        return LedgerAccount.objects.filter(organization__slug=slug, kind=kind).first()


def balance(slug: str | None, kind: str = "buyer_balance") -> Decimal:
    """The account's cached balance (0.00 while nothing was ever booked to it)."""
    found = account(slug, kind)
    return found.balance if found is not None else ZERO


def held(slug: str | None, kind: str = "buyer_balance") -> Decimal:
    """The funds held on the account for sales in flight."""
    found = account(slug, kind)
    return found.held if found is not None else ZERO


def book(sale_id: str, price: str, payout: str, buyer: str = "acme", seller: str = "seller") -> LedgerTransaction:
    """A sale the way the exchange books it: hold the price, then book it (same transaction)."""
    buying, selling = Organization.objects.get(slug=buyer), Organization.objects.get(slug=seller)
    with transaction.atomic():
        funds_hold(organization_id=buying.pk, amount=Decimal(price))
        return sale_book(
            sale_public_id=sale_id,
            buyer=buying,
            seller=selling,
            price=Decimal(price),
            payout=Decimal(payout),
            memo=f"Sale {sale_id}",
        )


def ledger_is_consistent(*, settled: bool = False) -> None:
    """Every transaction sums to zero and every cached balance is the sum of its entries (sums
    quantized: SQLite adds decimals as floats). ``settled``: every sale has also finished, so no
    funds are still held and no buyer is past its credit limit."""
    with market_scope():
        for row in LedgerEntry.objects.values("transaction").annotate(total=Sum("amount")):
            assert to_money(row["total"]) == ZERO, row
        for each in LedgerAccount.objects.all():
            total = LedgerEntry.objects.filter(account=each).aggregate(total=Sum("amount"))["total"]
            assert each.balance == to_money(total or ZERO), each
            if settled:
                assert each.held == ZERO, each
                if each.kind == "buyer_balance":
                    assert each.balance >= -each.credit_limit, each
