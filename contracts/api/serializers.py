from __future__ import annotations

from typing import Any

from rest_framework import serializers

from contracts.models import PERIODS, BuyerContract, Campaign
from contracts.terms import ContractTermsInput


class ContractOutput(serializers.ModelSerializer):  # type: ignore[type-arg]
    id = serializers.CharField(source="public_id")
    offer: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="slug", read_only=True)  # type: ignore[type-arg]
    caps = serializers.SerializerMethodField()
    budget = serializers.SerializerMethodField()

    class Meta:
        model = BuyerContract
        fields = [
            "id",
            "slug",
            "name",
            "offer",
            "status",
            "hold",
            "hold_reason",
            "breaker_retry_at",
            "price",
            "modifiers",
            "rtb_url",
            "rtb_timeout_ms",
            "max_price",
            "filters",
            "caps",
            "budget",
            "schedule",
            "dedup_days",
            "min_score",
            "priority",
            "weight",
            "return_window_hours",
            "delivery",
            "created_at",
            "updated_at",
        ]

    def get_caps(self, contract: BuyerContract) -> dict[str, Any]:
        return {period: contract.cap(period) for period in PERIODS}

    def get_budget(self, contract: BuyerContract) -> dict[str, Any]:
        return {period: None if (b := contract.budget(period)) is None else f"{b:.2f}" for period in PERIODS}


class CampaignOutput(serializers.ModelSerializer):  # type: ignore[type-arg]
    id = serializers.CharField(source="public_id")
    offer: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="slug", read_only=True)  # type: ignore[type-arg]

    class Meta:
        model = Campaign
        fields = [
            "id",
            "slug",
            "name",
            "offer",
            "status",
            "margin_percent",
            "floor",
            "payout_fixed",
            "webhook_url",
            "postback_url",
            "created_at",
        ]


# The one input shape of a contract's terms (the buyer's PATCH, the admin, the market file, the
# portal): contracts/terms.py.
__all__ = ["CampaignOutput", "ContractOutput", "ContractTermsInput"]
