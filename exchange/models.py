"""The market: offers (this file), and — as the auction lands — pings, bids, sales and deliveries."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from functools import cached_property

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from core.ids import PublicIdField
from core.money import MoneyField
from core.schema import FieldSpec, SchemaError, offer_fields_parse
from exchange.api.idempotency import IdempotencyRecord  # noqa: F401 - this app's table, in its topic's module
from exchange.returns.models import Return, ReturnPolicy  # noqa: F401 - as above
from exchange.webhooks.models import Event, EventAttempt, EventDelivery, WebhookEndpoint  # noqa: F401 - as above


class Offer(models.Model):
    """A product traded on the exchange (e.g. US auto insurance): its lead fields and auction rules.

    Offers belong to the exchange (the operator), not to a tenant.
    """

    class Distribution(models.TextChoices):
        EXCLUSIVE = "exclusive", "Exclusive (highest price)"
        MULTISELL = "multisell", "Multisell (top N buyers)"
        HYBRID = "hybrid", "Hybrid (exclusive above a floor, else multisell)"
        PRIORITY = "priority", "Priority (ping tree)"
        WEIGHTED = "weighted", "Weighted random"
        ROUND_ROBIN = "round_robin", "Round robin"

    class Pricing(models.TextChoices):
        FIRST_PRICE = "first_price", "First price"
        SECOND_PRICE = "second_price", "Second price"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    distribution = models.CharField(max_length=16, choices=Distribution.choices, default=Distribution.EXCLUSIVE)
    pricing = models.CharField(max_length=16, choices=Pricing.choices, default=Pricing.FIRST_PRICE)
    multisell_max = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)])
    hybrid_floor = MoneyField(null=True, blank=True)
    margin_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("20"),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
        help_text="The platform's take; seller payout = price × (1 − margin), rounded down to the cent.",
    )
    floor = MoneyField(default=Decimal("0.00"), help_text="Minimum price a bid must reach.")
    max_bid = MoneyField(
        default=Decimal("10000.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="No contract's price, max price, modifier result nor RTB bid goes above this.",
    )
    min_score = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    bid_ttl_seconds = models.PositiveIntegerField(default=60, validators=[MinValueValidator(1)])
    ping_timeout_ms = models.PositiveIntegerField(default=500, validators=[MinValueValidator(10)])
    reauction_cycles = models.PositiveSmallIntegerField(
        default=2, help_text="Background re-auctions of a lead no buyer took, before it is unsold."
    )
    reauction_delay_seconds = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1)],
        help_text="Seconds between a lead's re-auction cycles (the first counts from the post).",
    )
    post_timeout_ms = models.PositiveIntegerField(
        default=15000,
        validators=[MinValueValidator(100)],
        help_text="The post's deadline: re-routing to the next bid stops here and goes on in the background.",
    )
    reject_rate_hold_percent = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        default=50,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Hold a contract (hold: operator) whose deliveries are rejected at this rate or more over the "
        "rolling window (GAVEL_REJECT_RATE_WINDOW_HOURS, once GAVEL_REJECT_RATE_MIN_DELIVERIES were made). "
        "Empty: never.",
    )
    one_to_one_consent = models.BooleanField(
        default=False,
        help_text="One-to-one consent: a lead is sold only to the buyers its consent names (consent.named_buyers).",
    )
    fields = models.JSONField(default=list, help_text="The lead's fields: name, type, ping, pii, min, max, choices.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            offer_fields_parse(self.fields)
        except SchemaError as exc:
            raise ValidationError({"fields": f"{exc.path}: {exc.message}"}) from exc
        if self.distribution == self.Distribution.HYBRID and self.hybrid_floor is None:
            raise ValidationError({"hybrid_floor": "A hybrid offer needs a hybrid floor."})
        if self.max_bid is not None:
            for name in ("floor", "hybrid_floor"):
                amount = getattr(self, name)
                if amount is not None and amount > self.max_bid:
                    raise ValidationError({name: f"Above the offer's max bid of {self.max_bid:.2f}."})

    @cached_property
    def field_specs(self) -> dict[str, FieldSpec]:
        return offer_fields_parse(self.fields)


class Ping(models.Model):
    """One ping: the PII-free part of a lead, the auction it started, and the answer given.

    ``waterfall`` keeps every contract evaluated (reason, price, latency) for operators and, cut
    to their own contracts, for buyers.
    """

    class Status(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    class Source(models.TextChoices):
        PING = "ping", "Ping"
        LEAD = "lead", "Full lead"
        REAUCTION = "reauction", "Re-auction"

    public_id = PublicIdField(prefix="png_", verbose_name="id")
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="pings", verbose_name="seller"
    )
    campaign = models.ForeignKey("contracts.Campaign", on_delete=models.PROTECT, related_name="pings")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="pings")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.PING)
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(max_length=32, blank=True)
    lead = models.JSONField(default=dict, help_text="The ping fields, as validated.")
    email_hash = models.CharField(max_length=64, blank=True)
    phone_hash = models.CharField(max_length=64, blank=True)
    tracking = models.JSONField(default=dict, blank=True)
    consent = models.JSONField(default=dict, blank=True)
    quality_score = models.PositiveSmallIntegerField(default=0)
    quality_signals = models.JSONField(
        default=dict, blank=True, help_text="What the quality score is made of: signal -> points (leads/scoring.py)."
    )
    test = models.BooleanField(default=False)
    fingerprint = models.CharField(max_length=64, help_text="Hash of the request, to answer repeats.")
    payout = MoneyField(default=Decimal("0.00"))
    waterfall = models.JSONField(default=list)
    latency_ms = models.FloatField(default=0)
    expires_at = models.DateTimeField()
    posted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at"]
        # An exact repeat's first answer: the unexpired pings of a fingerprint, soonest to expire
        # first, however often a seller has sent the same body before.
        indexes = [models.Index(fields=["fingerprint", "expires_at"], name="ping_repeat")]

    def __str__(self) -> str:
        return self.public_id

    @staticmethod
    def reauction_fingerprint(lead_public_id: str, cycle: int) -> str:
        """The fingerprint of a lead's re-auction ``cycle``'s ping: how a lead's history finds its
        re-auctions (the ``ping_repeat`` index leads with it), and what makes a cycle's ping unique."""
        return hashlib.sha256(json.dumps(["reauction", lead_public_id, cycle]).encode()).hexdigest()


