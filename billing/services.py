"""Writes to the ledger. Every booking is one balanced, idempotent transaction."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, Q

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


def accounts_get(wanted: Sequence[tuple[int | None, str]]) -> list[LedgerAccount]:
    """The accounts for these (organization id, kind) pairs, in order, created where missing;
    one query when they all exist."""
    match = Q()
    for organization_id, kind in wanted:
        match |= Q(organization_id=organization_id, kind=kind)
    with market_scope():
        found = {(a.organization_id, a.kind): a for a in LedgerAccount.objects.filter(match)}
        for organization_id, kind in wanted:
            if (organization_id, kind) not in found:
                found[(organization_id, kind)], _ = LedgerAccount.objects.get_or_create(
                    organization_id=organization_id, kind=kind
                )
    return [found[pair] for pair in wanted]


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


class FundsRefused(Exception):
    """The buyer's available funds (balance − held + credit limit) do not cover the price."""


def funds_hold(*, organization_id: int, amount: Decimal) -> None:
    """Hold ``amount`` of the buyer's funds for a sale being delivered, or raise FundsRefused.

    One conditional UPDATE: the hold happens only if the balance stays at or above −credit limit,
    so concurrent posts can never overspend. Call inside the reservation's transaction.
    """
    with market_scope():
        updated = LedgerAccount.objects.filter(
            organization_id=organization_id,
            kind=LedgerAccount.Kind.BUYER_BALANCE,
            balance__gte=F("held") + amount - F("credit_limit"),
        ).update(held=F("held") + amount)
    if updated != 1:
        raise FundsRefused(f"organization {organization_id} cannot cover {amount}")


def funds_release(*, organization_id: int, amount: Decimal) -> None:
    """Give back a hold (the sale was released, or it is being booked)."""
    with market_scope():
        LedgerAccount.objects.filter(organization_id=organization_id, kind=LedgerAccount.Kind.BUYER_BALANCE).update(
            held=F("held") - amount
        )


def sale_book(
    *, sale_public_id: str, buyer: Organization, seller: Organization, price: Decimal, payout: Decimal, memo: str
) -> LedgerTransaction:
    """Book a sale: buyer −price, seller payable +payout, platform revenue +margin; and drop its hold.

    Idempotent by the sale's id: booking the same sale twice books it once.
    """
    margin = price - payout
    accounts = accounts_get(
        [
            (buyer.pk, LedgerAccount.Kind.BUYER_BALANCE),
            (seller.pk, LedgerAccount.Kind.SELLER_PAYABLE),
            (None, LedgerAccount.Kind.PLATFORM_REVENUE),
        ]
    )
    lines = list(zip(accounts, (-price, payout, margin), strict=True))
    with transaction.atomic():
        booked, created = ledger_book(
            kind=LedgerTransaction.Kind.SALE,
            idempotency_key=f"sale:{sale_public_id}",
            lines=[(account, amount) for account, amount in lines if amount != ZERO],
            memo=memo,
        )
        if created:
            funds_release(organization_id=buyer.pk, amount=price)
    return booked
