"""Event webhooks (DESIGN.md §7): endpoints, events, deliveries, their attempts, and the tasks.

An organization registers endpoints; :func:`event_emit` records an :class:`Event` and one
:class:`EventDelivery` per matching active endpoint in the caller's transaction (an outbox) and
queues the send only once that transaction commits. Each delivery is POSTed as
``{"id": "evt_…", "type", "created", "data"}``, signed by the Standard Webhooks spec with the
endpoint's secret (the same ``webhook-id`` on every attempt, a fresh timestamp each time), and
retried with exponential backoff until a 2xx or the last attempt. Every attempt is an
:class:`EventAttempt` row the organization sees in its portal.

Delivery states: ``pending`` (an attempt is due at ``next_attempt_at``: the first, a retry or a
replay), ``sending`` (claimed by one worker until ``next_attempt_at``, its lease),
``succeeded``, ``given_up`` (out of attempts, or the endpoint answered 410 or is disabled; a
replay puts it back to ``pending``).

Settings (all optional), in ``GAVEL_WEBHOOKS``: ``max_attempts`` (8), ``retry_base_seconds``
(30), ``retry_factor`` (4), ``retry_cap_seconds`` (43200), ``retry_jitter`` (0.1: ±10 %),
``timeout_seconds`` (10), ``rotation_grace_seconds`` (86400), ``sweep_batch`` (200). With the
defaults the retries come 30 s, 2 min, 8 min, 32 min, ~2 h, ~8.5 h and 12 h apart: about a day.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_scopes import ScopedManager

from accounts.models import Organization
from accounts.tenancy import TenantTask, market_scope
from exchange.celery import app
from exchange.errors import ExchangeError
from exchange.ids import PublicIdField
from exchange.outbound import REFUSED, TIMEOUT, OutboundRequest, UnsafeUrl, http_send, url_check
from exchange.signing import secret_new, signed_headers

logger = logging.getLogger(__name__)

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


class WebhookError(ExchangeError):
    code = "validation_error"
    status = 422


# --- models -----------------------------------------------------------------------------------


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


# --- selectors --------------------------------------------------------------------------------


def endpoints_of(*, organization: Organization) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(organization=organization).order_by("created_at")


def deliveries_of(*, organization: Organization, limit: int = 100) -> QuerySet[EventDelivery]:
    """The organization's latest deliveries, newest first, with their event, endpoint and attempts."""
    latest = (
        EventDelivery.objects.filter(organization=organization)
        .select_related("event", "endpoint")
        .order_by("-created_at", "-pk")
    )
    return latest.prefetch_related("attempt_log")[:limit]


def endpoint_get(*, organization: Organization, public_id: str) -> WebhookEndpoint:
    """The endpoint, or ``WebhookEndpoint.DoesNotExist`` when it is missing or another tenant's."""
    return WebhookEndpoint.objects.get(organization=organization, public_id=public_id)


def delivery_get(*, organization: Organization, public_id: str) -> EventDelivery:
    """The delivery, or ``EventDelivery.DoesNotExist`` when it is missing or another tenant's."""
    return EventDelivery.objects.select_related("endpoint").get(organization=organization, public_id=public_id)


# --- endpoint services ------------------------------------------------------------------------


