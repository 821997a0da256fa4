"""The exchange's part of a privacy deletion (``core.hooks.consumer_erase``, from ``leads.privacy``).

The leads app erases the lead's PII and consent; here, in the same transaction, the exchange blanks
what its own tables may hold of the consumer — and keeps every sale, bid, amount and count:

* pings (the consumer's by hash, and those that became their leads): the consent's IP and user
  agent, any echo of the email or phone in the ping fields, tracking or waterfall;
* delivery attempts of the leads' sales: the consent sent to the buyer (IP, user agent);
* free text written from others' answers, over the whole table (:data:`LOG_COLUMNS`, narrowed by
  the probes): buyers' delivery answers and rejection reasons, sales' ``release_reason``, returns'
  notes, webhook receivers' answers — any of them may quote the consumer;
* stored ``Idempotency-Key`` answers (kept 24 hours): any echo of the email or phone;
* webhook events about those leads or sales;

then sends ``lead.erased`` to each buyer that received a lead (bought it, returned it, or had it
delivered), so they erase it in their own systems.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Model, Q
from django.utils import timezone

from accounts.tenancy import market_scope
from core.erasure import contains, scrub
from exchange.api.idempotency import IdempotencyRecord
from exchange.models import DeliveryAttempt, Ping, Sale
from exchange.returns.models import Return
from exchange.webhooks import Event, EventAttempt, EventDelivery, event_emit
from leads.models import Lead

CONSENT_PII = {"ip": None, "user_agent": ""}


def _consent_blank(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {k: (CONSENT_PII[k] if k in CONSENT_PII and v not in (None, "") else v) for k, v in value.items()}


def _scrub_column(model: type[Model], column: str, pattern: re.Pattern[str] | None, probes: list[str]) -> int:
    """Blank the consumer in one free-text column of a whole table: the database finds the rows
    holding a probe (a sequential scan, once per deletion), :func:`scrub` rewrites them."""
    if pattern is None or not probes:
        return 0
    holding = Q()
    for probe in probes:
        holding |= Q(**{f"{column}__icontains": probe})
    changed = 0
    for pk, value in model._base_manager.filter(holding).values_list("pk", column).iterator():
        blanked = scrub(value, pattern)
        if blanked != value:
            model._base_manager.filter(pk=pk).update(**{column: blanked})
            changed += 1
    return changed


# Free text written from what a buyer or receiver answered: it may quote any consumer, so each
# column is scanned whole (narrowed by the probes), not only the rows of the consumer's sales.
LOG_COLUMNS: list[tuple[type[Model], str, str]] = [
    (DeliveryAttempt, "response", "delivery_attempts"),
    (DeliveryAttempt, "reason", "delivery_attempts"),
    (Sale, "release_reason", "sales"),
    (Return, "note", "return_notes"),
    (Return, "decision_note", "return_notes"),
    (EventDelivery, "last_response", "webhook_logs"),
    (EventAttempt, "response", "webhook_logs"),
]


def consumer_erase(
    *,
    lead_ids: list[int],
    email_hashes: list[str],
    phone_hashes: list[str],
    pattern: re.Pattern[str] | None,
    probes: list[str],
) -> dict[str, int]:
    """Blank the consumer in the exchange's tables and notify their buyers; counts of rows changed."""
    counts = {"pings": 0, "delivery_attempts": 0, "idempotent_responses": 0, "webhook_logs": 0, "erasure_notices": 0}
    with market_scope():
        pings = Ping.objects.filter(
            Q(posted_lead__id__in=lead_ids) | Q(email_hash__in=email_hashes) | Q(phone_hash__in=phone_hashes)
        )
        for ping in pings:
            values = {
                "consent": scrub(_consent_blank(ping.consent), pattern),
                "lead": scrub(ping.lead, pattern),
                "tracking": scrub(ping.tracking, pattern),
                "waterfall": scrub(ping.waterfall, pattern),
            }
            if any(values[name] != getattr(ping, name) for name in values):
                Ping.objects.filter(pk=ping.pk).update(**values)
                counts["pings"] += 1

        sales = list(Sale.objects.filter(lead_id__in=lead_ids).select_related("lead"))
        # What was sent to the buyers: the consent's IP and user agent (the lead's PII was redacted).
        for attempt in DeliveryAttempt.objects.filter(sale__in=sales):
            request = scrub(attempt.request, pattern)
            if isinstance(request, dict) and "consent" in request:
                request = {**request, "consent": _consent_blank(request["consent"])}
            if request != attempt.request:
                DeliveryAttempt.objects.filter(pk=attempt.pk).update(request=request)
                counts["delivery_attempts"] += 1
        for model, column, name in LOG_COLUMNS:
            counts[name] = counts.get(name, 0) + _scrub_column(model, column, pattern, probes)

        # Kept 24 hours and purged hourly, so a scan of the whole table stays small.
        for record in IdempotencyRecord.objects.exclude(response_body=None).iterator():
            if contains(record.response_body, pattern):
                IdempotencyRecord.objects.filter(pk=record.pk).update(
                    response_body=scrub(record.response_body, pattern)
                )
                counts["idempotent_responses"] += 1

        lead_public_ids = list(Lead.objects.filter(pk__in=lead_ids).values_list("public_id", flat=True))
        events = Event.objects.filter(
            Q(data__lead_id__in=lead_public_ids) | Q(data__sale_id__in=[sale.public_id for sale in sales])
        )
        for event in events:
            if contains(event.data, pattern):
                Event.objects.filter(pk=event.pk).update(data=scrub(event.data, pattern))
                counts["webhook_logs"] += 1

        now = timezone.now()
        delivered = set(DeliveryAttempt.objects.filter(sale__in=sales).values_list("sale_id", flat=True))
        for sale in sales:
            if sale.status in (Sale.Status.SOLD, Sale.Status.RETURNED) or sale.pk in delivered:
                event_emit(
                    organization_id=sale.organization_id,
                    type="lead.erased",
                    data={"lead_id": sale.lead.public_id, "sale_id": sale.public_id, "erased_at": now},
                )
                counts["erasure_notices"] += 1
    return counts
