"""Writes to the ledger. Every booking is one balanced, idempotent transaction.

What the ledger guarantees (DESIGN.md §9):

* entries are only ever added (never updated nor deleted), and each transaction's sum to 0.00;
* an idempotency key books at most one transaction: a retried task gets the first booking back;
* an account's cached ``balance`` moves in the same database transaction as its entries, and
  :func:`ledger_reconcile` proves it (run every 15 minutes by ``billing.tasks``);
* a buyer never spends past its credit limit (:func:`funds_hold` is one conditional UPDATE), and
  ``balance.low`` is sent once per fall below its threshold (:func:`low_balance_check`);
* a seller is never paid more than it is owed (:func:`payout_record`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Membership, Organization
from accounts.roles import role_require
from accounts.tenancy import market_scope
from billing.models import AVAILABLE_FUNDS, LedgerAccount, LedgerEntry, LedgerTransaction, ReconciliationRun
from billing.sql import accounts_read, balance_move, funds_held, funds_unheld, low_balance_fallen
from core.audit import audit_record
from core.hooks import event_emit, holds_expected
from core.money import ZERO, MoneyField, money_str, to_money
from core.sql import model_insert, sql_rows

logger = logging.getLogger(__name__)


class BillingError(Exception):
    """A booking that cannot be made."""


class PayoutRefused(BillingError):
    """A payout larger than what the seller is owed."""


def account_get(*, organization: Organization | None, kind: str) -> LedgerAccount:
    """The organization's account of this kind (the exchange's own when ``organization`` is None)."""
    with market_scope():
        account, _ = LedgerAccount.objects.get_or_create(organization=organization, kind=kind)
    return account


@dataclass(frozen=True)
class AccountRef:
    """A ledger account as a booking names it: its id and owner (a :class:`LedgerAccount` does too)."""

    pk: int
    organization_id: int | None


def accounts_get(wanted: Sequence[tuple[int | None, str]]) -> list[AccountRef]:
    """The accounts for these (organization id, kind) pairs, in order, created where missing;
    one statement when they all exist."""
    found = {(owner, kind): AccountRef(pk, owner) for pk, owner, kind in sql_rows(*accounts_read(wanted))}
    for owner, kind in wanted:
        if (owner, kind) not in found:
            with market_scope():
                # None is the exchange's own account: the stubs do not know the FK is nullable.
                account, _ = LedgerAccount.objects.get_or_create(organization_id=owner, kind=kind)  # type: ignore[misc]
            found[(owner, kind)] = AccountRef(account.pk, owner)
    return [found[pair] for pair in wanted]


def _same_kind(existing: LedgerTransaction, kind: str) -> LedgerTransaction:
    """A repeated key must be a retry of the same kind of booking, not a collision with another."""
    if existing.kind != kind:
        raise BillingError(f"idempotency key {existing.idempotency_key} already booked a {existing.kind}, not a {kind}")
    return existing


def ledger_book(
    *,
    kind: str,
    idempotency_key: str,
    lines: Sequence[tuple[LedgerAccount | AccountRef, Decimal]],
    memo: str = "",
    reference: str = "",
    holds_settled: Mapping[int, Decimal] | None = None,
) -> tuple[LedgerTransaction, bool]:
    """Book a balanced transaction once; a repeat of the key returns the first booking.

    The entries must sum to zero. Cached balances move in the same database transaction, by one
    ``F()`` increment per account, the accounts in primary-key order: each UPDATE locks its row,
    so bookings that share accounts lock them in the same order (no lost update, no deadlock).
    ``holds_settled`` (account id → amount): holds this booking settles (a delivered sale's price),
    dropped from ``held`` by the same UPDATE as the balance, and only when the booking is made.
    A key already used by another kind of booking is refused (BillingError), never returned.
    Returns ``(transaction, created)``. Inside a caller's transaction it is part of it (no
    savepoint): a failure here fails the caller's whole transaction.
    """
    amounts = [to_money(amount) for _, amount in lines]
    if sum(amounts, ZERO) != ZERO:
        raise BillingError(f"entries of {idempotency_key} sum to {sum(amounts, ZERO)}, not 0.00")
    moves: dict[int, Decimal] = {}
    for (account, _), amount in zip(lines, amounts, strict=True):
        moves[account.pk] = moves.get(account.pk, ZERO) + amount
    settled = holds_settled or {}
    with market_scope(), transaction.atomic(savepoint=False):
        booked = LedgerTransaction(kind=kind, idempotency_key=idempotency_key, memo=memo, reference=reference)
        # The key's unique index decides: a repeat (rare: a retry) inserts nothing and gets the
        # first booking, so the common path does not look the key up first.
        if not model_insert(booked, ignore_conflicts=True):
            return _same_kind(LedgerTransaction.objects.get(idempotency_key=idempotency_key), kind), False
        for account_id in sorted(moves.keys() | settled.keys()):
            sql_rows(*balance_move(account_id, moves.get(account_id, ZERO), settled.get(account_id, ZERO)))
        model_insert(
            *(
                LedgerEntry(
                    transaction=booked, account_id=account.pk, organization_id=account.organization_id, amount=amount
                )
                for (account, _), amount in zip(lines, amounts, strict=True)
            )
        )
    return booked, True


# --- buyers: funds, top-ups, limits, low balance ----------------------------------------------

# Available funds, as the auction and funds_hold count them.


def _buyer_account(organization_id: int) -> QuerySet[LedgerAccount]:
    return LedgerAccount.objects.filter(organization_id=organization_id, kind=LedgerAccount.Kind.BUYER_BALANCE)


def _low_balance_fall(organization_id: int) -> bool:
    """Set the flag and emit ``balance.low`` if available funds are under the threshold and the
    buyer was not told yet. One conditional UPDATE (compare-and-set): of concurrent bookings that
    cross the threshold, exactly one emits."""
    if not sql_rows(*low_balance_fallen(organization_id)):
        return False
    account = _buyer_account(organization_id).get()
    assert account.low_balance_threshold is not None
    event_emit(
        organization_id=organization_id,
        type="balance.low",
        data={
            "available": money_str(account.available),
            "threshold": money_str(account.low_balance_threshold),
            "balance": money_str(account.balance),
            "held": money_str(account.held),
            "credit_limit": money_str(account.credit_limit),
            "currency": account.currency,
        },
    )
    return True


def low_balance_check(*, organization_id: int) -> bool:
    """Move the buyer's low-balance flag to match its available funds (balance − held + credit).

    Below the threshold and not yet told: the flag goes False→True (compare-and-set) and
    ``balance.low`` is emitted in this transaction, so the event is queued only on commit and at
    most once per fall. At or above the threshold (or with no threshold): the flag is cleared, so
    the next fall is told again. Call it after anything that moves available funds. Returns True
    when it emitted the event.
    """
    with market_scope(), transaction.atomic():
        if _low_balance_fall(organization_id):
            return True
        _buyer_account(organization_id).filter(low_balance_notified=True).filter(
            Q(low_balance_threshold__isnull=True) | Q(low_balance_threshold__lte=AVAILABLE_FUNDS)
        ).update(low_balance_notified=False)
    return False


def topup_record(
    *, organization: Organization, amount: Decimal, reference: str, idempotency_key: str, memo: str = ""
) -> LedgerTransaction:
    """Record money a buyer sent: its balance +amount, exchange cash −amount.

    Needs a positive amount and an outside reference (wire id, invoice…). Books once per
    ``idempotency_key`` (a repeat returns the first booking). The buyer's low-balance flag is
    cleared in the same transaction when the funds recover.
    """
    amount = to_money(amount)
    if amount <= ZERO:
        raise BillingError("a top-up must be a positive amount")
    if not reference.strip():
        raise BillingError("a top-up needs a reference (wire id, invoice…)")
    lines = [
        (account_get(organization=organization, kind=LedgerAccount.Kind.BUYER_BALANCE), amount),
        (account_get(organization=None, kind=LedgerAccount.Kind.CASH), -amount),
    ]
    with transaction.atomic():
        booked, created = ledger_book(
            kind=LedgerTransaction.Kind.TOPUP,
            idempotency_key=idempotency_key,
            lines=lines,
            memo=memo.strip(),
            reference=reference.strip(),
        )
        if created:
            low_balance_check(organization_id=organization.pk)
            _money_audit(booked, organization=organization, amount=amount)
    return booked


def _money_audit(booked: LedgerTransaction, *, organization: Organization, amount: Decimal) -> None:
    """Record a booking made by a person (top-up, payout) in the audit trail of ``organization``:
    the ledger is append-only, so its creation, with its amount, is the whole change."""
    booked.audit_organization_id = organization.pk  # type: ignore[attr-defined]
    audit_record(
        booked,
        action="create",
        changes={
            "kind": (None, booked.kind),
            "amount": (None, money_str(amount)),
            "reference": (None, booked.reference),
            "memo": (None, booked.memo),
        },
    )


def credit_limit_set(*, organization: Organization, credit_limit: Decimal) -> LedgerAccount:
    """Let the buyer's balance go down to −``credit_limit`` (and re-check its low-balance flag)."""
    credit_limit = to_money(credit_limit)
    if credit_limit < ZERO:
        raise BillingError("a credit limit cannot be negative")
    account = account_get(organization=organization, kind=LedgerAccount.Kind.BUYER_BALANCE)
    with market_scope(), transaction.atomic():
        before = LedgerAccount.objects.select_for_update().get(pk=account.pk).credit_limit
        LedgerAccount.objects.filter(pk=account.pk).update(credit_limit=credit_limit)
        low_balance_check(organization_id=organization.pk)
        account.refresh_from_db()
        if before != credit_limit:
            audit_record(account, changes={"credit_limit": (money_str(before), money_str(credit_limit))})
    return account


