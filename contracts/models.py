"""The terms of trade: seller campaigns, buyer contracts and the counters behind their caps."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from accounts.models import Organization
from contracts.delivery_format import DeliveryTermsError, delivery_validate
from contracts.postbacks import MAX_LENGTH as POSTBACK_URL_MAX_LENGTH
from contracts.postbacks import postback_url_validate
from contracts.rules import RuleError, modifiers_bound, rule_validate
from contracts.schedules import ScheduleError, schedule_validate
from core.ids import PublicIdField, public_id_new
from core.json_document import StoredJSONDecoder
from core.money import MoneyField, price_for_payout
from core.outbound import UnsafeUrl, url_check
from core.schema import US_STATE_CODES, FieldSpec

PERIODS = ("day", "week", "month", "total")
# The state codes a filter on a state field offers (the portal's contract editor).
STATE_CODES = tuple(sorted(US_STATE_CODES))


def campaign_source_token() -> str:
    return public_id_new("src_", length=16)


class Campaign(models.Model):
    """A seller's source of leads for one offer: its margin, floor, blocks and direct route."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    public_id = PublicIdField(prefix="cmp_", verbose_name="id")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="campaigns")
    offer = models.ForeignKey("exchange.Offer", on_delete=models.PROTECT, related_name="campaigns")
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    margin_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
        help_text="Overrides the offer's margin for this campaign.",
    )
    floor = MoneyField(default=Decimal("0.00"), help_text="Minimum payout this seller accepts.")
    payout_fixed = MoneyField(
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="A fixed payout per sale instead of the margin share; bids must pay it and leave the margin's "
        "share of the price to the exchange (below_floor otherwise). Empty: the margin share.",
    )
    blocked_buyers = models.ManyToManyField(Organization, blank=True, related_name="blocked_by_campaigns")
    direct_contract = models.ForeignKey(
        "BuyerContract",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="direct_campaigns",
        help_text="Direct route: a share of this campaign's leads goes to this contract at a fixed price.",
    )
    direct_price = MoneyField(null=True, blank=True)
    direct_share_percent = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    webhook_url = models.URLField(max_length=500, blank=True)
    postback_url = models.CharField(
        max_length=POSTBACK_URL_MAX_LENGTH,
        blank=True,
        help_text="Called (GET) when a lead of this campaign sells or converts: a URL with placeholders such as "
        "{lead_id}, {payout}, {click_id} (contracts/postbacks.py).",
    )
    source_token = models.CharField(
        max_length=40,
        unique=True,
        default=campaign_source_token,
        editable=False,
        help_text="The opaque token buyers see as the lead's source.",
    )
    consent_text = models.TextField(
        blank=True, help_text="The consent language of the campaign's hosted form (/f/<campaign id>)."
    )
    thank_you_url = models.URLField(
        max_length=500, blank=True, help_text="Where the hosted form sends the consumer when no buyer redirects."
    )
    # The source's quality (leads/scoring.py), refreshed by the exchange's periodic task
    # (exchange.quality.campaign_rates_refresh): not terms, so not in CampaignTermsInput.
    return_rate = models.FloatField(default=0, editable=False)
    rate_sales = models.PositiveIntegerField(default=0, editable=False)
    reject_rate = models.FloatField(default=0, editable=False)
    rate_deliveries = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.organization_id and not self.organization.is_seller:
            errors["organization"] = "Only a seller organization can own a campaign."
        if self.direct_contract is not None:
            if self.direct_price is None:
                errors["direct_price"] = "A direct route needs a price."
            if self.direct_contract.offer_id != self.offer_id:
                errors["direct_contract"] = "The direct route's contract must be on the campaign's offer."
            elif self.direct_price is not None and self.direct_price > self.offer.max_bid:
                errors["direct_price"] = f"Above the offer's max bid of {self.offer.max_bid:.2f}."
        errors.update(self._payout_fixed_errors())
        if self.postback_url:
            try:
                postback_url_validate(self.postback_url)
            except ValidationError as exc:
                errors["postback_url"] = exc.messages[0]
        if errors:
            raise ValidationError(errors)

    @property
    def effective_margin(self) -> Decimal:
        return self.margin_percent if self.margin_percent is not None else self.offer.margin_percent

    def _payout_fixed_errors(self) -> dict[str, str]:
        """A fixed payout some bid can pay: its floor (the payout and the margin's share of the
        price) within the offer's max bid, and within the direct route's price."""
        if self.payout_fixed is None or not self.offer_id:
            return {}
        least = price_for_payout(self.payout_fixed, self.effective_margin)
        if least is None:
            return {"payout_fixed": "With a 100 % margin no price pays a fixed payout."}
        if least > self.offer.max_bid:
            return {
                "payout_fixed": f"Needs bids of at least {least:.2f} (the payout and a {self.effective_margin}% "
                f"margin), above the offer's max bid of {self.offer.max_bid:.2f}."
            }
        if self.direct_contract is not None and self.direct_price is not None and self.direct_price < least:
            return {
                "direct_price": f"Below {least:.2f}, the least price that pays the fixed payout of "
                f"{self.payout_fixed:.2f} and a {self.effective_margin}% margin."
            }
        return {}

    @property
    def payout_floor(self) -> Decimal:
        """The payout a bid must pay: the fixed payout when there is one (it is what the seller
        gets), else the seller's floor."""
        return self.payout_fixed if self.payout_fixed is not None else self.floor


