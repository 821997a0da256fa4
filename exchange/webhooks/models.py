"""Event webhooks' tables: endpoints, events, deliveries and their attempts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from accounts.models import Organization
from core.ids import PublicIdField

RESPONSE_LIMIT = 2048  # bytes of a receiver's answer kept per attempt
ERROR_LIMIT = 500
GONE_REASON = "410 Gone from receiver"
DEFAULTS: dict[str, float] = {
    "max_attempts": 8,
    "retry_base_seconds": 30,
    "retry_factor": 4,
    "retry_cap_seconds": 12 * 3600,
    "retry_jitter": 0.1,
    "timeout_seconds": 10,
    "rotation_grace_seconds": 24 * 3600,
    "sweep_batch": 200,
}


def webhook_setting(name: str) -> float:
    """One webhook setting: ``settings.GAVEL_WEBHOOKS[name]`` or its default."""
    return float({**DEFAULTS, **getattr(settings, "GAVEL_WEBHOOKS", {})}[name])


class EventType(models.TextChoices):
    LEAD_SOLD = "lead.sold", "lead.sold — a seller's lead sold"
    LEAD_UNSOLD = "lead.unsold", "lead.unsold — a seller's lead found no buyer"
    LEAD_RETURNED = "lead.returned", "lead.returned — a buyer returned a lead"
    RETURN_DECIDED = "return.decided", "return.decided — a return was accepted or refused"
    CONTRACT_PAUSED = "contract.paused", "contract.paused — a contract was paused"
    CONTRACT_RESUMED = "contract.resumed", "contract.resumed — the circuit breaker resumed a contract"
    BALANCE_LOW = "balance.low", "balance.low — a buyer's balance ran low"
    LEAD_ERASED = "lead.erased", "lead.erased — a bought lead's consumer had their data deleted"


class WebhookEndpoint(models.Model):
    """A URL of an organization that receives its events, signed with the endpoint's own secret."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"

    public_id = PublicIdField(prefix="whe_", verbose_name="id")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=100, help_text="Standard Webhooks secret (whsec_…): signs every request.")
    previous_secret = models.CharField(max_length=100, blank=True, help_text="Also signs until it expires.")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    event_types = models.JSONField(default=list, blank=True, help_text="Event types sent here; empty means all.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(organization="organization")

    class Meta:
        app_label = "exchange"
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.public_id} → {self.url}"

    def accepts(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types

    def signing_secrets(self, *, now: datetime) -> list[str]:
        """The secret, then the rotated-out one while its grace period lasts."""
        extra = self.previous_secret_expires_at is not None and self.previous_secret_expires_at > now
        return [self.secret, self.previous_secret] if extra and self.previous_secret else [self.secret]


class Event(models.Model):
    """Something that happened to an organization, as its webhook receivers see it."""

    public_id = PublicIdField(prefix="evt_", verbose_name="id")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=32, choices=EventType.choices)
    data = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        app_label = "exchange"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"

    def envelope(self) -> dict[str, Any]:
        return {
            "id": self.public_id,
            "type": self.type,
            "created": self.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": self.data,
        }


class EventDelivery(models.Model):
    """One event on its way to one endpoint: its state, and a summary of the last attempt."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SUCCEEDED = "succeeded", "Succeeded"
        GIVEN_UP = "given_up", "Given up"

    public_id = PublicIdField(prefix="whd_", verbose_name="id")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="event_deliveries")
    msg_id = models.CharField(max_length=64, help_text="The webhook-id header: the event's id, on every attempt.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    attempts_before_replay = models.PositiveIntegerField(
        default=0, help_text="Attempts made before the last replay: a replay starts a fresh retry series."
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_response = models.TextField(blank=True)
    last_error = models.CharField(max_length=ERROR_LIMIT, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(organization="organization")

    class Meta:
        app_label = "exchange"
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="event_delivery_once")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="event_delivery_due")]
        verbose_name_plural = "event deliveries"

    def __str__(self) -> str:
        return f"{self.msg_id} → {self.endpoint_id} ({self.status})"

    @property
    def series_attempts(self) -> int:
        return self.attempts - self.attempts_before_replay


class EventAttempt(models.Model):
    """One POST of a delivery, as the receiver answered it (or why it could not)."""

    delivery = models.ForeignKey(EventDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response = models.TextField(blank=True, help_text="The receiver's answer, truncated to 2 KB.")
    error = models.CharField(max_length=ERROR_LIMIT, blank=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        app_label = "exchange"
        ordering = ["delivery", "number"]
        # The claim already sends each attempt number once; this makes it impossible to log twice.
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="event_attempt_once")]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