def low_balance_threshold_set(
    *, organization: Organization, threshold: Decimal | None, actor: Membership | None = None
) -> LedgerAccount:
    """Send ``balance.low`` when the buyer's available funds fall below ``threshold`` (None: never).

    Checked at once: setting a threshold above the current available funds tells the buyer now.
    ``actor``: the portal's member, a manager or owner (the operator and the market file act
    without one).
    """
    if actor is not None:
        role_require(actor, "manager", organization_id=organization.pk)
    if threshold is not None:
        threshold = to_money(threshold)
        if threshold < ZERO:
            raise BillingError("a low-balance threshold cannot be negative")
    account = account_get(organization=organization, kind=LedgerAccount.Kind.BUYER_BALANCE)
    with market_scope(), transaction.atomic():
        before = LedgerAccount.objects.select_for_update().get(pk=account.pk).low_balance_threshold
        LedgerAccount.objects.filter(pk=account.pk).update(low_balance_threshold=threshold)
        low_balance_check(organization_id=organization.pk)
        account.refresh_from_db()
        if before != threshold:
            audit_record(
                account,
                changes={
                    "low_balance_threshold": (
                        None if before is None else money_str(before),
                        None if threshold is None else money_str(threshold),
                    )
                },
            )
    return account


def buyer_limits_set(
    *, organization: Organization, credit_limit: Decimal, low_balance_threshold: Decimal | None
) -> LedgerAccount:
    """Set the buyer's credit limit and low-balance threshold together (the operator's form)."""
    with transaction.atomic():
        credit_limit_set(organization=organization, credit_limit=credit_limit)
        return low_balance_threshold_set(organization=organization, threshold=low_balance_threshold)


