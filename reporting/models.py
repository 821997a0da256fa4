"""Reporting's own rows: the conversions buyers report on their purchases, and the postbacks
that tell sellers of their sales and conversions."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from core.ids import PublicIdField
from core.money import MoneyField


class Conversion(models.Model):
    """A buyer's report that a purchased lead converted (an ``event`` such as ``sale``, worth
    ``value``). One per sale and event: reporting the same again answers the first."""

    public_id = PublicIdField(prefix="cnv_", verbose_name="id")
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="conversions", verbose_name="buyer"
    )
    seller = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="+")
    sale = models.ForeignKey("exchange.Sale", on_delete=models.PROTECT, related_name="conversions")
    campaign = models.ForeignKey("contracts.Campaign", on_delete=models.PROTECT, related_name="conversions")
    contract = models.ForeignKey("contracts.BuyerContract", on_delete=models.PROTECT, related_name="conversions")
    event = models.CharField(max_length=32)
    value = MoneyField()
    test = models.BooleanField(default=False)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["sale", "event"], name="conversion_once_per_sale_event")]

    def __str__(self) -> str:
        return self.public_id


class Postback(models.Model):
    """One call of a seller's campaign postback URL (``GET``, signed), made for a lead that sold
    (``event`` ``sold``) or for a buyer's conversion on it, and retried with backoff until a 2xx
    or the last attempt. ``url`` is the template as it was filled at that moment.

    States: ``pending`` (an attempt is due at ``next_attempt_at``), ``sending`` (claimed by one
    worker until ``next_attempt_at``, its lease), ``succeeded``, ``given_up``.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SUCCEEDED = "succeeded", "Succeeded"
        GIVEN_UP = "given_up", "Given up"

    public_id = PublicIdField(prefix="pbk_", verbose_name="id")
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="postbacks", verbose_name="seller"
    )
    campaign = models.ForeignKey("contracts.Campaign", on_delete=models.CASCADE, related_name="postbacks")
    lead = models.ForeignKey("leads.Lead", on_delete=models.CASCADE, related_name="postbacks")
    conversion = models.ForeignKey(
        Conversion, null=True, blank=True, on_delete=models.CASCADE, related_name="postbacks"
    )
    event = models.CharField(max_length=32)
    url = models.TextField(help_text="The campaign's postback URL, filled in.")
    test = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="postback_due")]
        constraints = [
            # A lead's sale is told once, and each conversion once, however often an event replays.
            models.UniqueConstraint(
                fields=["lead"], condition=models.Q(conversion__isnull=True), name="postback_once_per_lead_sold"
            ),
            models.UniqueConstraint(
                fields=["conversion"], condition=models.Q(conversion__isnull=False), name="postback_once_per_conversion"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.event} ({self.status})"


class PostbackAttempt(models.Model):
    """One GET of a postback, as the seller's tracker answered it (or why it could not)."""

    postback = models.ForeignKey(Postback, on_delete=models.CASCADE, related_name="attempt_log")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response = models.TextField(blank=True, help_text="The tracker's answer, cut to 1 KB.")
    error = models.CharField(max_length=500, blank=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["postback", "number"]
        constraints = [models.UniqueConstraint(fields=["postback", "number"], name="postback_attempt_once")]

    def __str__(self) -> str:
        return f"{self.postback_id} #{self.number}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
