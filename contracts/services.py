"""Writes for campaigns and contracts. Each validates like a form and owns its transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q

from accounts.models import Organization
from accounts.tenancy import market_scope
from contracts.models import PERIODS, BuyerContract, Campaign, CapCounter

CONTRACT_FIELDS = frozenset(
    {
        "name",
        "status",
        "price",
        "modifiers",
        "rtb_url",
        "rtb_timeout_ms",
        "max_price",
        "filters",
        "cap_day",
        "cap_week",
        "cap_month",
        "cap_total",
        "budget_day",
        "budget_week",
        "budget_month",
        "budget_total",
        "schedule",
        "dedup_days",
        "min_score",
        "priority",
        "weight",
        "return_window_hours",
        "delivery",
        "paused_reason",
    }
)
CAMPAIGN_FIELDS = frozenset(
    {
        "name",
        "status",
        "margin_percent",
        "floor",
        "direct_contract",
        "direct_price",
        "direct_share_percent",
        "webhook_url",
    }
)


def _market_changed() -> None:
    from exchange.auction.book import book_invalidate  # the book compiles what this app owns

    book_invalidate()


def _apply(instance: Any, values: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(values) - allowed
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "Unknown field."})
    for key, value in values.items():
        setattr(instance, key, value)


@transaction.atomic
def contract_upsert(
    *,
    organization: Organization,
    offer: Any,
    slug: str,
    values: dict[str, Any],
    blocked_sellers: Iterable[Organization] | None = None,
    public_id: str | None = None,
) -> tuple[BuyerContract, bool]:
    """Create or update the buyer contract with this slug; filters, modifiers, schedule and
    delivery are validated against the offer's schema (``ValidationError`` names the field)."""
    contract = BuyerContract.objects.filter(slug=slug).first()
    created = contract is None
    if contract is None:
        contract = BuyerContract(slug=slug, organization=organization, offer=offer)
    elif contract.organization_id != organization.pk:
        raise ValidationError({"slug": f"'{slug}' is already used by another organization."})
    contract.offer = offer
    if public_id:
        contract.public_id = public_id
    _apply(contract, values, CONTRACT_FIELDS)
    contract.full_clean()
    contract.save()
    if blocked_sellers is not None:
        contract.blocked_sellers.set(blocked_sellers)
    _market_changed()
    return contract, created


@transaction.atomic
def contract_update(*, contract: BuyerContract, values: dict[str, Any]) -> BuyerContract:
    """Change a contract's terms (the buyer's bid automation); all or nothing."""
    _apply(contract, values, CONTRACT_FIELDS)
    contract.full_clean()
    contract.save()
    _market_changed()
    return contract


@transaction.atomic
def campaign_upsert(
    *,
    organization: Organization,
    offer: Any,
    slug: str,
    values: dict[str, Any],
    blocked_buyers: Iterable[Organization] | None = None,
    public_id: str | None = None,
) -> tuple[Campaign, bool]:
    """Create or update the seller campaign with this slug."""
    campaign = Campaign.objects.filter(slug=slug).first()
    created = campaign is None
    if campaign is None:
        campaign = Campaign(slug=slug, organization=organization, offer=offer)
    elif campaign.organization_id != organization.pk:
        raise ValidationError({"slug": f"'{slug}' is already used by another organization."})
    campaign.offer = offer
    if public_id:
        campaign.public_id = public_id
    _apply(campaign, values, CAMPAIGN_FIELDS)
    campaign.full_clean()
    campaign.save()
    if blocked_buyers is not None:
        campaign.blocked_buyers.set(blocked_buyers)
    _market_changed()
    return campaign, created


class CapRefused(Exception):
    """A contract cannot take one more lead: ``reason`` is its waterfall reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def cap_reserve(
    *,
    contract_id: int,
    organization_id: int,
    keys: Mapping[str, str],
    caps: dict[str, int],
    budgets: dict[str, Decimal],
    price: Decimal,
) -> None:
    """Count one lead at ``price`` in every limited period, or none (raise :class:`CapRefused`).

    Each period is one conditional UPDATE (``count < cap AND spend + price <= budget``), in a fixed
    period order, so concurrent posts never oversell and never deadlock. Call inside a transaction.
    """
    with market_scope():
        CapCounter.objects.bulk_create(
            [
                CapCounter(organization_id=organization_id, contract_id=contract_id, period=period, period_key=key)
                for period, key in keys.items()
            ],
            ignore_conflicts=True,
        )
        for period in PERIODS:
            if period not in keys:
                continue
            key = keys[period]
            condition = Q()
            if period in caps:
                condition &= Q(count__lt=caps[period])
            if period in budgets:
                condition &= Q(spend__lte=budgets[period] - price)
            updated = CapCounter.objects.filter(condition, contract_id=contract_id, period_key=key).update(
                count=F("count") + 1, spend=F("spend") + price
            )
            if updated != 1:
                count = CapCounter.objects.filter(contract_id=contract_id, period_key=key).values_list(
                    "count", flat=True
                )
                capped = period in caps and count[0] >= caps[period]
                raise CapRefused(f"cap_reached:{period}" if capped else "budget_reached")


def cap_release(*, contract_id: int, keys: list[str], price: Decimal) -> None:
    """Hand back one lead at ``price`` in the given periods (a rejected or returned sale)."""
    with market_scope():
        CapCounter.objects.filter(contract_id=contract_id, period_key__in=keys).update(
            count=F("count") - 1, spend=F("spend") - price
        )


def contract_pause(*, contract_id: int, reason: str) -> bool:
    """Pause an active contract (e.g. the RTB circuit breaker) and tell its organization.

    Compare-and-set: pausing a paused contract does nothing and returns False.
    """
    with market_scope(), transaction.atomic():
        updated = BuyerContract.objects.filter(pk=contract_id, status=BuyerContract.Status.ACTIVE).update(
            status=BuyerContract.Status.PAUSED, paused_reason=reason[:200]
        )
        if not updated:
            return False
        contract = BuyerContract.objects.select_related("offer").get(pk=contract_id)
        _market_changed()
        from exchange.webhooks import event_emit  # events are the exchange's outbox

        event_emit(
            organization_id=contract.organization_id,
            type="contract.paused",
            data={
                "contract": contract.public_id,
                "name": contract.name,
                "offer": contract.offer.slug,
                "reason": reason,
            },
        )
    return True