class FundsRefused(Exception):
    """The buyer's available funds (balance − held + credit limit) do not cover the price."""


def funds_hold(*, organization_id: int, amount: Decimal) -> None:
    """Hold ``amount`` of the buyer's funds for a sale being delivered, or raise FundsRefused.

    One conditional UPDATE: the hold happens only if the balance stays at or above −credit limit,
    so concurrent posts can never overspend. Call inside the reservation's transaction.
    """
    if not sql_rows(*funds_held(organization_id, amount)):
        raise FundsRefused(f"organization {organization_id} cannot cover {amount}")


def funds_release(*, organization_id: int, amount: Decimal) -> None:
    """Give back a hold (the sale was released, or it is being booked)."""
    sql_rows(*funds_unheld(organization_id, amount))


def sale_book(
    *, sale_public_id: str, buyer: Organization, seller: Organization, price: Decimal, payout: Decimal, memo: str
) -> LedgerTransaction:
    """Book a sale: buyer −price, seller payable +payout, platform revenue +margin; and drop its hold
    (the buyer's balance and hold move by one UPDATE).

    Idempotent by the sale's id: booking the same sale twice books it (and drops its hold) once.
    In the same transaction, a buyer whose available funds are now under its threshold is sent
    ``balance.low`` (once per fall). A sale never raises available funds (its price was held), so
    only the fall is checked here: one conditional UPDATE on the post path. Inside a caller's
    transaction (the sale's capture) it is part of it, with no savepoint of its own.
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
    with market_scope(), transaction.atomic(savepoint=False):
        booked, created = ledger_book(
            kind=LedgerTransaction.Kind.SALE,
            idempotency_key=f"sale:{sale_public_id}",
            lines=[(account, amount) for account, amount in lines if amount != ZERO],
            memo=memo,
            holds_settled={accounts[0].pk: price},
        )
        if created:
            _low_balance_fall(buyer.pk)
    return booked


def sale_refund_book(
    *, return_public_id: str, buyer_id: int, seller_id: int, price: Decimal, payout: Decimal, memo: str
) -> LedgerTransaction:
    """Book a returned sale's reversal: buyer +price, seller payable −payout, platform revenue −margin.

    Idempotent by the return's id. In the same transaction the buyer's low-balance state is checked
    again: the refund may lift it back over its threshold.
    """
    accounts = accounts_get(
        [
            (buyer_id, LedgerAccount.Kind.BUYER_BALANCE),
            (seller_id, LedgerAccount.Kind.SELLER_PAYABLE),
            (None, LedgerAccount.Kind.PLATFORM_REVENUE),
        ]
    )
    lines = zip(accounts, (price, -payout, payout - price), strict=True)
    with market_scope(), transaction.atomic():
        booked, _ = ledger_book(
            kind=LedgerTransaction.Kind.RETURN,
            idempotency_key=f"return:{return_public_id}",
            lines=[(account, amount) for account, amount in lines if amount != ZERO],
            memo=memo,
        )
        low_balance_check(organization_id=buyer_id)
    return booked


# --- sellers: payouts ---------------------------------------------------------------------------


def payout_memo(*, period_start: date, period_end: date, memo: str = "") -> str:
    """How a payout's period reads on the ledger, the seller's page and its statement."""
    text = f"Payout for {period_start.isoformat()} to {period_end.isoformat()}"
    return f"{text}: {memo.strip()}" if memo.strip() else text


def payout_record(
    *,
    seller: Organization,
    amount: Decimal,
    period_start: date,
    period_end: date,
    reference: str,
    idempotency_key: str,
    memo: str = "",
) -> LedgerTransaction:
    """Record money the exchange paid a seller: its payable −amount, exchange cash +amount.

    Refuses (PayoutRefused) a payout larger than the seller's payable balance (what it is owed),
    checked on the locked rows so two payouts at once cannot overpay. Needs a positive amount, an
    outside reference and a period (start ≤ end), stored as the transaction's memo. Books once per
    ``idempotency_key``: a retry returns the first booking even once the payable has gone down.
    """
    amount = to_money(amount)
    if not seller.is_seller:
        raise BillingError(f"{seller.name} is not a seller")
    if amount <= ZERO:
        raise BillingError("a payout must be a positive amount")
    if not reference.strip():
        raise BillingError("a payout needs a reference (wire id, transfer id…)")
    if period_start > period_end:
        raise BillingError("a payout's period must start before it ends")
    payable, cash = accounts_get([(seller.pk, LedgerAccount.Kind.SELLER_PAYABLE), (None, LedgerAccount.Kind.CASH)])
    with market_scope(), transaction.atomic():
        locked = {
            a.pk: a
            for a in LedgerAccount.objects.select_for_update().filter(pk__in=[payable.pk, cash.pk]).order_by("pk")
        }
        existing = LedgerTransaction.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _same_kind(existing, LedgerTransaction.Kind.PAYOUT)
        owed = locked[payable.pk].balance
        if amount > owed:
            raise PayoutRefused(f"{seller.name} is owed {money_str(owed)}: a payout of {money_str(amount)} is too much")
        booked, created = ledger_book(
            kind=LedgerTransaction.Kind.PAYOUT,
            idempotency_key=idempotency_key,
            lines=[(payable, -amount), (cash, amount)],
            memo=payout_memo(period_start=period_start, period_end=period_end, memo=memo),
            reference=reference.strip(),
        )
        if created:
            _money_audit(booked, organization=seller, amount=amount)
    return booked


# --- reconciliation -----------------------------------------------------------------------------

# A real imbalance is at least a cent; comparing sums against ±half a cent keeps SQLite's float
# sums (the demo database) from reporting rounding noise as drift.
HALF_CENT = Decimal("0.005")


@dataclass(frozen=True)
class AccountDrift:
    """An account whose cached balance is not the sum of its entries."""

    account_id: int
    account: str
    cached: Decimal
    ledger: Decimal

    @property
    def difference(self) -> Decimal:
        return self.cached - self.ledger


@dataclass(frozen=True)
class UnbalancedTransaction:
    """A transaction whose entries do not sum to zero."""

    transaction_id: int
    idempotency_key: str
    total: Decimal


@dataclass(frozen=True)
class HoldDrift:
    """A buyer account whose held funds are not the prices of its sales being delivered."""

    account_id: int
    account: str
    held: Decimal
    reserved: Decimal


@dataclass
class ReconciliationReport:
    """What :func:`ledger_reconcile` found; ``clean`` when nothing drifted."""

    checked_at: datetime
    accounts: int
    transactions: int
    drifts: list[AccountDrift] = field(default_factory=list)
    unbalanced: list[UnbalancedTransaction] = field(default_factory=list)
    holds: list[HoldDrift] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.drifts or self.unbalanced or self.holds)

    def problems(self) -> list[str]:
        """Each problem in one line, for the log, the command and the operator's page."""
        return [
            *(
                f"balance drift on {d.account} (#{d.account_id}): cached {money_str(d.cached)}, "
                f"entries sum to {money_str(d.ledger)} (off by {money_str(d.difference)})"
                for d in self.drifts
            ),
            *(
                f"unbalanced transaction {u.idempotency_key} (#{u.transaction_id}): entries sum to {money_str(u.total)}"
                for u in self.unbalanced
            ),
            *(
                f"hold drift on {h.account} (#{h.account_id}): held {money_str(h.held)}, "
                f"sales being delivered {money_str(h.reserved)}"
                for h in self.holds
            ),
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "clean": self.clean,
            "accounts": self.accounts,
            "transactions": self.transactions,
            "problems": self.problems(),
        }


