"""The reports endpoint's query and answer; the conversions API's input and output (DESIGN.md §6.1)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.models import Organization
from core.api.serializers import OutputSerializer, StrictSerializer
from reporting.reports import BUYER, GROUPS, MAX_DAYS, SELLER, side_default

ISO_DATE = ["%Y-%m-%d"]


class ReportQuery(StrictSerializer):
    """``GET /api/v1/reports``'s query string. Needs ``context["organization"]``."""

    # "from" is a Python keyword: the field is declared under its own name below.
    to = serializers.DateField(input_formats=ISO_DATE, help_text="The last day, inclusive (YYYY-MM-DD).")
    group_by = serializers.CharField(
        required=False,
        default="day",
        allow_blank=True,
        help_text="Comma-separated dimensions, in order. Sellers: day, hour, offer, campaign, sub_id1…sub_id5. "
        "Buyers: day, hour, offer, contract, source. Empty: totals only.",
    )
    side = serializers.ChoiceField(
        choices=[SELLER, BUYER],
        required=False,
        help_text="For an organization that both sells and buys: which side's figures. Default: seller when the "
        "organization sells, else buyer.",
    )
    format = serializers.ChoiceField(choices=["json", "csv"], required=False, default="json")
    test = serializers.ChoiceField(
        choices=["true", "false"], required=False, default="false", help_text="true: the test traffic's figures."
    )

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        fields = super().get_fields()
        fields["from"] = serializers.DateField(input_formats=ISO_DATE, help_text="The first day (YYYY-MM-DD).")
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        organization: Organization = self.context["organization"]
        side = attrs.get("side") or side_default(organization)
        if side not in organization.roles:
            raise serializers.ValidationError({"side": [f"Your organization is not a {side}."]})
        start, end = attrs["from"], attrs["to"]
        errors: dict[str, list[str]] = {}
        if end < start:
            errors["to"] = ["Must be on or after 'from'."]
        elif (end - start).days + 1 > MAX_DAYS:
            errors["to"] = [f"A report covers at most {MAX_DAYS} days."]
        names = [name.strip() for name in attrs["group_by"].split(",") if name.strip()]
        unknown = [name for name in names if name not in GROUPS[side]]
        if unknown:
            errors["group_by"] = [f"Not a {side}'s dimension: {', '.join(unknown)}. Use {', '.join(GROUPS[side])}."]
        elif len(set(names)) != len(names):
            errors["group_by"] = ["A dimension is named twice."]
        if errors:
            raise serializers.ValidationError(errors)
        return {**attrs, "side": side, "group_by": names, "test": attrs["test"] == "true"}


class ReportOutput(OutputSerializer):
    """The report: the range, the organization's time zone, the dimensions, a row per combination
    of them (the dimensions asked for, then the side's figures) and the totals."""

    to = serializers.DateField(help_text="The last day.")
    timezone = serializers.CharField(help_text="The organization's time zone: days and hours are its.")
    side = serializers.ChoiceField(choices=[SELLER, BUYER])
    group_by = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(
        child=serializers.DictField(),
        help_text="Sellers: pings, accepted, posted, sold, unsold, returned, conversions, amount (payouts before "
        "returns), returned_amount, conversion_value. Buyers: evaluated, bids, won, sold, returned, conversions, "
        "amount (prices before returns), returned_amount, conversion_value. Money as strings with two decimals.",
    )
    totals = serializers.DictField(help_text="The figures summed over the whole range.")

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        return {"from": serializers.DateField(help_text="The first day."), **super().get_fields()}


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
