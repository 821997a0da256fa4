"""Writes for leads: store a lead with its PII encrypted and its consent, keep the opt-out list."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.schema import FieldSpec
from leads.crypto import pii_encrypt
from leads.models import ConsentRecord, Lead, Suppression


def json_value(value: object) -> Any:
    """A validated field value in its JSON form (dates ISO, decimals as strings)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def lead_split(values: Mapping[str, object], fields: Mapping[str, FieldSpec]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(non-PII fields, PII fields) of a validated lead, in JSON form."""
    plain = {k: json_value(v) for k, v in values.items() if not fields[k].pii}
    pii = {k: json_value(v) for k, v in values.items() if fields[k].pii}
    return plain, pii


def lead_store(
    *,
    seller_id: int,
    campaign_id: int,
    offer_id: int,
    ping_id: int | None,
    values: Mapping[str, object],
    fields: Mapping[str, FieldSpec],
    consent: Mapping[str, Any],
    tracking: Mapping[str, Any],
    email_hash: str,
    phone_hash: str,
    quality_score: int,
    test: bool,
    keep_pii: bool = True,
    quality_signals: Mapping[str, int] | None = None,
) -> Lead:
    """Store a lead and its consent record (one transaction). PII is encrypted before it is written;
    ``keep_pii=False`` (a suppressed consumer) keeps none of it."""
    plain, pii = lead_split(values, fields)
    with transaction.atomic():
        lead = Lead.objects.create(
            organization_id=seller_id,
            campaign_id=campaign_id,
            offer_id=offer_id,
            ping_id=ping_id,
            data=plain,
            pii_encrypted=pii_encrypt(pii if keep_pii else {}),
            email_hash=email_hash,
            phone_hash=phone_hash,
            tracking=dict(tracking),
            quality_score=quality_score,
            quality_signals=dict(quality_signals or {}),
            test=test,
        )
        ConsentRecord.objects.create(
            lead=lead,
            organization_id=seller_id,
            text=consent.get("text", ""),
            captured_at=consent["captured_at"],
            ip=consent.get("ip") or None,
            user_agent=consent.get("user_agent", ""),
            page_url=consent.get("page_url", ""),
            trusted_form_cert_url=consent.get("trusted_form_cert_url", ""),
            jornaya_leadid=consent.get("jornaya_leadid", ""),
            raw={k: json_value(v) for k, v in consent.items()},
        )
    return lead


def lead_outcome_set(*, lead: Lead, status: str, reason: str = "", payout: Decimal | None = None) -> None:
    """Record where a lead stands (sold, unsold, pending, rejected), its reason and, when given, what
    its seller earns; ``lead`` is updated to match. Call inside the caller's transaction."""
    values: dict[str, Any] = {"status": status, "reason": reason, "updated_at": timezone.now()}
    if payout is not None:
        values["payout"] = payout
    Lead.objects.filter(pk=lead.pk).update(**values)
    lead.status, lead.reason = status, reason
    if payout is not None:
        lead.payout = payout


def lead_reauction_claim(*, lead: Lead, cycle: int) -> bool:
    """Claim re-auction ``cycle`` of a pending lead, once: a compare-and-set on its last cycle, so a
    task delivered twice runs the cycle once. False when the lead is no longer pending or the
    cycle was claimed already."""
    claimed = Lead.objects.filter(pk=lead.pk, status=Lead.Status.PENDING, reauction_cycle__lt=cycle).update(
        reauction_cycle=cycle, updated_at=timezone.now()
    )
    if claimed:
        lead.reauction_cycle = cycle
    return bool(claimed)


def suppression_add(*, consumer_hash: str, reason: str = "") -> Suppression:
    """Opt a consumer out of the exchange (idempotent)."""
    suppression, _ = Suppression.objects.get_or_create(consumer_hash=consumer_hash, defaults={"reason": reason})
    return suppression
