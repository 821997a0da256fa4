"""Writes: endpoints, the event outbox, and each delivery attempt."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Membership, Organization
from accounts.roles import role_require
from accounts.tenancy import market_scope
from core.errors import ExchangeError
from core.outbound import REFUSED, TIMEOUT, OutboundRequest, UnsafeUrl, http_send, url_check
from core.retry import backoff_delay
from core.sql import model_insert, model_read
from exchange.signing import secret_new, signed_headers
from exchange.webhooks import tasks  # the task module names these services only when run
from exchange.webhooks.models import (
    ERROR_LIMIT,
    GONE_REASON,
    RESPONSE_LIMIT,
    Event,
    EventAttempt,
    EventDelivery,
    EventType,
    WebhookEndpoint,
    webhook_setting,
)

logger = logging.getLogger(__name__)


class WebhookError(ExchangeError):
    code = "validation_error"
    status = 422


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
    *,
    organization: Organization,
    url: str,
    event_types: list[str] | None = None,
    actor: Membership | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint and return it with its secret (show the secret once: it is not shown again).

    The URL must pass the SSRF guard; ``event_types`` empty means every type. ``actor``: the
    portal's member, a manager or owner (the market file acts without one); so for every
    endpoint service below.
    """
    if actor is not None:
        role_require(actor, "manager", organization_id=organization.pk)
    endpoint = WebhookEndpoint(
        organization=organization,
        url=_url_clean(url),
        event_types=_event_types_clean(event_types),
        secret=secret_new(),
    )
    endpoint.save()
    return endpoint, endpoint.secret


def endpoint_disable(
    *, endpoint: WebhookEndpoint, reason: str = "Disabled by the organization", actor: Membership | None = None
) -> WebhookEndpoint:
    """Stop sending to the endpoint; its pending deliveries are given up when they come due."""
    if actor is not None:
        role_require(actor, "manager", organization_id=endpoint.organization_id)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        status=WebhookEndpoint.Status.DISABLED, disabled_reason=reason[:200]
    )
    endpoint.status, endpoint.disabled_reason = WebhookEndpoint.Status.DISABLED, reason[:200]
    return endpoint


def endpoint_enable(*, endpoint: WebhookEndpoint, actor: Membership | None = None) -> WebhookEndpoint:
    """Send to the endpoint again (new events only; replay the given-up deliveries you want)."""
    if actor is not None:
        role_require(actor, "manager", organization_id=endpoint.organization_id)
    url_check(endpoint.url)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(status=WebhookEndpoint.Status.ACTIVE, disabled_reason="")
    endpoint.status, endpoint.disabled_reason = WebhookEndpoint.Status.ACTIVE, ""
    return endpoint


def endpoint_secret_rotate(*, endpoint: WebhookEndpoint, actor: Membership | None = None) -> str:
    """Give the endpoint a new secret and return it (shown once).

    Requests are signed with both the new and the old secret for ``rotation_grace_seconds``
    (a day), so a receiver can switch over without dropping an event.
    """
    if actor is not None:
        role_require(actor, "manager", organization_id=endpoint.organization_id)
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
    transaction.on_commit(lambda: tasks.webhook_deliver.apply_async(kwargs=kwargs), robust=True)


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
        event = Event(organization_id=organization_id, type=type, data=data, created_at=now)
        model_insert(event)
        endpoints = model_read(
            WebhookEndpoint,
            "organization_id = %s AND status = %s ORDER BY created_at, id",
            [organization_id, WebhookEndpoint.Status.ACTIVE],
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
        if deliveries:
            model_insert(*deliveries)  # with their primary keys, which the tasks name
        for delivery in deliveries:
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
    delay = backoff_delay(
        attempt=attempt,
        base=webhook_setting("retry_base_seconds"),
        factor=webhook_setting("retry_factor"),
        cap=webhook_setting("retry_cap_seconds"),
        jitter=webhook_setting("retry_jitter"),
    )
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


def delivery_replay(*, delivery: EventDelivery, actor: Membership | None = None) -> EventDelivery:
    """Send a given-up (or succeeded) delivery again, now, with a fresh series of attempts.

    The earlier attempts stay in the log and the ``webhook-id`` is unchanged. Refused while the
    endpoint is disabled, or while the delivery is still pending or being sent. ``actor``: the
    portal's member, a manager or owner.
    """
    if actor is not None:
        role_require(actor, "manager", organization_id=delivery.organization_id)
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
