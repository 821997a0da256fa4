"""Reads of the market's rows for other apps: a seller's view of its lead's sales, the expected holds."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, Subquery, Sum

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


def holds_expected() -> Subquery:
    """What each buyer (``OuterRef("organization")``) should have held: the prices of its real
    sales still being delivered. The ledger's reconciliation compares it with the buyer's ``held``."""
    return Subquery(
        Sale.objects.filter(organization=OuterRef("organization"), status=Sale.Status.RESERVED, test=False)
        .order_by()
        .values("organization")
        .annotate(total=Sum("price"))
        .values("total")
    )
