"""A buyer's returns of its purchases, and the buyer's return policy."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_scopes import ScopedManager

from accounts.models import Organization
from billing.models import LedgerTransaction
from core.ids import PublicIdField

NOTE_MAX_LENGTH = 2000  # a return's note and its decision note


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
        db_table = "billing_return"  # made by billing's first migrations; returns moved here (decision 43)
        ordering = ["-created_at", "-id"]
        constraints = [
            # The money invariant: a sale is refunded at most once, and never while another request is open.
            models.UniqueConstraint(
                fields=["sale"],
                condition=Q(status__in=["requested", "approved"]),
                name="return_open_or_approved_once_per_sale",
            )
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="return_status_created"),
            # The rollups' fold finds the returns decided since its last run.
            models.Index(fields=["decided_at"], name="return_decided_at"),
        ]

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
        db_table = "billing_returnpolicy"
        ordering = ["organization__name"]
        verbose_name_plural = "return policies"

    def __str__(self) -> str:
        return f"Return policy of {self.organization}"
