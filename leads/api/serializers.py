"""Privacy requests in the API: what an organization sends and what it reads back."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.api.serializers import StrictSerializer
from leads.models import PrivacyRequest
from leads.privacy import privacy_export_json


class PrivacyRequestInput(StrictSerializer):
    kind = serializers.ChoiceField(choices=PrivacyRequest.Kind.values, help_text="`delete` or `access`.")
    email = serializers.CharField(required=False, allow_blank=True, help_text="The consumer's email, as you hold it.")
    phone = serializers.CharField(required=False, allow_blank=True, help_text="The consumer's phone (US by default).")


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