class Bid(models.Model):
    """A contract's priced offer for a ping, in rank order; the winners are ``won``.

    ``price`` is what the buyer pays if this bid sells (after second-price rules), so a runner-up
    can take over a rejected lead at its own price.
    """

    class Status(models.TextChoices):
        WON = "won", "Won"
        OUTBID = "outbid", "Outbid"

    public_id = PublicIdField(prefix="bid_", verbose_name="id")
    ping = models.ForeignKey(Ping, on_delete=models.CASCADE, related_name="bids")
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="bids", verbose_name="buyer"
    )
    contract = models.ForeignKey("contracts.BuyerContract", on_delete=models.PROTECT, related_name="bids")
    rank = models.PositiveSmallIntegerField()
    bid_price = MoneyField(help_text="What the contract offered.")
    price = MoneyField(help_text="What the buyer pays if this bid sells.")
    payout = MoneyField(help_text="What the seller earns if this bid sells.")
    status = models.CharField(max_length=8, choices=Status.choices)
    ref = models.CharField(max_length=200, blank=True, help_text="The buyer's own token from its RTB answer.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["ping", "rank"]

    def __str__(self) -> str:
        return self.public_id


class Sale(models.Model):
    """A lead sold (or being sold) to one buyer contract.

    ``reserved`` holds the buyer's cap, budget and funds while the lead is delivered; then the
    sale is ``sold`` (booked in the ledger) or ``released`` (everything handed back).
    """

    class Status(models.TextChoices):
        RESERVED = "reserved", "Reserved"
        SOLD = "sold", "Sold"
        RELEASED = "released", "Released"
        RETURNED = "returned", "Returned"

    public_id = PublicIdField(prefix="sal_", verbose_name="id")
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="purchases", verbose_name="buyer"
    )
    seller = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="sales")
    lead = models.ForeignKey("leads.Lead", on_delete=models.PROTECT, related_name="sales")
    bid = models.ForeignKey(Bid, null=True, blank=True, on_delete=models.PROTECT, related_name="sales")
    contract = models.ForeignKey("contracts.BuyerContract", on_delete=models.PROTECT, related_name="sales")
    campaign = models.ForeignKey("contracts.Campaign", on_delete=models.PROTECT, related_name="sales")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="sales")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RESERVED)
    price = MoneyField()
    payout = MoneyField()
    margin = MoneyField()
    test = models.BooleanField(default=False)
    direct = models.BooleanField(default=False, help_text="Sold by the campaign's direct route.")
    email_hash = models.CharField(max_length=64, blank=True)
    phone_hash = models.CharField(max_length=64, blank=True)
    cap_keys = models.JSONField(default=list, help_text="The cap periods this sale counts in.")
    release_reason = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sold_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["email_hash", "created_at"], name="sale_email_dedup"),
            models.Index(fields=["phone_hash", "created_at"], name="sale_phone_dedup"),
            # The rollups' fold finds the sales made or booked since its last run.
            models.Index(fields=["created_at"], name="sale_created_at"),
            models.Index(fields=["sold_at"], name="sale_sold_at"),
        ]
        constraints = [
            # One lead is sold at most once to a contract, however often a task runs.
            models.UniqueConstraint(
                fields=["lead", "contract"],
                condition=models.Q(status__in=["reserved", "sold", "returned"]),
                name="sale_once_per_contract",
            )
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def contact_details_shown(self) -> bool:
        """Whether its buyer sees the consumer's contact details (and consent record): only for a
        lead it bought and kept. Not while reserved, nor once released (the delivery was turned
        down, failed, redirected or timed out) or returned: the buyer paid nothing for them."""
        return self.status == self.Status.SOLD


class DeliveryAttempt(models.Model):
    """One try at handing a sold lead to a buyer's system, kept for the buyer and the operator.

    The request is stored without its PII (the buyer has the lead in its purchases).
    """

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        TIMEOUT = "timeout", "Timed out"
        ERROR = "error", "Error"

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="delivery_attempts", verbose_name="buyer"
    )
    sale = models.ForeignKey(Sale, on_delete=models.PROTECT, related_name="delivery_attempts")
    contract = models.ForeignKey("contracts.BuyerContract", on_delete=models.PROTECT, related_name="delivery_attempts")
    url = models.URLField(max_length=500)
    request = models.JSONField(default=dict, help_text="What was sent, PII redacted.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.TextField(blank=True, help_text="The buyer's answer, truncated to 2 KB.")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.CharField(max_length=200, blank=True)
    latency_ms = models.FloatField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at"]
        # The delivery-reject watch counts one contract's recent attempts after every rejection.
        indexes = [models.Index(fields=["contract", "created_at"], name="deliveryattempt_contract_at")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} → {self.get_outcome_display()}"


class MarketVersion(models.Model):
    """One row (id 1): a count of the market's changes — offers, campaigns, contracts,
    organizations — that every process can read. Without a shared cache (no ``REDIS_URL``) the
    contract book is rebuilt when it moves (``exchange.auction.book``, decision 30)."""

    ROW_ID = 1

    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"market version {self.version}"