def _terms_bound_errors(contract: BuyerContract, fields: dict[str, FieldSpec]) -> dict[str, str]:
    """The contract's price, max price and modifiers held to its offer's ``max_bid`` (DESIGN.md
    §6.1): what it can bid is bounded when it is saved, whichever way it is saved."""
    errors: dict[str, str] = {}
    max_bid = contract.offer.max_bid
    for name in ("price", "max_price"):
        amount = getattr(contract, name)
        if amount is not None and amount > max_bid:
            errors[name] = f"Above the offer's max bid of {max_bid:.2f}."
    # A price already refused is not blamed on the modifiers too.
    price = None if "price" in errors else contract.price
    try:
        modifiers_bound(contract.modifiers or [], fields=fields, price=price, max_bid=max_bid, path="modifiers")
    except RuleError as exc:
        errors["modifiers"] = str(exc)
    return errors


class BuyerContract(models.Model):
    """A buyer's standing order on an offer: what it buys, at what price, how many, when."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    class Hold(models.TextChoices):
        OPERATOR = "operator", "Operator"
        BREAKER = "breaker", "Circuit breaker"

    public_id = PublicIdField(prefix="ctr_", verbose_name="id")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="contracts")
    offer = models.ForeignKey("exchange.Offer", on_delete=models.PROTECT, related_name="contracts")
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16,
        choices=Status.choices,
        default=Status.ACTIVE,
        help_text="The buyer's own switch: a paused contract does not bid.",
    )
    # The exchange's switch, apart from the buyer's: the operator (by hand, or the delivery-reject
    # watch) or the RTB circuit breaker holds a contract, and no buyer action lifts a hold; no
    # breaker or operator action changes the buyer's status. Neither side undoes the other's pause.
    hold = models.CharField(
        max_length=16,
        choices=Hold.choices,
        null=True,
        blank=True,
        help_text="Held by the exchange: a held contract does not bid, whatever its status.",
    )
    hold_reason = models.CharField(max_length=200, blank=True)
    # Set only by the RTB circuit breaker (exchange/auction/breaker.py) while it holds the contract.
    breaker_retry_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Held by the RTB circuit breaker: from this time one ping at a time asks the buyer again.",
    )
    breaker_trips = models.PositiveSmallIntegerField(
        default=0, editable=False, help_text="Times in a row the circuit breaker held this contract."
    )

    price = MoneyField(null=True, blank=True, help_text="Fixed bid; leave empty for RTB.")
    modifiers = models.JSONField(default=list, blank=True, decoder=StoredJSONDecoder)
    rtb_url = models.URLField(max_length=500, blank=True)
    rtb_timeout_ms = models.PositiveIntegerField(default=300, validators=[MinValueValidator(10)])
    max_price = MoneyField(null=True, blank=True)

    filters = models.JSONField(default=dict, blank=True, decoder=StoredJSONDecoder)
    cap_day = models.PositiveIntegerField(null=True, blank=True)
    cap_week = models.PositiveIntegerField(null=True, blank=True)
    cap_month = models.PositiveIntegerField(null=True, blank=True)
    cap_total = models.PositiveIntegerField(null=True, blank=True)
    budget_day = MoneyField(null=True, blank=True)
    budget_week = MoneyField(null=True, blank=True)
    budget_month = MoneyField(null=True, blank=True)
    budget_total = MoneyField(null=True, blank=True)
    schedule = models.JSONField(default=dict, blank=True, decoder=StoredJSONDecoder)
    dedup_days = models.PositiveIntegerField(default=30)
    min_score = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    priority = models.IntegerField(default=0, help_text="Higher wins ties and leads the ping tree.")
    weight = models.PositiveIntegerField(default=1)
    return_window_hours = models.PositiveIntegerField(default=72)
    blocked_sellers = models.ManyToManyField(Organization, blank=True, related_name="blocked_by_contracts")
    delivery = models.JSONField(default=dict, blank=True, decoder=StoredJSONDecoder)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["name"]
        verbose_name = "buyer contract"

    def __str__(self) -> str:
        return self.name

    def cap(self, period: str) -> int | None:
        return getattr(self, f"cap_{period}")  # type: ignore[no-any-return]

    def budget(self, period: str) -> Decimal | None:
        return getattr(self, f"budget_{period}")  # type: ignore[no-any-return]

    @property
    def delivery_method(self) -> str:
        return str((self.delivery or {}).get("method", "none"))

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.organization_id and not self.organization.is_buyer:
            errors["organization"] = "Only a buyer organization can own a contract."
        if self.price is None and not self.rtb_url:
            errors["price"] = "Give a fixed price or an RTB URL."
        elif self.price is not None and self.rtb_url:
            errors["price"] = "Give a fixed price or an RTB URL, not both."
        if self.price is not None and self.price < 0:
            errors["price"] = "A price cannot be negative."
        if self.max_price is not None and self.price is not None and self.price > self.max_price:
            errors["max_price"] = "The max price is below the fixed price."
        if self.offer_id:
            fields = self.offer.field_specs
            try:
                rule_validate(self.filters or None, fields=fields, path="filters")
            except RuleError as exc:
                errors["filters"] = str(exc)
            for name, message in _terms_bound_errors(self, fields).items():
                errors.setdefault(name, message)
        try:
            schedule_validate(self.schedule or None, path="schedule")
        except ScheduleError as exc:
            errors["schedule"] = str(exc)
        try:
            delivery_validate(self.delivery, path="delivery", fields=self.offer.field_specs if self.offer_id else None)
        except DeliveryTermsError as exc:
            errors["delivery"] = str(exc)
        # The buyer hears at once of a URL the exchange will not call (sending checks again, at
        # connect time: core.outbound).
        urls = {
            "rtb_url": self.rtb_url,
            "delivery": (self.delivery or {}).get("url") if "delivery" not in errors else None,
        }
        for name, url in urls.items():
            if url:
                try:
                    url_check(str(url))
                except UnsafeUrl as exc:
                    errors[name] = f"{'delivery.url: ' if name == 'delivery' else ''}{exc}"
        if errors:
            raise ValidationError(errors)


class CapCounter(models.Model):
    """Leads bought and money spent by one contract in one period (``d2026-11-22``, ``total``…).

    Counted by one conditional upsert at post time (``contracts.sql.cap_counters_count``), so a cap
    is never oversold.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    contract = models.ForeignKey(BuyerContract, on_delete=models.CASCADE, related_name="cap_counters")
    period = models.CharField(max_length=8, choices=[(p, p) for p in PERIODS])
    period_key = models.CharField(max_length=16)
    count = models.PositiveIntegerField(default=0)
    spend = MoneyField(default=Decimal("0.00"))

    objects = ScopedManager(organization="organization")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contract", "period_key"], name="capcounter_unique")]

    def __str__(self) -> str:
        return f"{self.contract} {self.period_key}: {self.count}"
