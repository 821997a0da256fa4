"""Reporting's reads: a buyer's conversions, a seller's postbacks."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from accounts.models import Organization
from contracts.models import Campaign
from exchange.models import Sale
from reporting.models import Conversion, Postback, PostbackAttempt


def conversions_of(*, buyer: Organization, sale: Sale | None = None) -> QuerySet[Conversion]:
    """The buyer's conversions, newest first (of one of its sales, if given)."""
    conversions = Conversion.objects.filter(organization=buyer).select_related("sale__lead")
    if sale is not None:
        conversions = conversions.filter(sale=sale)
    return conversions.order_by("-created_at", "-id")


def postbacks_of(*, seller: Organization, campaign: Campaign | None = None, limit: int = 100) -> QuerySet[Postback]:
    """The seller's latest postbacks, newest first, with their campaign, lead and attempts."""
    postbacks = Postback.objects.filter(organization=seller).select_related("campaign", "lead")
    if campaign is not None:
        postbacks = postbacks.filter(campaign=campaign)
    attempts = Prefetch("attempt_log", queryset=PostbackAttempt.objects.filter(organization=seller))
    return postbacks.order_by("-created_at", "-id").prefetch_related(attempts)[:limit]
