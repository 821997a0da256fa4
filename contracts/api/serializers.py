from __future__ import annotations

from typing import Any

from rest_framework import serializers

from contracts.models import PERIODS, BuyerContract, Campaign


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
        fields = ["id", "slug", "name", "offer", "status", "margin_percent", "floor", "webhook_url", "created_at"]


# Terms a buyer reads but does not set: the operator's ranking, and the exchange's hold.
OPERATOR_TERMS = {
    "priority": "Set by the exchange's operator.",
    "weight": "Set by the exchange's operator.",
    "hold": "Set by the exchange (the operator or the circuit breaker); no buyer action lifts a hold.",
    "hold_reason": "Set by the exchange with its hold.",
    "breaker_retry_at": "Set by the circuit breaker.",
}


class ContractPatchInput(serializers.Serializer):  # type: ignore[type-arg]
    """What a buyer may change on its contract over the API (bid automation). Its ``status`` is
    its own switch; the exchange's ``hold`` and the operator's ``priority`` and ``weight`` are
    refused."""

    status = serializers.ChoiceField(choices=["active", "paused"], required=False)
    price = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False, allow_null=True)
    max_price = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False, allow_null=True)
    modifiers = serializers.JSONField(required=False)
    filters = serializers.JSONField(required=False)
    caps = serializers.JSONField(required=False, help_text='{"day": 100, "week": null, "month": 2000, "total": null}')
    budget = serializers.JSONField(required=False, help_text='{"day": "3000.00"}')
    schedule = serializers.JSONField(required=False)
    min_score = serializers.IntegerField(required=False, min_value=0, max_value=100)
    dedup_days = serializers.IntegerField(required=False, min_value=0)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            refused = {key: [OPERATOR_TERMS.get(key, "Unknown field.")] for key in sorted(set(data) - set(self.fields))}
            if refused:
                raise serializers.ValidationError(refused)
        return super().to_internal_value(data)
