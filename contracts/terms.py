"""The terms of a buyer contract and of a seller campaign as their writers send them: one input
shape, read by one serializer each, for the buyer API, the operator's admin, the market file and
the buyers' portal editor.

Each serializer checks the shape and maps it onto the model's columns (a contract's ``caps`` and
``budget`` groups onto ``cap_day``…, a campaign's ``direct_route`` onto ``direct_contract``…):
that mapping is written here and nowhere else, and so is its inverse for errors, so a refusal
names what the writer sent (``caps.day``, ``direct_route.price``). What needs the offer (filters,
modifiers and their bounds, schedule, delivery, URLs) is the model's ``clean()``, which every save
runs last (:mod:`contracts.services`).

A *whole* declaration (the market file, a new contract) gives every term's "none" to a group it
leaves out (no caps, no filters, no direct route); a *partial* one (an API ``PATCH``, the admin's
changed fields) changes only what it names, and in a group only the periods it names.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.crypto import salted_hmac
from rest_framework import serializers

from accounts.models import Organization
from accounts.tenancy import market_scope
from contracts.delivery_format import DeliveryTermsError, delivery_validate
from contracts.models import PERIODS, BuyerContract, Campaign
from contracts.postbacks import MAX_LENGTH as POSTBACK_URL_MAX_LENGTH
from contracts.schedules import ScheduleError, budget_validate, caps_validate
from core.api.serializers import keys_refused

# Terms a buyer reads but does not set: the operator's ranking, and the exchange's hold.
OPERATOR_TERMS = {
    "priority": "Set by the exchange's operator.",
    "weight": "Set by the exchange's operator.",
    "hold": "Set by the exchange (the operator or the circuit breaker); no buyer action lifts a hold.",
    "hold_reason": "Set by the exchange with its hold.",
    "breaker_retry_at": "Set by the circuit breaker.",
}
UNKNOWN = "Unknown field."
BREAKER_ONLY = "Only the circuit breaker holds a contract as the breaker."
# The contract's period groups: (the input's group, its columns' prefix, its check).
PERIOD_GROUPS = (("caps", "cap", caps_validate), ("budget", "budget", budget_validate))
INT_MAX = 2**31 - 1  # the columns' limit
DIRECT_ROUTE_COLUMNS = {"contract": "direct_contract", "price": "direct_price", "share_percent": "direct_share_percent"}


def _money(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=14, decimal_places=2, **kwargs)


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """A serializer's errors as ``{"path": [messages]}`` (a nested group's as ``group.key``)."""
    if isinstance(errors, Mapping):
        flat: dict[str, list[str]] = {}
        for key, value in errors.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    messages = errors if isinstance(errors, list) else [errors]
    return {prefix or "non_field_errors": [str(m) for m in messages]}


class _TermsInput(serializers.Serializer):  # type: ignore[type-arg]
    """Refuses a key it does not take, naming it (a typo must not pass as "nothing to change")."""

    refusals: dict[str, str] = {}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            refused = {
                key: [self.refusals.get(key, messages[0])]
                for key, messages in keys_refused(dict(data), self.fields).items()
            }
            if refused:
                raise serializers.ValidationError(refused)
        return super().to_internal_value(data)

    def columns(self) -> dict[str, Any]:
        """The validated terms, as the model's column values."""
        if not self.is_valid():
            raise ValidationError(_flatten(self.errors))
        return dict(self.validated_data)


