"""Reads of the ledger for one organization. The organization is always a required argument, and
every query filters by it as well as running in its tenant scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import F, QuerySet, Sum, Window

from accounts.models import Organization
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction
from core.money import ZERO, to_money


def accounts_of(*, organization: Organization) -> QuerySet[LedgerAccount]:
    """The organization's own ledger accounts (buyer balance, seller payable)."""
    return LedgerAccount.objects.filter(organization=organization).order_by("kind")


def account_of(*, organization: Organization, kind: str) -> LedgerAccount | None:
    """The organization's account of this kind, or None if nothing was ever booked to it."""
    return LedgerAccount.objects.filter(organization=organization, kind=kind).first()


def entries_of(*, organization: Organization, account: LedgerAccount) -> QuerySet[LedgerEntry]:
    """The account's entries, newest first, each with its transaction and ``balance_after`` (the
    account's balance once that entry was booked: a window sum over all the account's entries,
    computed before any LIMIT, so it is right on every page of the list)."""
    return (
        LedgerEntry.objects.filter(organization=organization, account=account)
        .select_related("transaction")
        .annotate(balance_after=Window(Sum("amount"), order_by=[F("created_at").asc(), F("id").asc()]))
        .order_by("-created_at", "-id")
    )


def entries_of_kind(*, organization: Organization, account: LedgerAccount, kind: str) -> QuerySet[LedgerEntry]:
    """The account's entries of one kind of transaction (its top-ups, its payouts), newest first."""
    return (
        LedgerEntry.objects.filter(organization=organization, account=account, transaction__kind=kind)
        .select_related("transaction")
        .order_by("-created_at", "-id")
    )


def balance_at(*, organization: Organization, account: LedgerAccount, at: datetime) -> Decimal:
    """The account's balance just before ``at``: the sum of its entries booked earlier."""
    total = LedgerEntry.objects.filter(organization=organization, account=account, created_at__lt=at).aggregate(
        total=Sum("amount")
    )["total"]
    return to_money(total if total is not None else ZERO)


@dataclass(frozen=True)
class PayoutSummary:
    """A seller's money: what it is owed now, what it earned and was paid to date."""

    owed: Decimal
    earned: Decimal
    paid: Decimal
    returned: Decimal


def payout_summary(*, organization: Organization) -> PayoutSummary:
    """The seller's payable: owed (the balance), earned (sales), paid (payouts), returned (claw-backs)."""
    account = account_of(organization=organization, kind=LedgerAccount.Kind.SELLER_PAYABLE)
    if account is None:
        return PayoutSummary(ZERO, ZERO, ZERO, ZERO)
    totals = dict(
        LedgerEntry.objects.filter(organization=organization, account=account)
        .order_by()
        .values_list("transaction__kind")
        .annotate(total=Sum("amount"))
        .values_list("transaction__kind", "total")
    )

    def total(kind: str) -> Decimal:
        return to_money(totals.get(kind) or ZERO)

    return PayoutSummary(
        owed=to_money(account.balance),
        earned=total(LedgerTransaction.Kind.SALE),
        paid=-total(LedgerTransaction.Kind.PAYOUT),
        returned=-total(LedgerTransaction.Kind.RETURN),
    )
