"""Input and output shapes of the ping, post and lead API (DESIGN.md §6)."""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

from core.api.serializers import IpAddressField, ObjectField, OutputSerializer, StrictBooleanField, StrictSerializer

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
    named_buyers = serializers.ListField(
        child=serializers.CharField(max_length=200),
        max_length=50,
        required=False,
        help_text="One-to-one consent: the buying organizations the consent text names (slug or public name). "
        "On an offer that requires one-to-one consent, only these may buy the lead.",
    )


class ConsentInput(StrictSerializer):
    text = serializers.CharField(max_length=10000, help_text="The consent language the consumer agreed to.")
    captured_at = serializers.DateTimeField(help_text="When the consumer agreed (ISO 8601).")
    ip = IpAddressField(required=False, allow_null=True)
    user_agent = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    page_url = serializers.URLField(max_length=2000, required=False, allow_blank=True)
    trusted_form_cert_url = serializers.URLField(max_length=2000, required=False, allow_blank=True)
    jornaya_leadid = serializers.CharField(max_length=100, required=False, allow_blank=True)
    named_buyers = serializers.ListField(
        child=serializers.CharField(max_length=200),
        max_length=50,
        required=False,
        help_text="One-to-one consent: the buying organizations the consent text names (slug or public name). "
        "On an offer that requires one-to-one consent, only these may buy the lead.",
    )


class PingInput(StrictSerializer):
    campaign = serializers.CharField(max_length=64, help_text="Your campaign id, `cmp_…`.")
    test = StrictBooleanField(
        required=False, default=False, help_text="Run the whole path; nothing is charged or capped."
    )
    lead = ObjectField(help_text="The offer's ping fields only: no PII.")
    consumer = ConsumerInput(required=False, help_text="SHA-256 hashes of the normalized email and E.164 phone.")
    tracking = TrackingInput(required=False)
    consent = PingConsentInput(required=False)


_HASH = re.compile(HASH)
_PING_KEYS = frozenset(PingInput._declared_fields)
# The ping's nested objects: each an object of optional, nullable text fields.
_PING_NESTED = (
    ("consumer", frozenset(ConsumerInput._declared_fields), 64, _HASH),
    ("tracking", frozenset(TrackingInput._declared_fields), 255, None),
    # named_buyers is a list: a ping that carries it goes through PingConsentInput.
    ("consent", frozenset(PingConsentInput._declared_fields) - {"named_buyers"}, 100, None),
)


def _text(value: object, max_length: int, *, blank: bool) -> str | None:
    """A DRF ``CharField``'s value (whitespace trimmed) when ``value`` is plainly valid, else None."""
    if type(value) is not str:
        return None
    value = value.strip()
    if (not value and not blank) or len(value) > max_length or "\x00" in value:
        return None
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate: DRF refuses it
            return None
    return value


def _texts(data: object, keys: frozenset[str], max_length: int, pattern: re.Pattern[str] | None) -> Any:
    """An object of optional, nullable text fields as DRF validates it, or None when not plainly valid."""
    if type(data) is not dict or not data.keys() <= keys:
        return None
    out: dict[str, str | None] = {}
    for key, value in data.items():
        text = None if value is None else _text(value, max_length, blank=pattern is None)
        if value is not None and (text is None or (pattern is not None and not pattern.search(text))):
            return None
        out[key] = text
    return out


def ping_input_quick(data: object) -> dict[str, Any] | None:
    """What ``PingInput(data=data).validated_data`` is for a plainly valid ping (nearly every ping),
    without DRF building and running some twenty fields (docs/performance.md);
    None for anything else, which PingInput then checks and explains. The two are compared on
    generated input in tests/exchange/test_serializers.py."""
    if type(data) is not dict or not data.keys() <= _PING_KEYS:
        return None
    campaign = _text(data.get("campaign"), 64, blank=False)
    test = data.get("test", False)
    lead = data.get("lead")
    if campaign is None or type(test) is not bool or type(lead) is not dict:
        return None
    out: dict[str, Any] = {"campaign": campaign, "test": test, "lead": dict(lead)}
    for name, keys, max_length, pattern in _PING_NESTED:
        if name in data:
            nested = _texts(data[name], keys, max_length, pattern)
            if nested is None or nested.get("trusted_form_cert_url"):  # URLs: DRF's URL check
                return None
            out[name] = nested
    return out


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


def _money(help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=14, decimal_places=2, help_text=help_text)


class BidOutput(OutputSerializer):
    bid_id = serializers.CharField()
    payout = _money("What you earn if this bid buys the lead.")


class PingOutput(OutputSerializer):
    """A ping's answer (``exchange.services.PingAnswer``)."""

    ping_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["accepted", "rejected"])
    reason = serializers.CharField(
        allow_null=True,
        help_text="When rejected: no_buyers, duplicate, suppressed, below_min_score, campaign_paused, offer_paused.",
    )
    payout = _money("The total you earn if the post sells (all winners).")
    bids = BidOutput(many=True)
    expires_at = serializers.DateTimeField(help_text="Post before this time.")
    test = serializers.BooleanField()


class ReauctionOutput(serializers.Serializer):  # type: ignore[type-arg]
    cycle = serializers.IntegerField(help_text="Background re-auctions run so far.")
    cycles = serializers.IntegerField(help_text="The most the offer runs before the lead is unsold.")
    next_at = serializers.DateTimeField(
        allow_null=True, help_text="When the next re-auction runs (pending leads only; about, not before)."
    )


class LeadOutput(OutputSerializer):
    """A post's or a full lead's answer (``exchange.services.LeadAnswer``)."""

    lead_id = serializers.CharField()
    ping_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(
        choices=["sold", "unsold", "pending", "rejected"],
        help_text="pending: no buyer yet, re-auctions to come (see reauction); the end comes as lead.sold or "
        "lead.unsold.",
    )
    reason = serializers.CharField(allow_null=True)
    payout = _money("What you earn for this lead (the sum over its sales).")
    reauction = ReauctionOutput()
    redirect_url = serializers.CharField(allow_null=True)
    test = serializers.BooleanField()


class SaleSummary(serializers.Serializer):  # type: ignore[type-arg]
    sale_id = serializers.CharField()
    status = serializers.CharField()
    payout = serializers.CharField()
    sold_at = serializers.DateTimeField(allow_null=True)


class AuctionSummary(serializers.Serializer):  # type: ignore[type-arg]
    cycle = serializers.IntegerField(help_text="0: the lead's own ping or full lead; 1, 2, …: re-auctions.")
    ping_id = serializers.CharField()
    at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=["accepted", "rejected"])
    reason = serializers.CharField(allow_null=True)
    direct = serializers.CharField(
        allow_null=True, help_text="The campaign's direct route: won, why it could not take the lead, or null."
    )
    bids = serializers.IntegerField()


class LeadDetailOutput(LeadOutput):
    campaign = serializers.CharField()
    offer = serializers.CharField()
    created_at = serializers.DateTimeField()
    sales = SaleSummary(many=True)
    auctions = AuctionSummary(many=True)
