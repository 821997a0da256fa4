"""Input and output shapes of the buyers' purchases and returns API (DESIGN.md §6)."""

from __future__ import annotations

from rest_framework import serializers

from core.api.serializers import StrictSerializer
from exchange.returns.models import NOTE_MAX_LENGTH, Return


class ReturnInput(StrictSerializer):
    reason = serializers.ChoiceField(
        choices=Return.Reason.choices,
        help_text=(
            "bad_phone, bad_email, wrong_person, duplicate, not_interested_at_capture, fraud, out_of_area, "
            "other (then say what in the note)."
        ),
    )
    note = serializers.CharField(max_length=NOTE_MAX_LENGTH, required=False, allow_blank=True, default="")


class ReturnSummary(serializers.Serializer):  # type: ignore[type-arg]
    return_id = serializers.CharField()
    status = serializers.CharField(help_text="requested, approved or denied.")
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


class ReturnOutput(ReturnSummary):
    sale_id = serializers.CharField()
    lead_id = serializers.CharField()
    note = serializers.CharField()
    auto = serializers.BooleanField(help_text="Approved at once by your return policy.")
    decision_note = serializers.CharField(allow_null=True)
    refund = serializers.CharField(help_text="What was (or will be, once approved) credited to your balance.")


class ConsentOutput(serializers.Serializer):  # type: ignore[type-arg]
    text = serializers.CharField()
    captured_at = serializers.DateTimeField()
    ip = serializers.CharField(allow_null=True)
    user_agent = serializers.CharField()
    page_url = serializers.CharField()
    trusted_form_cert_url = serializers.CharField()
    jornaya_leadid = serializers.CharField()


class PurchaseOutput(serializers.Serializer):  # type: ignore[type-arg]
    sale_id = serializers.CharField()
    lead_id = serializers.CharField()
    offer = serializers.CharField(help_text="The offer's slug.")
    contract = serializers.CharField(help_text="Your contract that bought it, `ctr_…`.")
    price = serializers.CharField()
    status = serializers.CharField(help_text="sold or returned.")
    test = serializers.BooleanField()
    sold_at = serializers.DateTimeField()
    returnable_until = serializers.DateTimeField(help_text="The end of the contract's return window.")
    quality_score = serializers.IntegerField()
    lead = serializers.DictField(
        help_text="Every field of the lead; the contact details only while you keep it (not once returned)."
    )
    pii_available = serializers.BooleanField(
        help_text="False when the contact details are not shown: the lead was returned, or they cannot be "
        "decrypted right now (the operator is told)."
    )
    erased = serializers.BooleanField(
        help_text="True once the consumer had their data deleted (a privacy request): no contact details, and the "
        "consent keeps no IP or user agent. The sale and its price stay."
    )
    consent = ConsentOutput(allow_null=True, help_text="The consumer's consent; null once the lead was returned.")

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        fields = super().get_fields()
        # Names that clash with Field attributes or Python keywords, added here rather than declared.
        fields["source"] = serializers.CharField(help_text="An opaque token of the seller's campaign.")
        fields["return"] = ReturnSummary(allow_null=True, help_text="The sale's return, if it has one.")
        return fields
