"""The double-entry ledger: accounts, transactions and their append-only entries."""

from __future__ import annotations

from decimal import Decimal

import pgtrigger
from django.db import models
from django.db.models import F
from django.utils import timezone
from django_scopes import ScopedManager

from accounts.models import Organization
from core.money import MoneyField

# A buyer's available funds: what it may still spend, held amounts set aside, down to its credit
# limit. The one definition: as an ORM expression, and as SQL over the account's columns for the
# ping's one-statement read of the market's live state (exchange.auction.engine).
AVAILABLE_FUNDS = F("balance") - F("held") + F("credit_limit")
AVAILABLE_FUNDS_SQL = "balance - held + credit_limit"


class LedgerAccount(models.Model):
    """One account of the ledger. ``balance`` caches the sum of its entries (same transaction)."""

    class Kind(models.TextChoices):
        BUYER_BALANCE = "buyer_balance", "Buyer balance"
        SELLER_PAYABLE = "seller_payable", "Seller payable"
        PLATFORM_REVENUE = "platform_revenue", "Platform revenue"
        CASH = "cash", "Cash"

    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_accounts",
        help_text="Empty for the exchange's own accounts (platform revenue, cash).",
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    currency = models.CharField(max_length=3, default="USD")
    balance = MoneyField(default=Decimal("0.00"))
    held = MoneyField(default=Decimal("0.00"), help_text="Buyers: funds reserved for sales being delivered.")
    low_balance_threshold = MoneyField(
        null=True, blank=True, help_text="Buyers: send balance.low when available funds fall below this."
    )
    low_balance_notified = models.BooleanField(
        default=False, help_text="balance.low was sent and funds have not recovered since."
    )
    credit_limit = MoneyField(default=Decimal("0.00"), help_text="Buyers: how far below zero the balance may go.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["organization__name", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "kind"], name="ledgeraccount_unique"),
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(organization__isnull=True), name="ledgeraccount_platform_unique"
            ),
        ]

    def __str__(self) -> str:
        owner = self.organization.name if self.organization is not None else "Exchange"
        return f"{owner} · {self.get_kind_display()}"

    @property
    def available(self) -> Decimal:
        """:data:`AVAILABLE_FUNDS` of this account as read."""
        return self.balance - self.held + self.credit_limit


class LedgerTransaction(models.Model):
    """A balanced set of entries (they sum to zero), booked once per idempotency key."""

    class Kind(models.TextChoices):
        TOPUP = "topup", "Top-up"
        SALE = "sale", "Sale"
        RETURN = "return", "Return"
        PAYOUT = "payout", "Seller payout"
        ADJUSTMENT = "adjustment", "Adjustment"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=200, unique=True)
    memo = models.CharField(max_length=300, blank=True)
    reference = models.CharField(max_length=200, blank=True, help_text="An outside reference: wire id, invoice…")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.idempotency_key}"


class LedgerEntry(models.Model):
    """One line of a transaction. Never updated nor deleted: on PostgreSQL the database refuses it,
    and refuses at commit a transaction whose entries do not sum to zero (decision "Money at the
    database")."""

    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    amount = MoneyField()
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        triggers = [
            pgtrigger.Protect(name="ledger_entry_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
            # Checked at commit (a constraint trigger, deferred), once every entry of the
            # transaction is in: the entries of each ledger transaction sum to zero.
            pgtrigger.Trigger(
                name="ledger_transaction_balanced",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                timing=pgtrigger.Deferred,
                func="""
                IF (SELECT COALESCE(SUM(amount), 0) FROM billing_ledgerentry
                    WHERE transaction_id = NEW.transaction_id) <> 0 THEN
                    RAISE EXCEPTION 'ledger transaction % is unbalanced: its entries do not sum to zero',
                        NEW.transaction_id USING ERRCODE = 'check_violation';
                END IF;
                RETURN NULL;
                """,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account}: {self.amount}"


class ReconciliationRun(models.Model):
    """One run of the ledger reconciliation (``billing.services.ledger_reconcile``), for operators.

    Exchange-wide (no organization). ``key`` makes a retried run record once: the Celery task's
    id, or ``manual:…`` for the management command.
    """

    key = models.CharField(max_length=200, unique=True)
    checked_at = models.DateTimeField(default=timezone.now, db_index=True)
    is_clean = models.BooleanField("clean", default=True)
    accounts = models.PositiveIntegerField(default=0)
    transactions = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True, help_text="Each drift found, in words.")

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"Reconciliation {self.checked_at:%Y-%m-%d %H:%M} ({'clean' if self.is_clean else 'DRIFT'})"
