"""The suppression API's shapes: a consumer named once, a scope, a reason; answers with hashes only."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.api.serializers import OutputSerializer, StrictSerializer
from core.pii import PiiInvalid
from leads.models import Suppression
from leads.suppressions import IDENTIFIERS, Consumer, consumer_of


class SuppressionInput(StrictSerializer):
    email = serializers.CharField(required=False, trim_whitespace=False, max_length=320, help_text="An email address.")
    phone = serializers.CharField(
        required=False, trim_whitespace=False, max_length=40, help_text="A phone number (US unless it starts with +)."
    )
    email_sha256 = serializers.CharField(
        required=False, max_length=64, help_text="The SHA-256 hex of the trimmed, lower-cased email."
    )
    phone_sha256 = serializers.CharField(
        required=False, max_length=64, help_text="The SHA-256 hex of the E.164 phone (`+14155550100`)."
    )
    scope = serializers.ChoiceField(
        choices=Suppression.Scope.choices,
        help_text="`exchange`: the consumer's opt-out, honoured by every buyer. `organization`: your own "
        "do-not-contact list, honoured for your contracts only.",
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in IDENTIFIERS if name in attrs]
        if len(given) != 1:
            message = "Send exactly one of email, phone, email_sha256, phone_sha256."
            raise serializers.ValidationError({name: [message] for name in (given or ["email"])})
        field = given[0]
        try:
            attrs["consumer"] = consumer_of(field, attrs[field])
        except PiiInvalid as exc:
            raise serializers.ValidationError({field: [str(exc)]}) from exc
        return attrs


class SuppressionOutput(OutputSerializer):
    suppression_id = serializers.CharField(source="public_id", help_text="`sup_…`")
    kind = serializers.ChoiceField(choices=[*Suppression.Kind.values, ""], help_text="`email` or `phone`.")
    scope = serializers.ChoiceField(choices=Suppression.Scope.values)
    consumer_sha256 = serializers.CharField(
        source="consumer_hash", help_text="The SHA-256 hex of the normalized email or phone."
    )
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()


__all__ = ["Consumer", "SuppressionInput", "SuppressionOutput"]