class ContractTermsInput(_TermsInput):
    """A contract's terms. A buyer sets its own (``operator=False``, the default, as the API's
    schema shows them); the operator's ranking and the exchange's hold (``priority``, ``weight``,
    ``hold``, ``hold_reason``) are taken only with ``operator=True`` and otherwise refused by name.
    A hold given here is a person's: ``operator`` or ``null`` (lift any hold)."""

    name = serializers.CharField(max_length=200, required=False)
    status = serializers.ChoiceField(choices=BuyerContract.Status.choices, required=False)
    price = _money(min_value=Decimal(0), allow_null=True, required=False)
    max_price = _money(min_value=Decimal(0), allow_null=True, required=False)
    modifiers = serializers.JSONField(allow_null=True, default=None)
    rtb_url = serializers.URLField(max_length=500, allow_blank=True, allow_null=True, required=False)
    rtb_timeout_ms = serializers.IntegerField(min_value=10, max_value=INT_MAX, required=False)
    filters = serializers.JSONField(allow_null=True, default=None)
    caps = serializers.JSONField(
        allow_null=True, default=None, help_text='{"day": 100, "week": null, "month": 2000, "total": null}'
    )
    budget = serializers.JSONField(allow_null=True, default=None, help_text='{"day": "3000.00"}')
    schedule = serializers.JSONField(allow_null=True, default=None)
    dedup_days = serializers.IntegerField(min_value=0, max_value=INT_MAX, required=False)
    min_score = serializers.IntegerField(min_value=0, max_value=100, required=False)
    return_window_hours = serializers.IntegerField(min_value=0, max_value=INT_MAX, required=False)
    delivery = serializers.JSONField(allow_null=True, default=None)
    priority = serializers.IntegerField(min_value=-INT_MAX - 1, max_value=INT_MAX, required=False)
    weight = serializers.IntegerField(min_value=0, max_value=INT_MAX, required=False)
    hold = serializers.CharField(allow_null=True, required=False)
    hold_reason = serializers.CharField(max_length=200, allow_blank=True, allow_null=True, required=False)

    refusals = OPERATOR_TERMS

    def __init__(self, *args: Any, operator: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not operator:
            for name in OPERATOR_TERMS:
                self.fields.pop(name, None)

    def validate_delivery(self, value: Any) -> Any:
        # The offer's field names are checked by the model (a partial change may not know the offer).
        try:
            delivery_validate(value, path="delivery")
        except DeliveryTermsError as exc:
            if exc.path == "delivery":
                raise serializers.ValidationError(exc.message) from exc
            raise serializers.ValidationError({exc.path.removeprefix("delivery."): [exc.message]}) from exc
        return value

    def validate_hold(self, value: str | None) -> str | None:
        if value not in (None, BuyerContract.Hold.OPERATOR):
            raise serializers.ValidationError(BREAKER_ONLY)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        terms = dict(attrs)
        for name, empty in (("modifiers", list), ("filters", dict), ("schedule", dict), ("delivery", dict)):
            if name in terms and terms[name] is None:
                terms[name] = empty()
        if terms.get("rtb_url", "") is None:
            terms["rtb_url"] = ""  # no RTB
        if "hold_reason" in terms:
            if "hold" not in terms and not self.partial:
                raise serializers.ValidationError({"hold_reason": ["Goes with hold."]})
            terms["hold_reason"] = terms["hold_reason"] or ""
        elif "hold" in terms and not self.partial:
            terms["hold_reason"] = ""
        try:
            for group, column, check in PERIOD_GROUPS:
                if group not in terms:
                    continue
                limits = terms.pop(group)
                check(limits, path=group)
                # ``null`` is no limit in any period; otherwise a partial change names its periods.
                named = PERIODS if limits is None or not self.partial else [p for p in PERIODS if p in limits]
                for period in named:
                    value = None if limits is None else limits.get(period)
                    terms[f"{column}_{period}"] = Decimal(value) if column == "budget" and value is not None else value
        except ScheduleError as exc:
            raise serializers.ValidationError({exc.path: [exc.message]}) from exc
        return terms


class ContractCreateInput(ContractTermsInput):
    """A new contract as its buyer declares it (``POST /api/v1/contracts``): the offer it buys on,
    by slug, a name, and the terms of :class:`ContractTermsInput` (a group left out is none)."""

    offer = serializers.SlugRelatedField(
        slug_field="slug",
        # The model's own relation: the offers a contract can be on (any the exchange runs).
        queryset=BuyerContract._meta.get_field("offer").related_model._default_manager.all(),
        error_messages={"does_not_exist": "No such offer: '{value}'.", "invalid": "Give the offer's slug."},
        help_text="The offer's slug, e.g. auto-insurance.",
    )
    name = serializers.CharField(max_length=200)


def contract_column_terms(values: Mapping[str, Any]) -> dict[str, Any]:
    """Column values (a form's ``cap_day``, ``budget_week``…) in the input's shape: the inverse of
    :class:`ContractTermsInput`'s mapping, for a writer that edits the columns (the admin)."""
    terms: dict[str, Any] = {}
    for name, value in values.items():
        column, _, period = name.partition("_")
        group = {"cap": "caps", "budget": "budget"}.get(column)
        if group is not None and period in PERIODS:
            terms.setdefault(group, {})[period] = f"{value:.2f}" if isinstance(value, Decimal) else value
        else:
            terms[name] = f"{value:.2f}" if isinstance(value, Decimal) else value
    return terms


def contract_term_name(column: str) -> str:
    """The input's name for a column a model error names (``cap_day`` → ``caps.day``)."""
    prefix, _, period = column.partition("_")
    for group, group_column, _check in PERIOD_GROUPS:
        if prefix == group_column and period in PERIODS:
            return f"{group}.{period}"
    return column


class DirectRouteInput(_TermsInput):
    """A share of a campaign's leads sent to one contract at a fixed price; given whole."""

    contract = serializers.SlugField(max_length=64)
    price = _money(min_value=Decimal(0))
    share_percent = serializers.IntegerField(min_value=0, max_value=100, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Not the field's default: a route inside a partial change is still given whole.
        return {"share_percent": 100, **attrs}

    def validate_contract(self, slug: str) -> BuyerContract:
        # A direct route crosses organizations: the seller's campaign names a buyer's contract.
        with market_scope():
            contract = BuyerContract.objects.select_related("offer").filter(slug=slug).first()
        if contract is None:
            raise serializers.ValidationError(f"unknown contract '{slug}'")
        return contract


def buyer_token(*, seller_id: int, buyer_id: int) -> str:
    """The opaque, stable name under which the seller ``seller_id`` sees the buyer ``buyer_id``.

    Buyers stay anonymous to sellers, yet a seller must be able to block one: it sees each buyer
    as a token derived from both ids with the server's secret, so the token says nothing of the
    buyer, cannot be guessed, and differs from seller to seller (two sellers cannot compare notes)."""
    return "byr_" + salted_hmac("gavel.buyer_token", f"{seller_id}:{buyer_id}").hexdigest()[:16]


class BuyerTokensField(serializers.ListField):  # type: ignore[type-arg]
    """Buyers named by their :func:`buyer_token` for the seller in the serializer's context
    (``seller``); the value is the list of those buyer organizations."""

    child = serializers.CharField(max_length=40)
    default_error_messages = {"unknown": "Unknown buyer: {token}.", "no_seller": "Buyers are named for a seller."}

    def to_internal_value(self, data: Any) -> list[Organization]:
        tokens = super().to_internal_value(data)
        seller = self.context.get("seller")
        if seller is None:
            self.fail("no_seller")
        buyers = {
            buyer_token(seller_id=seller.pk, buyer_id=b.pk): b
            for b in Organization.objects.filter(is_buyer=True).order_by("pk")
        }
        for token in tokens:
            if token not in buyers:
                self.fail("unknown", token=token)
        return [buyers[token] for token in dict.fromkeys(tokens)]


class CampaignTermsInput(_TermsInput):
    """A campaign's terms, as the operator sets them (the market file, the admin) and as the
    seller sets its own (the campaign page: ``floor`` and ``blocked_buyers``, by token, with the
    seller in the context)."""

    name = serializers.CharField(max_length=200, required=False)
    status = serializers.ChoiceField(choices=Campaign.Status.values, required=False)
    margin_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal(0), max_value=Decimal(100), allow_null=True, required=False
    )
    floor = _money(min_value=Decimal(0), allow_null=True, required=False)
    payout_fixed = _money(
        min_value=Decimal("0.01"),
        allow_null=True,
        required=False,
        help_text="A fixed payout per sale instead of the margin share; null: the share. Bids must pay it and "
        "leave the margin's share of the price to the exchange (below_floor otherwise).",
    )
    webhook_url = serializers.URLField(max_length=500, allow_blank=True, allow_null=True, required=False)
    postback_url = serializers.CharField(
        max_length=POSTBACK_URL_MAX_LENGTH,
        allow_blank=True,
        allow_null=True,
        required=False,
        trim_whitespace=True,
        help_text="A URL template called (GET) when a lead sells or converts; checked by the model (placeholders, "
        "scheme, the outbound guard). Blank or null: no postback.",
    )
    direct_route = DirectRouteInput(allow_null=True, default=None)
    blocked_buyers = BuyerTokensField(required=False, help_text="The buyers this campaign never sells to, by token.")
    consent_text = serializers.CharField(
        max_length=10000, allow_blank=True, required=False, help_text="The consent language of the hosted form."
    )
    thank_you_url = serializers.URLField(
        max_length=500, allow_blank=True, allow_null=True, required=False, help_text="The hosted form's thank-you page."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        terms = dict(attrs)
        if terms.get("floor", 0) is None:
            terms["floor"] = Decimal("0.00")
        for name in ("webhook_url", "postback_url", "thank_you_url"):
            if terms.get(name, "") is None:
                terms[name] = ""
        if "direct_route" in terms:
            route = terms.pop("direct_route") or {"contract": None, "price": None, "share_percent": 0}
            terms.update({DIRECT_ROUTE_COLUMNS[key]: value for key, value in route.items()})
        return terms


def campaign_term_name(column: str) -> str:
    """The input's name for a column a model error names (``direct_price`` → ``direct_route.price``)."""
    for key, route_column in DIRECT_ROUTE_COLUMNS.items():
        if column == route_column:
            return f"direct_route.{key}"
    return column


def campaign_column_terms(values: Mapping[str, Any]) -> dict[str, Any]:
    """Column values (the admin's) in the input's shape: the inverse of :class:`CampaignTermsInput`'s
    mapping. A changed route is sent whole (its contract, price and share go together)."""
    terms: dict[str, Any] = {}
    route = {key: values[column] for key, column in DIRECT_ROUTE_COLUMNS.items() if column in values}
    for name, value in values.items():
        if name not in DIRECT_ROUTE_COLUMNS.values():
            terms[name] = f"{value:.2f}" if isinstance(value, Decimal) else value
    if route:
        contract = route.get("contract")
        terms["direct_route"] = (
            None
            if contract is None
            else {
                "contract": contract.slug,
                "price": None if route.get("price") is None else f"{route['price']:.2f}",
                "share_percent": route.get("share_percent", 100),
            }
        )
    return terms
