"""Writes to the ledger. Every booking is one balanced, idempotent transaction."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F

from accounts.models import Organization
from accounts.tenancy import market_scope
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction
from billing.money import ZERO, to_money


class BillingError(Exception):
    """A booking that cannot be made."""


def account_get(*, organization: Organization | None, kind: str) -> LedgerAccount:
    """The organization's account of this kind (the exchange's own when ``organization`` is None)."""
    with market_scope():
        account, _ = LedgerAccount.objects.get_or_create(organization=organization, kind=kind)
    return account


def ledger_book(
    *,
    kind: str,
    idempotency_key: str,
    lines: Sequence[tuple[LedgerAccount, Decimal]],
    memo: str = "",
    reference: str = "",
) -> tuple[LedgerTransaction, bool]:
    """Book a balanced transaction once; a repeat of the key returns the first booking.

    The entries must sum to zero. Cached balances move in the same database transaction, by
    ``F()`` increments on rows locked in primary-key order (no lost update, no deadlock).
    Returns ``(transaction, created)``.
    """
    amounts = [to_money(amount) for _, amount in lines]
    if sum(amounts, ZERO) != ZERO:
        raise BillingError(f"entries of {idempotency_key} sum to {sum(amounts, ZERO)}, not 0.00")
    with market_scope(), transaction.atomic():
        existing = LedgerTransaction.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                booked = LedgerTransaction.objects.create(
                    kind=kind, idempotency_key=idempotency_key, memo=memo, reference=reference
                )
        except IntegrityError:
            return LedgerTransaction.objects.get(idempotency_key=idempotency_key), False
        account_ids = sorted({account.pk for account, _ in lines})
        list(LedgerAccount.objects.select_for_update().filter(pk__in=account_ids).order_by("pk"))
        LedgerEntry.objects.bulk_create(
            LedgerEntry(transaction=booked, account=account, organization_id=account.organization_id, amount=amount)
            for (account, _), amount in zip(lines, amounts, strict=True)
        )
        for (account, _), amount in zip(lines, amounts, strict=True):
            LedgerAccount.objects.filter(pk=account.pk).update(balance=F("balance") + amount)
    return booked, True


def topup_record(
    *, organization: Organization, amount: Decimal, reference: str, idempotency_key: str
) -> LedgerTransaction:
    """Record money a buyer sent: its balance +amount, exchange cash −amount."""
    amount = to_money(amount)
    if amount <= ZERO:
        raise BillingError("a top-up must be a positive amount")
    if not reference.strip():
        raise BillingError("a top-up needs a reference (wire id, invoice…)")
    booked, _ = ledger_book(
        kind=LedgerTransaction.Kind.TOPUP,
        idempotency_key=idempotency_key,
        lines=[
            (account_get(organization=organization, kind=LedgerAccount.Kind.BUYER_BALANCE), amount),
            (account_get(organization=None, kind=LedgerAccount.Kind.CASH), -amount),
        ],
        memo=f"Top-up for {organization.name}",
        reference=reference,
    )
    return booked


def credit_limit_set(*, organization: Organization, credit_limit: Decimal) -> LedgerAccount:
    """Let the buyer's balance go down to −``credit_limit``."""
    credit_limit = to_money(credit_limit)
    if credit_limit < ZERO:
        raise BillingError("a credit limit cannot be negative")
    account = account_get(organization=organization, kind=LedgerAccount.Kind.BUYER_BALANCE)
    with market_scope():
        LedgerAccount.objects.filter(pk=account.pk).update(credit_limit=credit_limit)
        account.refresh_from_db()
    return account
