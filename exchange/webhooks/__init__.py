"""Event webhooks: endpoints, events, deliveries, their attempts, and the tasks.

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

Modules: ``models`` (the tables), ``selectors`` (reads), ``services`` (writes: endpoints, the
outbox, attempts), ``tasks`` (Celery wrappers). The names other apps use are re-exported here.
"""

from exchange.webhooks.models import Event, EventAttempt, EventDelivery, EventType, WebhookEndpoint, webhook_setting
from exchange.webhooks.selectors import deliveries_of, delivery_get, endpoint_get, endpoints_of
from exchange.webhooks.services import (
    AttemptOutcome,
    WebhookError,
    deliveries_due,
    delivery_attempt,
    delivery_replay,
    endpoint_create,
    endpoint_disable,
    endpoint_enable,
    endpoint_secret_rotate,
    event_emit,
    retry_delay,
)

__all__ = [
    "AttemptOutcome",
    "Event",
    "EventAttempt",
    "EventDelivery",
    "EventType",
    "WebhookEndpoint",
    "WebhookError",
    "deliveries_due",
    "deliveries_of",
    "delivery_attempt",
    "delivery_get",
    "delivery_replay",
    "endpoint_create",
    "endpoint_disable",
    "endpoint_enable",
    "endpoint_get",
    "endpoint_secret_rotate",
    "endpoints_of",
    "event_emit",
    "retry_delay",
    "webhook_setting",
]
