"""Reads of returns: a buyer's returns, whether a purchase can be returned, return rates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from django.conf import settings
from django.db import models
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import market_scope
from contracts.models import Campaign
from core.errors import NotFound
from exchange.models import Sale
from exchange.returns.models import Return

# The period the auto-approve rule measures a buyer's return rate over.
AUTO_APPROVE_PERIOD = timedelta(days=30)
# Undecided requests are denied as "expired" after this many days (setting GAVEL_RETURN_EXPIRY_DAYS).
DEFAULT_EXPIRY_DAYS = 14
PERCENT = Decimal("0.01")


def expiry_days() -> int:
    return int(getattr(settings, "GAVEL_RETURN_EXPIRY_DAYS", DEFAULT_EXPIRY_DAYS))


def return_deadline(sale: Sale) -> datetime | None:
    """When the sale's return window closes (``sold_at`` + the contract's window), None if never sold."""
    if sale.sold_at is None:
        return None
    return sale.sold_at + timedelta(hours=sale.contract.return_window_hours)


def return_of_sale(*, buyer: Organization, sale: Sale) -> Return | None:
    """The sale's return (the latest, should there be several), or None."""
    with market_scope():
        return Return.objects.filter(organization=buyer, sale=sale).order_by("-created_at", "-pk").first()


def return_get(*, buyer: Organization, public_id: str) -> Return:
    """The buyer's return, or NotFound — another buyer's is a missing one."""
    with market_scope():
        ret = (
            Return.objects.filter(organization=buyer, public_id=public_id)
            .select_related("sale", "sale__lead", "sale__contract")
            .first()
        )
    if ret is None:
        raise NotFound("No such return.")
    return ret


def returns_of(*, buyer: Organization) -> models.QuerySet[Return]:
    """The buyer's returns, newest first (evaluate it in the buyer's scope or the market's)."""
    return Return.objects.filter(organization=buyer).select_related("sale", "sale__lead").order_by("-pk")


@dataclass(frozen=True)
class Returnability:
    """Where a purchase stands for returns: its return if any, the deadline, and whether one may be asked now."""

    ret: Return | None
    deadline: datetime | None
    open: bool
    why_not: str = ""


def returnability(*, buyer: Organization, sale: Sale, now: datetime | None = None) -> Returnability:
    """Whether the buyer may ask to return ``sale`` now, and if not, why (in words for the portal)."""
    now = now or timezone.now()
    ret = return_of_sale(buyer=buyer, sale=sale)
    deadline = return_deadline(sale)
    why_not = ""
    if ret is not None:
        why_not = "This sale already has a return."
    elif sale.test:
        why_not = "A test sale cannot be returned."
    elif sale.status != Sale.Status.SOLD or deadline is None:
        why_not = "Only a sold lead can be returned."
    elif now >= deadline:
        why_not = "The return window has closed."
    return Returnability(ret=ret, deadline=deadline, open=not why_not, why_not=why_not)


def _percent(part: int, whole: int) -> Decimal:
    if whole <= 0:
        return Decimal("0.00")
    return (Decimal(part) * 100 / Decimal(whole)).quantize(PERCENT, rounding=ROUND_HALF_UP)


def _rated_sales(*, since: datetime, until: datetime | None) -> models.QuerySet[Sale]:
    """The sales a return rate counts: real (not test) sales sold in [since, until), sold or returned."""
    sales = Sale.objects.filter(
        test=False, status__in=[Sale.Status.SOLD, Sale.Status.RETURNED], sold_at__gte=since, sold_at__isnull=False
    )
    if until is not None:
        sales = sales.filter(sold_at__lt=until)
    return sales


def return_rate(
    *,
    buyer: Organization | None = None,
    campaign: Campaign | None = None,
    since: datetime,
    until: datetime | None = None,
) -> Decimal:
    """The percent (two decimals) of the sales sold in [since, until) that were returned (approved).

    For one buyer, one seller campaign, or (neither given) the whole exchange. Test sales and
    sales that never sold do not count; with no sale the rate is 0.00. Reads across tenants (a
    campaign's sales belong to their buyers), filtered explicitly.
    """
    with market_scope():
        sales = _rated_sales(since=since, until=until)
        if buyer is not None:
            sales = sales.filter(organization=buyer)
        if campaign is not None:
            sales = sales.filter(campaign=campaign)
        counts = sales.aggregate(sold=Count("pk"), returned=Count("pk", filter=Q(status=Sale.Status.RETURNED)))
    return _percent(counts["returned"], counts["sold"])


@dataclass(frozen=True)
class ReturnRate:
    """One buyer's or one seller campaign's return figures over a period."""

    id: int
    public_id: str  # the buyer's slug, or the campaign's cmp_ id
    name: str
    sold: int
    returned: int
    rate: Decimal  # percent, two decimals


def return_rates(
    *, by: Literal["buyer", "campaign"], since: datetime, until: datetime | None = None
) -> list[ReturnRate]:
    """Return figures per buyer or per seller campaign over [since, until), highest rate first.

    The reporting pages call this; one aggregate query. Operator-only data (it names every
    buyer or campaign): cut it to the viewer's own rows before showing it to a tenant.
    """
    with market_scope():
        sales = _rated_sales(since=since, until=until)
        if by == "buyer":
            keys = ("organization_id", "organization__slug", "organization__name")
        else:
            keys = ("campaign_id", "campaign__public_id", "campaign__name")
        rows = sales.values(*keys).annotate(
            sold=Count("pk"), returned=Count("pk", filter=Q(status=Sale.Status.RETURNED))
        )
        rates = [
            ReturnRate(
                id=row[keys[0]],
                public_id=row[keys[1]],
                name=row[keys[2]],
                sold=row["sold"],
                returned=row["returned"],
                rate=_percent(row["returned"], row["sold"]),
            )
            for row in rows
        ]
    return sorted(rates, key=lambda r: (-r.rate, r.name))


def auto_approve_rate(*, buyer: Organization, sale: Sale, now: datetime) -> Decimal:
    """The buyer's return rate over the auto-approve period if ``sale`` were returned too."""
    since = now - AUTO_APPROVE_PERIOD
    counts = (
        _rated_sales(since=since, until=None)
        .filter(organization=buyer)
        .aggregate(sold=Count("pk"), returned=Count("pk", filter=Q(status=Sale.Status.RETURNED)))
    )
    sold = counts["sold"] + (0 if sale.sold_at is not None and sale.sold_at >= since else 1)
    return _percent(counts["returned"] + 1, sold)
