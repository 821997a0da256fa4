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
    payout = MoneyField(default=Decimal("0.00"))
    reauction_cycle = models.PositiveSmallIntegerField(default=0, help_text="Background re-auctions run so far.")
    test = models.BooleanField(default=False)
    erased_at = models.DateTimeField(
        null=True, blank=True, help_text="When a privacy deletion erased its PII (the sales and money stay)."
    )
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
    """What the consumer agreed to, when and where. Written once, never changed — with one
    exception: a privacy deletion blanks the IP, the user agent, the page URL's query and the same
    in ``raw`` (:func:`leads.privacy.consent_erase`, a queryset update that bypasses ``save``) and
    sets ``erased_at``. Nothing else may change it."""

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
    erased_at = models.DateTimeField(null=True, blank=True, help_text="When a privacy deletion blanked its PII.")

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


class PrivacyRequest(models.Model):
    """A consumer's deletion or access request (CCPA-style), however it was filed (leads.privacy).

    The consumer is known by the hashes of their normalized email and phone; the address and number
    themselves are kept encrypted (``contact_encrypted``) only to confirm and answer the request, and
    are dropped once a deletion completes. ``confirm_due_at`` is ten business days after receipt
    (weekends skipped; public holidays are not counted), ``answer_due_at`` 45 calendar days.
    """

    class Kind(models.TextChoices):
        DELETE = "delete", "Deletion"
        ACCESS = "access", "Access (a copy of the data)"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received (awaiting confirmation)"
        CONFIRMED = "confirmed", "Confirmed (being processed)"
        COMPLETED = "completed", "Completed"
        REJECTED = "rejected", "Rejected"

    class Source(models.TextChoices):
        API = "api", "API"
        ADMIN = "admin", "Operator (admin)"
        PUBLIC = "public", "Public request page"

    public_id = PublicIdField(prefix="prv_", verbose_name="id")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    source = models.CharField(max_length=8, choices=Source.choices)
    email_hash = models.CharField(max_length=64, blank=True, db_index=True)
    phone_hash = models.CharField(max_length=64, blank=True, db_index=True)
    contact_encrypted = models.TextField(
        blank=True, help_text="The email and phone as given, Fernet-encrypted; dropped once a deletion completes."
    )
    organization = models.ForeignKey(
        "accounts.Organization",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="privacy_requests",
        help_text="The organization that filed it (API); empty when the consumer or an operator did.",
    )
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    filed_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The operator."
    )
    token_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the emailed confirmation token.")
    token_expires_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    confirm_due_at = models.DateTimeField()
    answer_due_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True, help_text="Why it was rejected, or the operator's remarks.")
    result = models.JSONField(default=dict, blank=True, help_text="A deletion's counts of what was erased.")
    export_encrypted = models.TextField(blank=True, help_text="An access request's JSON export, Fernet-encrypted.")

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return self.public_id

    def overdue(self, now: Any = None) -> bool:
        """Past a deadline it has not met: unconfirmed after ``confirm_due_at``, or unanswered after
        ``answer_due_at``."""
        now = now or timezone.now()
        if self.status == self.Status.RECEIVED and now > self.confirm_due_at:
            return True
        return self.status in (self.Status.RECEIVED, self.Status.CONFIRMED) and now > self.answer_due_at
