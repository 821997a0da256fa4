"""The market: offers (this file), and — as the auction lands — pings, bids, sales and deliveries."""

from __future__ import annotations

from decimal import Decimal
from functools import cached_property
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from exchange.schema import FieldSpec, SchemaError, offer_fields_parse


class MoneyField(models.DecimalField):  # type: ignore[type-arg]
    """An amount of the exchange's currency: 14 digits, 2 decimals (DESIGN.md §9)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", 14)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(*args, **kwargs)


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
    min_score = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    bid_ttl_seconds = models.PositiveIntegerField(default=60, validators=[MinValueValidator(1)])
    ping_timeout_ms = models.PositiveIntegerField(default=500, validators=[MinValueValidator(10)])
    reauction_cycles = models.PositiveSmallIntegerField(
        default=2, help_text="Background re-auctions after a post finds no taker."
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

    @cached_property
    def field_specs(self) -> dict[str, FieldSpec]:
        return offer_fields_parse(self.fields)
