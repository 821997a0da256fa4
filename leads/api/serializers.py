"""The leads app's API shapes: suppressions (a consumer named once, a scope, a reason; answers with
hashes only) and privacy requests (what an organization sends and what it reads back)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.api.serializers import EmailText, OutputSerializer, PhoneText, Sha256Text, StrictSerializer
from core.pii import PiiInvalid
from leads.models import PrivacyRequest, Suppression
from leads.privacy import privacy_export_json
from leads.suppressions import IDENTIFIERS, Consumer, consumer_of


class SuppressionInput(StrictSerializer):
    email = EmailText(required=False, trim_whitespace=False, max_length=320, help_text="An email address.")
    phone = PhoneText(
        required=False,
        trim_whitespace=False,
        max_length=40,
        help_text="A phone number (US unless it starts with +); it must be a real number.",
    )
    email_sha256 = Sha256Text(
        required=False, max_length=64, help_text="The SHA-256 hex of the trimmed, lower-cased email."
    )
    phone_sha256 = Sha256Text(
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


class PrivacyRequestInput(StrictSerializer):
    kind = serializers.ChoiceField(choices=PrivacyRequest.Kind.values, help_text="`delete` or `access`.")
    email = EmailText(required=False, allow_blank=True, help_text="The consumer's email, as you hold it.")
    phone = PhoneText(
        required=False, allow_blank=True, help_text="The consumer's phone (US by default); it must be a real number."
    )


class PrivacyRequestOutput(serializers.Serializer):  # type: ignore[type-arg]
    request_id = serializers.CharField(source="public_id")
    kind = serializers.CharField()
    status = serializers.CharField(help_text="received, confirmed (being processed), completed or rejected.")
    received_at = serializers.DateTimeField()
    confirm_due_at = serializers.DateTimeField(help_text="10 business days after receipt (weekends skipped).")
    answer_due_at = serializers.DateTimeField(help_text="45 days after receipt.")
    confirmed_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    note = serializers.CharField(allow_blank=True, help_text="Why it was rejected.")
    result = serializers.SerializerMethodField(
        help_text="Once completed: a deletion's counts of what was erased (`erased`), or an access request's "
        "JSON export (`export`). Null before."
    )

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        fields = super().get_fields()
        # A name that clashes with a Field attribute, added here rather than declared.
        fields["source"] = serializers.CharField(help_text="api, admin or public (the consumer's own page).")
        return fields

    def get_result(self, request: PrivacyRequest) -> dict[str, Any] | None:
        if request.status != PrivacyRequest.Status.COMPLETED:
            return None
        if request.kind == PrivacyRequest.Kind.DELETE:
            return {"erased": request.result}
        return {"export": privacy_export_json(request)}