def _event_types_clean(event_types: list[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(event_types or []))
    unknown = [t for t in chosen if t not in EventType.values]
    if unknown:
        raise WebhookError(f"Unknown event type: {', '.join(unknown)}.", fields={"event_types": ["Unknown type."]})
    return chosen


def _url_clean(url: str) -> str:
    url = url.strip()
    try:
        URLValidator(schemes=["http", "https"])(url)
        url_check(url)
    except (ValidationError, UnsafeUrl) as exc:
        message = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
        raise WebhookError(message, fields={"url": [message]}) from exc
    return url


def endpoint_create(
    *, organization: Organization, url: str, event_types: list[str] | None = None
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint and return it with its secret (show the secret once: it is not shown again).

    The URL must pass the SSRF guard; ``event_types`` empty means every type.
    """
    endpoint = WebhookEndpoint(
        organization=organization,
        url=_url_clean(url),
        event_types=_event_types_clean(event_types),
        secret=secret_new(),
    )
    endpoint.save()
    return endpoint, endpoint.secret


def endpoint_disable(*, endpoint: WebhookEndpoint, reason: str = "Disabled by the organization") -> WebhookEndpoint:
    """Stop sending to the endpoint; its pending deliveries are given up when they come due."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        status=WebhookEndpoint.Status.DISABLED, disabled_reason=reason[:200]
    )
    endpoint.status, endpoint.disabled_reason = WebhookEndpoint.Status.DISABLED, reason[:200]
    return endpoint


def endpoint_enable(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Send to the endpoint again (new events only; replay the given-up deliveries you want)."""
    url_check(endpoint.url)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(status=WebhookEndpoint.Status.ACTIVE, disabled_reason="")
    endpoint.status, endpoint.disabled_reason = WebhookEndpoint.Status.ACTIVE, ""
    return endpoint


def endpoint_secret_rotate(*, endpoint: WebhookEndpoint) -> str:
    """Give the endpoint a new secret and return it (shown once).

    Requests are signed with both the new and the old secret for ``rotation_grace_seconds``
    (a day), so a receiver can switch over without dropping an event.
    """
    now = timezone.now()
    new_secret = secret_new()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + timedelta(seconds=webhook_setting("rotation_grace_seconds"))
    endpoint.secret = new_secret
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return new_secret


# --- events and deliveries --------------------------------------------------------------------


def _deliver_on_commit(delivery: EventDelivery) -> None:
    kwargs = {"delivery_id": delivery.pk, "organization_id": delivery.organization_id}
    # robust: a broker outage must not fail the business transaction that already committed;
    # the delivery stays pending and the sweeper sends it.
    transaction.on_commit(lambda: webhook_deliver.apply_async(kwargs=kwargs), robust=True)


def event_emit(*, organization_id: int, type: str, data: dict[str, Any]) -> Event:
    """Record an event for the organization and a delivery to each of its active endpoints that take the type.

    Runs in the caller's transaction (an outbox): if it rolls back, the event never existed and
    nothing is sent. Sends are queued only after the commit. Works in any scope (the market
    emits events for either side).
    """
    if type not in EventType.values:
        raise WebhookError(f"Unknown event type: {type}.")
    now = timezone.now()
    # No savepoint: the event belongs to the caller's transaction, all or nothing with it.
    with transaction.atomic(savepoint=False):
        event = Event.objects.create(organization_id=organization_id, type=type, data=data, created_at=now)
        endpoints = WebhookEndpoint.objects.with_scope(organization=organization_id).filter(
            status=WebhookEndpoint.Status.ACTIVE
        )
        deliveries = [
            EventDelivery(
                event=event,
                endpoint=endpoint,
                organization_id=organization_id,
                msg_id=event.public_id,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            for endpoint in endpoints
            if endpoint.accepts(type)
        ]
        for delivery in deliveries:
            # One by one rather than bulk_create: each needs its primary key for the task on every database.
            delivery.save()
            _deliver_on_commit(delivery)
    return event


@dataclass(frozen=True)
class AttemptOutcome:
    """What :func:`delivery_attempt` did: ``sent`` is False when there was nothing to do."""

    delivery_id: int
    status: str
    sent: bool = False
    status_code: int | None = None
    retry_in: float | None = None  # seconds until the next attempt, when one is scheduled


def retry_delay(*, attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) of a series.

    Exponential (``base × factor^(attempt-1)``, capped) with jitter so that many deliveries that
    failed together do not come back together; a receiver's ``Retry-After`` can only lengthen it.
    """
    delay = min(
        webhook_setting("retry_base_seconds") * webhook_setting("retry_factor") ** (attempt - 1),
        webhook_setting("retry_cap_seconds"),
    )
    jitter = webhook_setting("retry_jitter")
    if jitter:
        delay *= random.uniform(1 - jitter, 1 + jitter)  # noqa: S311 — spreading load, not security
    if retry_after is not None:
        delay = max(delay, min(retry_after, webhook_setting("retry_cap_seconds")))
    return max(delay, 0.0)


def _retry_after(headers: dict[str, str]) -> float | None:
    try:
        return float(headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _due(now: datetime) -> Q:
    """Deliveries whose next attempt may start: pending and due, or sending with a lapsed lease."""
    return Q(status__in=[EventDelivery.Status.PENDING, EventDelivery.Status.SENDING], next_attempt_at__lte=now)


def _body(event: Event) -> bytes:
    return json.dumps(event.envelope(), cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False).encode()


def delivery_attempt(*, delivery_id: int) -> AttemptOutcome:
    """Make the delivery's next attempt if one is due, and record it.

    Idempotent: the attempt is claimed with one conditional update (due, and ``attempts == n``
    → ``n + 1``, ``sending``), so however often and however concurrently this runs, attempt
    ``n + 1`` is POSTed at most once (once more only if its worker died and its lease lapsed).
    The POST happens outside any transaction this function opens. 2xx → ``succeeded``; 410 →
    the endpoint is disabled and the delivery ``given_up``; anything else → ``pending`` again
    with ``next_attempt_at`` after a backoff, or ``given_up`` after ``max_attempts``.
    Must run in a scope that sees the delivery (its tenant's, or the market's).
    """
    now = timezone.now()
    delivery = EventDelivery.objects.select_related("endpoint", "event").filter(pk=delivery_id).first()
    if delivery is None:
        return AttemptOutcome(delivery_id, "missing")
    endpoint, event = delivery.endpoint, delivery.event
    if delivery.status not in (EventDelivery.Status.PENDING, EventDelivery.Status.SENDING):
        return AttemptOutcome(delivery_id, delivery.status)
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
        return AttemptOutcome(delivery_id, delivery.status)
    if endpoint.status != WebhookEndpoint.Status.ACTIVE:
        EventDelivery.objects.filter(_due(now), pk=delivery.pk, attempts=delivery.attempts).update(
            status=EventDelivery.Status.GIVEN_UP,
            next_attempt_at=None,
            last_error=f"Endpoint disabled: {endpoint.disabled_reason}"[:ERROR_LIMIT],
            updated_at=now,
        )
        return AttemptOutcome(delivery_id, EventDelivery.Status.GIVEN_UP)

    number = delivery.attempts + 1
    timeout = webhook_setting("timeout_seconds")
    lease_until = now + timedelta(seconds=timeout + 60)
    claimed = EventDelivery.objects.filter(_due(now), pk=delivery.pk, attempts=delivery.attempts).update(
        status=EventDelivery.Status.SENDING, attempts=number, next_attempt_at=lease_until, updated_at=now
    )
    if not claimed:
        return AttemptOutcome(delivery_id, "claimed_elsewhere")

    body = _body(event)
    sent_at = timezone.now()
    headers = signed_headers(
        secret=endpoint.secret,
        extra_secrets=endpoint.signing_secrets(now=sent_at)[1:],
        body=body,
        msg_id=delivery.msg_id,
        now=sent_at,
    )
    status_code: int | None = None
    response_text = error = ""
    retry_after: float | None = None
    response = http_send(
        OutboundRequest(endpoint.url, body, headers, timeout, max_body=RESPONSE_LIMIT, keep_headers=True)
    )
    latency_ms = round(response.latency_ms)
    if response.status is None:
        if response.error == TIMEOUT:
            error = f"Timed out after {timeout:g} s"
        elif response.error == REFUSED:
            error = f"Refused URL: {response.detail}"
        else:
            error = response.detail
    else:
        status_code = response.status
        if response.redirect:
            # Never followed: the receiver answered this URL with somewhere else, a failed attempt.
            error = f"Redirect not followed: {response.location or 'no Location'}"
        else:
            response_text = response.body.decode("utf-8", errors="replace")
        retry_after = _retry_after(response.headers)

    finished = timezone.now()
    retry_in: float | None = None
    gone = status_code == 410
    if status_code is not None and 200 <= status_code < 300:
        status, next_at = EventDelivery.Status.SUCCEEDED, None
    elif gone or number - delivery.attempts_before_replay >= webhook_setting("max_attempts"):
        status, next_at = EventDelivery.Status.GIVEN_UP, None
    else:
        retry_in = retry_delay(attempt=number - delivery.attempts_before_replay, retry_after=retry_after)
        status, next_at = EventDelivery.Status.PENDING, finished + timedelta(seconds=retry_in)
    with transaction.atomic():
        EventAttempt.objects.create(
            delivery=delivery,
            organization_id=delivery.organization_id,
            number=number,
            at=sent_at,
            status_code=status_code,
            latency_ms=latency_ms,
            response=response_text,
            error=error[:ERROR_LIMIT],
        )
        # Conditional on our claim: if the lease lapsed and another worker took the delivery
        # over, its attempt owns the state; ours is still in the log.
        EventDelivery.objects.filter(pk=delivery.pk, status=EventDelivery.Status.SENDING, attempts=number).update(
            status=status,
            next_attempt_at=next_at,
            last_status_code=status_code,
            last_response=response_text,
            last_error=error[:ERROR_LIMIT],
            last_latency_ms=latency_ms,
            updated_at=finished,
        )
        if gone:
            endpoint_disable(endpoint=endpoint, reason=GONE_REASON)
    return AttemptOutcome(delivery_id, status, sent=True, status_code=status_code, retry_in=retry_in)


def delivery_replay(*, delivery: EventDelivery) -> EventDelivery:
    """Send a given-up (or succeeded) delivery again, now, with a fresh series of attempts.

    The earlier attempts stay in the log and the ``webhook-id`` is unchanged. Refused while the
    endpoint is disabled, or while the delivery is still pending or being sent.
    """
    if delivery.endpoint.status != WebhookEndpoint.Status.ACTIVE:
        raise WebhookError("The endpoint is disabled: enable it before replaying.")
    now = timezone.now()
    with transaction.atomic():
        replayed = EventDelivery.objects.filter(
            pk=delivery.pk,
            status__in=[EventDelivery.Status.GIVEN_UP, EventDelivery.Status.SUCCEEDED],
            attempts=delivery.attempts,
        ).update(
            status=EventDelivery.Status.PENDING,
            attempts_before_replay=delivery.attempts,
            next_attempt_at=now,
            updated_at=now,
        )
        if not replayed:
            raise WebhookError("Only a given-up or succeeded delivery can be replayed.")
        _deliver_on_commit(delivery)
    delivery.refresh_from_db()
    return delivery


def deliveries_due(*, limit: int | None = None) -> list[tuple[int, int]]:
    """(delivery id, organization id) of the deliveries whose next attempt is due, oldest first."""
    with market_scope():
        due = EventDelivery.objects.filter(_due(timezone.now())).order_by("next_attempt_at", "pk")
        return list(due.values_list("pk", "organization_id")[: int(limit or webhook_setting("sweep_batch"))])


# --- tasks ------------------------------------------------------------------------------------


@app.task(
    name="exchange.webhook_deliver",
    bind=True,
    base=TenantTask,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def webhook_deliver(self: Any, *, delivery_id: int, organization_id: int) -> str:
    """Attempt one delivery; on failure queue the next attempt with its backoff as ``countdown``.

    Run in-process (eagerly, or by the sweeper through ``apply``) it does not queue itself: the
    delivery waits, pending, for :func:`webhook_deliveries_due`.
    """
    outcome = delivery_attempt(delivery_id=delivery_id)
    if outcome.retry_in is not None and not self.request.is_eager:
        self.apply_async(
            kwargs={"delivery_id": delivery_id, "organization_id": organization_id},
            countdown=outcome.retry_in,
        )
    return outcome.status


@app.task(name="exchange.webhook_deliveries_due", acks_late=True, ignore_result=True)
def webhook_deliveries_due(*, limit: int | None = None) -> int:
    """Attempt every delivery that is due (the periodic safety net for lost or eager tasks); returns how many ran.

    Each runs in this process under its tenant's scope; the claim makes overlap with a queued
    task or another sweep harmless.
    """
    due = deliveries_due(limit=limit)
    for delivery_id, organization_id in due:
        try:
            webhook_deliver.apply(kwargs={"delivery_id": delivery_id, "organization_id": organization_id}, throw=True)
        except Exception:
            # One broken delivery must not starve the others in the batch.
            logger.exception("webhook delivery %s failed", delivery_id)
    return len(due)
