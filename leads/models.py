"""Leads: the full data (PII encrypted at rest), their consent records and the opt-out list."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from core.ids import PublicIdField
from core.money import MoneyField


class Lead(models.Model):
    """A consumer inquiry a seller posted. PII lives only in ``pii_encrypted`` (Fernet)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SOLD = "sold", "Sold"
        UNSOLD = "unsold", "Unsold"
        REJECTED = "rejected", "Rejected"

    public_id = PublicIdField(prefix="led_", verbose_name="id")
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="leads", verbose_name="seller"
    )
    campaign = models.ForeignKey("contracts.Campaign", on_delete=models.PROTECT, related_name="leads")
    offer = models.ForeignKey("exchange.Offer", on_delete=models.PROTECT, related_name="leads")
    ping = models.OneToOneField(
        "exchange.Ping", null=True, blank=True, on_delete=models.PROTECT, related_name="posted_lead"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=32, blank=True)
    data = models.JSONField(default=dict, help_text="The lead's non-PII fields.")
    pii_encrypted = models.TextField(help_text="The PII fields, Fernet-encrypted JSON.")
    email_hash = models.CharField(max_length=64, blank=True, db_index=True)
    phone_hash = models.CharField(max_length=64, blank=True, db_index=True)
    tracking = models.JSONField(default=dict, blank=True)
    quality_score = models.PositiveSmallIntegerField(default=0)
    quality_signals = models.JSONField(
        default=dict, blank=True, help_text="The ping's signals and the post's: signal -> points (leads/scoring.py)."
    )
    payout = MoneyField(default=Decimal("0.00"))
    reauction_cycle = models.PositiveSmallIntegerField(default=0, help_text="Background re-auctions run so far.")
    test = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at"]
        # The rollups' fold finds the leads whose outcome changed since its last run.
        indexes = [models.Index(fields=["updated_at"], name="lead_updated_at")]

    def __str__(self) -> str:
        return self.public_id


class ConsentRecord(models.Model):
    """What the consumer agreed to, when and where. Written once, never changed."""

    lead = models.OneToOneField(Lead, on_delete=models.PROTECT, related_name="consent")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    captured_at = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True)
    page_url = models.URLField(max_length=2000, blank=True)
    trusted_form_cert_url = models.URLField(max_length=2000, blank=True)
    jornaya_leadid = models.CharField(max_length=100, blank=True)
    raw = models.JSONField(default=dict, help_text="The consent exactly as the seller sent it.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(organization="organization")

    def __str__(self) -> str:
        return f"Consent for {self.lead_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("A consent record is immutable.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("A consent record is immutable.")


class Suppression(models.Model):
    """A consumer who opted out (by email or phone hash): never sold again, exchange-wide."""

    consumer_hash = models.CharField(max_length=64, unique=True)
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.consumer_hash[:12]}… ({self.reason or 'opt-out'})"
