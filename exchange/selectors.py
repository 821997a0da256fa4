"""Reads of the market's rows for other pages: a seller's view of its lead's sales."""

from __future__ import annotations

from typing import Any

from accounts.models import Organization
from accounts.tenancy import market_scope
from exchange.models import Sale
from leads.models import Lead


def lead_sales_for_seller(*, seller: Organization, lead: Lead) -> list[dict[str, Any]]:
    """The sales of the seller's lead, without naming the buyers (sales belong to buyers, so this
    reads across tenants, filtered by the seller)."""
    with market_scope():
        sales = Sale.objects.filter(seller=seller, lead=lead).order_by("created_at")
        return [
            {"sale_id": s.public_id, "status": s.status, "payout": f"{s.payout:.2f}", "sold_at": s.sold_at}
            for s in sales
        ]