def ledger_reconcile() -> ReconciliationReport:
    """Check the whole ledger; read-only, so running it again changes nothing.

    * every account: cached ``balance`` = SUM of its entries;
    * every transaction: its entries sum to 0.00;
    * every buyer account: ``held`` = the prices of its non-test sales still being delivered.

    The balance and hold checks are one statement (one snapshot), and so is the zero-sum check, so
    sales booked while it runs are never reported as drift. Cost: about two passes over the
    entries per run; fine every 15 minutes up to millions of entries (then check new ones only).
    """
    checked_at = timezone.now()
    with market_scope():
        entry_sum = (
            LedgerEntry.objects.filter(account=OuterRef("pk"))
            .order_by()
            .values("account")
            .annotate(total=Sum("amount"))
            .values("total")
        )
        rows = list(
            LedgerAccount.objects.select_related("organization")
            .annotate(
                ledger=Coalesce(Subquery(entry_sum), Value(ZERO), output_field=MoneyField()),
                reserved=Coalesce(holds_expected(), Value(ZERO), output_field=MoneyField()),
            )
            .order_by("pk")
        )
        unbalanced_rows = list(
            LedgerEntry.objects.order_by()
            .values("transaction_id", "transaction__idempotency_key")
            .annotate(total=Sum("amount"))
            .filter(Q(total__gte=HALF_CENT) | Q(total__lte=-HALF_CENT))
            .order_by("transaction_id")
        )
        transactions = LedgerTransaction.objects.count()
    report = ReconciliationReport(checked_at=checked_at, accounts=len(rows), transactions=transactions)
    for account in rows:
        ledger = to_money(account.ledger)
        if to_money(account.balance) != ledger:
            report.drifts.append(AccountDrift(account.pk, str(account), to_money(account.balance), ledger))
        if account.kind == LedgerAccount.Kind.BUYER_BALANCE and to_money(account.held) != to_money(account.reserved):
            report.holds.append(HoldDrift(account.pk, str(account), to_money(account.held), to_money(account.reserved)))
    report.unbalanced = [
        UnbalancedTransaction(row["transaction_id"], row["transaction__idempotency_key"], to_money(row["total"]))
        for row in unbalanced_rows
    ]
    return report


