"""Input and output shapes of the ping, post and lead API (DESIGN.md §6)."""

from __future__ import annotations

import copy
from typing import Any

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A serializer that refuses keys it does not know, instead of silently dropping them."""

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        # DRF deep-copies every declared field for every instance: a fresh __init__ per field,
        # nested serializers included, was a sixth of a ping's CPU. Declared fields are never
        # changed after they are built, so a shallow copy (which DRF then binds) is enough.
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false, nothing that merely looks like one."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class ObjectField(serializers.DictField):
    """A JSON object (its values are checked by the offer's schema, not here)."""

    default_error_messages = {"not_a_dict": "Expected a JSON object."}


HASH = r"^[0-9a-f]{64}$"


class ConsumerInput(StrictSerializer):
    email_sha256 = serializers.RegexField(
        HASH,
        required=False,
        allow_null=True,
        error_messages={"invalid": "Must be the SHA-256 hex (64 lower-case characters) of the normalized email."},
    )
    phone_sha256 = serializers.RegexField(
        HASH,
        required=False,
        allow_null=True,
        error_messages={"invalid": "Must be the SHA-256 hex (64 lower-case characters) of the E.164 phone."},
    )


class TrackingInput(StrictSerializer):
    sub_id1 = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    sub_id2 = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    sub_id3 = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    sub_id4 = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    sub_id5 = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    click_id = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)


class PingConsentInput(StrictSerializer):
    trusted_form_cert_url = serializers.URLField(max_length=2000, required=False, allow_null=True, allow_blank=True)
    jornaya_leadid = serializers.CharField(max_length=100, required=False, allow_null=True, allow_blank=True)


class ConsentInput(StrictSerializer):
    text = serializers.CharField(max_length=10000, help_text="The consent language the consumer agreed to.")
    captured_at = serializers.DateTimeField(help_text="When the consumer agreed (ISO 8601).")
    ip = serializers.IPAddressField(required=False, allow_null=True)
    user_agent = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    page_url = serializers.URLField(max_length=2000, required=False, allow_blank=True)
    trusted_form_cert_url = serializers.URLField(max_length=2000, required=False, allow_blank=True)
    jornaya_leadid = serializers.CharField(max_length=100, required=False, allow_blank=True)


class PingInput(StrictSerializer):
    campaign = serializers.CharField(max_length=64, help_text="Your campaign id, `cmp_…`.")
    test = StrictBooleanField(
        required=False, default=False, help_text="Run the whole path; nothing is charged or capped."
    )
    lead = ObjectField(help_text="The offer's ping fields only: no PII.")
    consumer = ConsumerInput(required=False, help_text="SHA-256 hashes of the normalized email and E.164 phone.")
    tracking = TrackingInput(required=False)
    consent = PingConsentInput(required=False)


class PostInput(StrictSerializer):
    ping_id = serializers.CharField(max_length=64, help_text="The `png_…` id the ping answered.")
    lead = ObjectField(help_text="The full lead: the ping fields (equal to the ping's) and the PII.")
    consent = ConsentInput()


class LeadInput(StrictSerializer):
    campaign = serializers.CharField(max_length=64)
    test = StrictBooleanField(required=False, default=False)
    lead = ObjectField(help_text="The full lead, PII included.")
    consent = ConsentInput()
    tracking = TrackingInput(required=False)


class BidAnswer(serializers.Serializer):  # type: ignore[type-arg]
    bid_id = serializers.CharField()
    payout = serializers.CharField(help_text="What you earn if this bid buys the lead.")


class PingAnswer(serializers.Serializer):  # type: ignore[type-arg]
    ping_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["accepted", "rejected"])
    reason = serializers.CharField(
        allow_null=True,
        help_text="When rejected: no_buyers, duplicate, suppressed, below_min_score, campaign_paused, offer_paused.",
    )
    payout = serializers.CharField(help_text="The total you earn if the post sells (all winners).")
    bids = BidAnswer(many=True)
    expires_at = serializers.DateTimeField(help_text="Post before this time.")
    test = serializers.BooleanField()


class LeadAnswer(serializers.Serializer):  # type: ignore[type-arg]
    lead_id = serializers.CharField()
    ping_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["sold", "unsold", "pending", "rejected"])
    reason = serializers.CharField(allow_null=True)
    payout = serializers.CharField()
    redirect_url = serializers.CharField(allow_null=True)
    test = serializers.BooleanField()


class SaleSummary(serializers.Serializer):  # type: ignore[type-arg]
    sale_id = serializers.CharField()
    status = serializers.CharField()
    payout = serializers.CharField()
    sold_at = serializers.DateTimeField(allow_null=True)


class LeadDetail(LeadAnswer):
    campaign = serializers.CharField()
    offer = serializers.CharField()
    created_at = serializers.DateTimeField()
    sales = SaleSummary(many=True)
