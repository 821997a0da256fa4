"""The double-entry ledger: accounts, transactions and their append-only entries."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django_scopes import ScopedManager

from accounts.models import Organization
from core.ids import PublicIdField
from core.money import MoneyField

# A buyer's available funds: what it may still spend, held amounts set aside, down to its credit
# limit. The one definition: as an ORM expression, and as SQL over the account's columns for the
# ping's one-statement read of the market's live state (exchange.auction.engine).
AVAILABLE_FUNDS = F("balance") - F("held") + F("credit_limit")
AVAILABLE_FUNDS_SQL = "balance - held + credit_limit"

NOTE_MAX_LENGTH = 2000  # a return's note and its decision note


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
    """One line of a transaction. Never updated nor deleted."""

    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    amount = MoneyField()
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"

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


class Return(models.Model):
    """A buyer's request to give back one purchased lead, and the operator's (or the rule's) decision.

    Reason codes (the API's ``reason``):

    ``bad_phone``
        the phone number is disconnected, invalid or someone else's;
    ``bad_email``
        the email bounces or is fake;
    ``wrong_person``
        the contact details reach a person who did not ask;
    ``duplicate``
        the buyer already had this consumer (from elsewhere, or earlier);
    ``not_interested_at_capture``
        the consumer says they never meant to ask (no intent when the lead was taken);
    ``fraud``
        a fabricated, bot or incentivized lead;
    ``out_of_area``
        the consumer is outside the area the buyer serves;
    ``other``
        anything else — the note must then say what.
    """

    class Reason(models.TextChoices):
        BAD_PHONE = "bad_phone", "Bad phone number"
        BAD_EMAIL = "bad_email", "Bad email address"
        WRONG_PERSON = "wrong_person", "Wrong person"
        DUPLICATE = "duplicate", "Duplicate"
        NOT_INTERESTED_AT_CAPTURE = "not_interested_at_capture", "Not interested at capture"
        FRAUD = "fraud", "Fraud"
        OUT_OF_AREA = "out_of_area", "Out of area"
        OTHER = "other", "Other (see the note)"

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"

    public_id = PublicIdField(prefix="ret_", verbose_name="id")
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="returns", verbose_name="buyer"
    )
    seller = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="returned_leads")
    sale = models.ForeignKey("exchange.Sale", on_delete=models.PROTECT, related_name="returns")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    note = models.TextField(blank=True, max_length=NOTE_MAX_LENGTH, help_text="The buyer's explanation.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty when asked through the API.",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The operator; empty for automatic decisions (auto-approval, expiry).",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)
    auto = models.BooleanField(default=False, help_text="Approved by the buyer's return policy, not by an operator.")
    ledger_transaction = models.ForeignKey(
        LedgerTransaction,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The refund and claw-back, once approved.",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        app_label = "billing"
        ordering = ["-created_at", "-id"]
        constraints = [
            # The money invariant: a sale is refunded at most once, and never while another request is open.
            models.UniqueConstraint(
                fields=["sale"],
                condition=Q(status__in=["requested", "approved"]),
                name="return_open_or_approved_once_per_sale",
            )
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="return_status_created")]

    def __str__(self) -> str:
        return self.public_id


class ReturnPolicy(models.Model):
    """How far a buyer's returns are approved without an operator.

    ``auto_approve_rate_percent`` empty means never: every request waits for an operator.
    """

    organization = models.OneToOneField(
        Organization,
        on_delete=models.CASCADE,
        related_name="return_policy",
        verbose_name="buyer",
        limit_choices_to={"is_buyer": True},
    )
    auto_approve_rate_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
        help_text=(
            "Approve a return at once while the buyer's return rate over the last 30 days, this return "
            "included, stays at or under this percent. Empty: never approve automatically."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        app_label = "billing"
        ordering = ["organization__name"]
        verbose_name_plural = "return policies"

    def __str__(self) -> str:
        return f"Return policy of {self.organization}"
