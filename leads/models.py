"""Leads: the full data (PII encrypted at rest), their consent records and the opt-out list."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pgtrigger
from django.conf import settings
from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from core.ids import PublicIdField
from core.money import MoneyField

# The personal data the leads app keeps, in one place: what an age-based purge (retention) or a
# consumer's erasure must clear. Everything else about a lead (its non-PII fields, status, payout,
# score, tracking) is not personal and stays.
LEAD_PII_FIELDS = ("pii_encrypted", "email_hash", "phone_hash")
CONSENT_PII_FIELDS = ("ip", "user_agent")  # also these keys of ConsentRecord.raw


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
    erased_at = models.DateTimeField(
        null=True, blank=True, help_text="When a privacy deletion erased its PII (the sales and money stay)."
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    pii_purged_at = models.DateTimeField(
        null=True, blank=True, help_text="When its personal data was purged (retention); empty: still kept."
    )

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

    class Meta:
        triggers = [
            # On PostgreSQL the database holds it too, against raw SQL as well (decision "Money at
            # the database"): no DELETE, and an UPDATE only blanks the IP and user agent, cuts the
            # page URL to a prefix without query (a privacy deletion), the same in ``raw``, and
            # sets ``erased_at`` once. Every other column, and every other key of ``raw``, stays.
            pgtrigger.Protect(name="consent_record_no_delete", operation=pgtrigger.Delete),
            pgtrigger.Trigger(
                name="consent_record_erase_only",
                when=pgtrigger.Before,
                operation=pgtrigger.Update,
                func="""
                IF (to_jsonb(NEW) - ARRAY['ip', 'user_agent', 'page_url', 'raw', 'erased_at'])
                       IS DISTINCT FROM (to_jsonb(OLD) - ARRAY['ip', 'user_agent', 'page_url', 'raw', 'erased_at'])
                   OR (NEW.ip IS DISTINCT FROM OLD.ip AND NEW.ip IS NOT NULL)
                   OR (NEW.user_agent IS DISTINCT FROM OLD.user_agent AND NEW.user_agent <> '')
                   OR (NEW.page_url IS DISTINCT FROM OLD.page_url AND NOT (
                       strpos(NEW.page_url, '?') = 0 AND strpos(NEW.page_url, '#') = 0
                       AND starts_with(lower(OLD.page_url), lower(NEW.page_url))))
                   OR (NEW.erased_at IS DISTINCT FROM OLD.erased_at AND OLD.erased_at IS NOT NULL)
                   OR (NEW.raw - ARRAY['ip', 'user_agent', 'page_url'])
                       IS DISTINCT FROM (OLD.raw - ARRAY['ip', 'user_agent', 'page_url'])
                   OR (NEW.raw -> 'ip' IS DISTINCT FROM OLD.raw -> 'ip' AND NEW.raw ->> 'ip' IS NOT NULL)
                   OR (NEW.raw -> 'user_agent' IS DISTINCT FROM OLD.raw -> 'user_agent'
                       AND COALESCE(NEW.raw ->> 'user_agent', '') <> '')
                   OR (NEW.raw -> 'page_url' IS DISTINCT FROM OLD.raw -> 'page_url'
                       AND NEW.raw ->> 'page_url' IS DISTINCT FROM NEW.page_url) THEN
                    RAISE EXCEPTION 'consent record % is immutable: only its IP, user agent, URL query may be erased',
                        OLD.id USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                RETURN NEW;
                """,
            ),
        ]

    def __str__(self) -> str:
        return f"Consent for {self.lead_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("A consent record is immutable.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("A consent record is immutable.")


class Suppression(models.Model):
    """A consumer (by the SHA-256 of their normalized email or phone) who must not be sold.

    ``exchange`` scope: an opt-out honoured by every buyer, filed by any organization, by the
    operator (``organization`` empty) or by the consumer at ``/opt-out``. ``organization`` scope:
    that organization's own do-not-contact list, honoured only for its contracts. One row per
    (consumer, scope, filer): filing the same again answers the existing row.
    """

    class Scope(models.TextChoices):
        EXCHANGE = "exchange", "Exchange-wide opt-out"
        ORGANIZATION = "organization", "Our do-not-contact list"

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        PHONE = "phone", "Phone"

    class Source(models.TextChoices):
        API = "api", "API"
        PORTAL = "portal", "Portal"
        UPLOAD = "upload", "CSV upload"
        OPT_OUT = "opt_out", "Opt-out page"
        OPERATOR = "operator", "Operator"

    public_id = PublicIdField(prefix="sup_", verbose_name="id")
    consumer_hash = models.CharField(max_length=64, db_index=True)
    kind = models.CharField(max_length=5, choices=Kind.choices, blank=True, help_text="Empty: not recorded.")
    scope = models.CharField(max_length=12, choices=Scope.choices, default=Scope.EXCHANGE)
    organization = models.ForeignKey(
        "accounts.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="suppressions",
        help_text="Who filed it (empty: the operator or the consumer); whose list, for the organization scope.",
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.OPERATOR)
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["consumer_hash", "scope", "organization"],
                condition=models.Q(organization__isnull=False),
                name="suppression_once_per_filer",
            ),
            models.UniqueConstraint(
                fields=["consumer_hash", "scope"],
                condition=models.Q(organization__isnull=True),
                name="suppression_once_unfiled",
            ),
            models.CheckConstraint(
                condition=models.Q(scope="exchange") | models.Q(organization__isnull=False),
                name="suppression_organization_scope_has_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.consumer_hash[:12]}… ({self.reason or 'opt-out'})"


class SuppressionUpload(models.Model):
    """A CSV of consumers an organization uploaded to suppress, processed in the background.

    ``content`` holds the file only until it is processed (it is personal data); ``errors`` keeps
    the rows that could not be read, ``[row number, value, error]``, for the error report.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting to start"
        RUNNING = "running", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    public_id = PublicIdField(prefix="upl_", verbose_name="id")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    filename = models.CharField(max_length=200)
    scope = models.CharField(max_length=12, choices=Suppression.Scope.choices)
    reason = models.CharField(max_length=200, blank=True)
    content = models.TextField(blank=True, help_text="The uploaded CSV; emptied once processed.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0, help_text="Rows to process (the header row not counted).")
    done = models.PositiveIntegerField(default=0, help_text="Rows processed so far.")
    added = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, self.done * 100 // self.total)


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
