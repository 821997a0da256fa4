"""Reads of leads; the organization is always explicit."""

from __future__ import annotations

from typing import Any

from accounts.models import Organization
from accounts.tenancy import market_scope
from exchange.errors import NotFound
from leads.models import Lead


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


def lead_sales_for_seller(*, seller: Organization, lead: Lead) -> list[dict[str, Any]]:
    """The sales of the seller's lead, without naming the buyers (sales belong to buyers, so this
    reads across tenants, filtered by the seller)."""
    from exchange.models import Sale

    with market_scope():
        sales = Sale.objects.filter(seller=seller, lead=lead).order_by("created_at")
        return [
            {"sale_id": s.public_id, "status": s.status, "payout": f"{s.payout:.2f}", "sold_at": s.sold_at}
            for s in sales
        ]
