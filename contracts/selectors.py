"""Reads for campaigns and contracts; the organization is always explicit."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Organization
from contracts.models import BuyerContract, Campaign


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
