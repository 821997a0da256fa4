"""Input and output shapes of the buyers' conversions API (DESIGN.md §6.1)."""

from __future__ import annotations

from rest_framework import serializers

from core.api.serializers import OutputSerializer, StrictSerializer


class ConversionInput(StrictSerializer):
    """The shape only: what an event name, an amount and a time may be is the service's to say
    (``reporting.services.conversion_record``), for the API and the portal alike."""

    sale_id = serializers.CharField(max_length=64, help_text="The purchase that converted, `sal_…`.")
    event = serializers.CharField(
        max_length=64,
        required=False,
        default="sale",
        help_text="What happened, in your words: lower-case letters, digits and `_` (`sale`, `policy_bound`, "
        "`appointment`), at most 32; `sale` when left out. One conversion per purchase and event.",
    )
    value = serializers.CharField(
        max_length=32, help_text='What the conversion was worth to you, as a string: "120.00" (0.00 to 1 000 000.00).'
    )
    occurred_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="When it happened (ISO 8601); now when left out. Not before the sale, not in the future.",
    )


class ConversionOutput(OutputSerializer):
    conversion_id = serializers.CharField(source="public_id")
    sale_id = serializers.CharField(source="sale.public_id")
    lead_id = serializers.CharField(source="sale.lead.public_id")
    event = serializers.CharField()
    value = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True)
    test = serializers.BooleanField(help_text="A conversion of a test purchase.")
    occurred_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField(help_text="When you reported it.")
