"""Reads of leads; the organization is always explicit."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from accounts.models import Organization
from core.errors import NotFound
from core.sql import sql_rows
from leads.models import Lead, Suppression
from leads.sql import suppressions_refusing


def lead_get(*, seller: Organization, public_id: str) -> Lead:
    """The seller's lead, or NotFound — another seller's lead is a missing one."""
    lead = (
        Lead.objects.filter(organization=seller, public_id=public_id)
        .select_related("campaign", "offer", "ping")
        .first()
    )
    if lead is None:
        raise NotFound("No such lead.")
    return lead


def suppressions_of(
    *, organization: Organization, scope: str | None = None, consumer_hashes: Collection[str] = ()
) -> QuerySet[Suppression]:
    """The suppressions the organization filed, newest first; ``scope`` and ``consumer_hashes``
    narrow them."""
    rows = Suppression.objects.filter(organization=organization).order_by("-created_at", "-pk")
    if scope:
        rows = rows.filter(scope=scope)
    if consumer_hashes:
        rows = rows.filter(consumer_hash__in=list(consumer_hashes))
    return rows


@dataclass(frozen=True)
class SuppressionMatch:
    """Who may not buy a consumer: everyone (``exchange``), or these buyers (their own lists)."""

    exchange: bool
    buyer_ids: frozenset[int]

    def refuses(self, buyer_id: int) -> bool:
        return self.exchange or buyer_id in self.buyer_ids


def suppression_match(*, consumer_hashes: Collection[str]) -> SuppressionMatch:
    """Whether any of a consumer's hashes is suppressed exchange-wide, and which organizations
    listed it on their own lists. Market-wide by nature (every buyer's list counts): called by the
    exchange's selling path, never shown to a tenant. One query; no hashes, no query."""
    hashes = [h for h in consumer_hashes if h]
    if not hashes:
        return SuppressionMatch(False, frozenset())
    exchange, buyers = False, set()
    for scope, organization_id in sql_rows(*suppressions_refusing(hashes)):
        if scope == Suppression.Scope.EXCHANGE:
            exchange = True
        elif organization_id is not None:
            buyers.add(organization_id)
    return SuppressionMatch(exchange, frozenset(buyers))


def leads_pii_expired(*, before: datetime, limit: int) -> list[int]:
    """Ids of up to ``limit`` leads created before ``before`` whose personal data is still kept,
    oldest first. Market-wide (the retention purge), never shown to a tenant."""
    return list(
        Lead.objects.filter(created_at__lt=before, pii_purged_at__isnull=True)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