def reconciliation_record(report: ReconciliationReport, *, key: str, keep_clean_days: int = 30) -> ReconciliationRun:
    """Tell the operator: each problem logged at ERROR (alerting watches ERROR), a clean run at
    INFO, and the run kept as a :class:`ReconciliationRun` (admin). Once per ``key``: a retried
    run replaces its own record instead of adding one. Clean runs older than ``keep_clean_days``
    are dropped (a run with drift is kept until an operator deletes it)."""
    if report.clean:
        logger.info("ledger reconciliation clean: %s accounts, %s transactions", report.accounts, report.transactions)
    else:
        for problem in report.problems():
            logger.error("ledger reconciliation: %s", problem)
        logger.error(
            "ledger reconciliation found %s problem(s) in %s accounts, %s transactions",
            len(report.problems()),
            report.accounts,
            report.transactions,
        )
    with transaction.atomic():
        run, _ = ReconciliationRun.objects.update_or_create(
            key=key,
            defaults={
                "checked_at": report.checked_at,
                "is_clean": report.clean,
                "accounts": report.accounts,
                "transactions": report.transactions,
                "problems": report.problems(),
            },
        )
        ReconciliationRun.objects.filter(
            is_clean=True, checked_at__lt=report.checked_at - timedelta(days=keep_clean_days)
        ).delete()
    return run
