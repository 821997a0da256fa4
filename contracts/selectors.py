"""Reads for campaigns and contracts; the organization is always explicit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Organization
from contracts.models import PERIODS, BuyerContract, Campaign, CapCounter
from contracts.schedules import period_key


def contracts_of(*, organization: Organization) -> QuerySet[BuyerContract]:
    return BuyerContract.objects.filter(organization=organization).select_related("offer").order_by("name")


def contract_get(*, organization: Organization, public_id: str) -> BuyerContract:
    """The organization's contract, or Http404 — another tenant's contract is a missing one."""
    contract = contracts_of(organization=organization).filter(public_id=public_id).first()
    if contract is None:
        raise Http404("No such contract.")
    return contract


def campaigns_of(*, organization: Organization) -> QuerySet[Campaign]:
    return Campaign.objects.filter(organization=organization).select_related("offer").order_by("name")


def campaign_get(*, organization: Organization, public_id: str) -> Campaign:
    campaign = campaigns_of(organization=organization).filter(public_id=public_id).first()
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


def contract_usage(*, organization: Organization, contract: BuyerContract, now: datetime) -> dict[str, CapCounter]:
    """The contract's leads bought and money spent in each period that contains ``now`` (in the
    organization's time zone), by period; a period with nothing bought yet has no entry."""
    keys = {period: period_key(period, now, organization.tz) for period in PERIODS}
    counters = CapCounter.objects.filter(
        organization=organization, contract=contract, period_key__in=list(keys.values())
    )
    by_key = {counter.period_key: counter for counter in counters}
    return {period: by_key[key] for period, key in keys.items() if key in by_key}


def offers_open() -> QuerySet[Any]:
    """The offers a buyer can put a new contract on (the model read through the contract's relation:
    offers belong to the exchange app, above this one)."""
    offer = BuyerContract._meta.get_field("offer").related_model
    return offer.objects.filter(status="active").order_by("name")  # type: ignore[attr-defined]
