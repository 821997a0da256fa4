"""Reporting's own rows: the conversions buyers report on their purchases, the postbacks that tell
sellers of their sales and conversions, and the hourly rollups."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_scopes import ScopedManager

from core.ids import PublicIdField
from core.money import MoneyField


class Conversion(models.Model):
    """A buyer's report that a purchased lead converted (an ``event`` such as ``sale``, worth
    ``value``). One per sale and event: reporting the same again answers the first."""

    public_id = PublicIdField(prefix="cnv_", verbose_name="id")
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="conversions", verbose_name="buyer"
    )
    seller = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="+")
    sale = models.ForeignKey("exchange.Sale", on_delete=models.PROTECT, related_name="conversions")
    campaign = models.ForeignKey("contracts.Campaign", on_delete=models.PROTECT, related_name="conversions")
    contract = models.ForeignKey("contracts.BuyerContract", on_delete=models.PROTECT, related_name="conversions")
    event = models.CharField(max_length=32)
    value = MoneyField()
    test = models.BooleanField(default=False)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["sale", "event"], name="conversion_once_per_sale_event")]

    def __str__(self) -> str:
        return self.public_id


# A rollup row's dimensions (its columns), in the order of its unique index.
GRAIN: tuple[str, ...] = ("hour", "seller_id", "offer_id", "campaign_id")
GRAIN += ("sub_id1", "sub_id2", "sub_id3", "sub_id4", "sub_id5", "buyer_id", "contract_id", "test")


class Rollup(models.Model):
    """One hour of trade, summed, for one combination of dimensions. Reports read these, never raw pings.

    The grain (decision 47):

    * **seller rows** (``buyer`` and ``contract`` empty): per hour × seller × offer × campaign ×
      ``sub_id1``…``sub_id5`` × test. ``pings``/``accepted`` count the seller's pings (re-auctions
      are the exchange's, not the seller's); ``posted``, ``sold``, ``unsold`` count its leads;
      ``returned``, ``conversions`` and the money count the sales of those leads (a multisold
      lead is one ``sold`` lead and several sales' payouts).
    * **buyer rows** (``buyer`` and ``contract`` set, sub-ids empty — buyers see a campaign's
      opaque source token, not the seller's sub-ids): per hour × contract × seller × offer ×
      campaign × test. ``evaluated``/``bids``/``wins``/``rtb_*`` come from every ping's waterfall
      (re-auctions included); ``sold`` counts the contract's sales; ``delivery_rejects`` its
      deliveries that were not accepted.

    The hour: ping figures count in the hour the ping arrived; everything that follows a post
    (the lead's outcome, its sales, returns, conversions, delivery attempts) counts in the hour
    **the lead was posted**, whenever it happened — so a row's ratios hold (returned ≤ sold ≤
    posted) and a return days later changes the lead's hour, not today's.

    Money: ``price`` what buyers paid, ``payout`` what sellers earned, ``margin`` the exchange's
    take, before returns; ``returned_price``/``returned_payout`` what approved returns gave back.
    """

    hour = models.DateTimeField(help_text="The hour's start (UTC).")
    seller = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="+")
    offer = models.ForeignKey("exchange.Offer", on_delete=models.PROTECT, related_name="+")
    campaign = models.ForeignKey("contracts.Campaign", on_delete=models.PROTECT, related_name="+")
    sub_id1 = models.CharField(max_length=100, blank=True)
    sub_id2 = models.CharField(max_length=100, blank=True)
    sub_id3 = models.CharField(max_length=100, blank=True)
    sub_id4 = models.CharField(max_length=100, blank=True)
    sub_id5 = models.CharField(max_length=100, blank=True)
    buyer = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    contract = models.ForeignKey(
        "contracts.BuyerContract", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    test = models.BooleanField(default=False)
    # Ping figures (folded once per ping, by id).
    pings = models.PositiveIntegerField(default=0, db_default=0)
    accepted = models.PositiveIntegerField(default=0, db_default=0)
    evaluated = models.PositiveIntegerField(default=0, db_default=0)
    bids = models.PositiveIntegerField(default=0, db_default=0)
    wins = models.PositiveIntegerField(default=0, db_default=0)
    rtb_timeouts = models.PositiveIntegerField(default=0, db_default=0)
    rtb_errors = models.PositiveIntegerField(default=0, db_default=0)
    # Outcome figures (recomputed for every lead hour something happened in).
    posted = models.PositiveIntegerField(default=0, db_default=0)
    sold = models.PositiveIntegerField(default=0, db_default=0)
    unsold = models.PositiveIntegerField(default=0, db_default=0)
    returned = models.PositiveIntegerField(default=0, db_default=0)
    conversions = models.PositiveIntegerField(default=0, db_default=0)
    delivery_rejects = models.PositiveIntegerField(default=0, db_default=0)
    price = MoneyField(default=Decimal("0.00"), db_default=Decimal("0.00"))
    payout = MoneyField(default=Decimal("0.00"), db_default=Decimal("0.00"))
    margin = MoneyField(default=Decimal("0.00"), db_default=Decimal("0.00"))
    returned_price = MoneyField(default=Decimal("0.00"), db_default=Decimal("0.00"))
    returned_payout = MoneyField(default=Decimal("0.00"), db_default=Decimal("0.00"))
    conversion_value = MoneyField(default=Decimal("0.00"), db_default=Decimal("0.00"))

    class Meta:
        ordering = ["hour", "id"]
        constraints = [
            # The grain, unique; a seller row's empty buyer and contract count as equal (as 0), on
            # PostgreSQL and SQLite alike (reporting.sql's upsert names this index as its target).
            models.UniqueConstraint(
                *GRAIN[:9], Coalesce("buyer", Value(0)), Coalesce("contract", Value(0)), "test", name="rollup_grain"
            )
        ]
        indexes = [
            # A report reads one organization's rows of a range of hours, on its side.
            models.Index(fields=["seller", "hour"], condition=models.Q(contract__isnull=True), name="rollup_seller"),
            models.Index(fields=["buyer", "hour"], condition=models.Q(contract__isnull=False), name="rollup_buyer"),
            models.Index(fields=["hour"], name="rollup_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.campaign_id}/{self.contract_id or '-'}"


class ReasonRollup(models.Model):
    """One hour of a contract's waterfall steps, counted by reason (``won``, ``outbid``,
    ``filtered:state``, ``cap_reached:day``…): the buyer's "why I lost" and the operator's top
    reasons, without reading raw pings. Folded with the rollups' ping figures, in the same
    transaction and under the same cursor, so each ping's steps count exactly once."""

    hour = models.DateTimeField(help_text="The hour's start (UTC).")
    buyer = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="+")
    contract = models.ForeignKey("contracts.BuyerContract", on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=64)
    test = models.BooleanField(default=False)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["hour", "id"]
        constraints = [
            models.UniqueConstraint(fields=["hour", "contract", "reason", "test"], name="reason_rollup_grain")
        ]
        indexes = [
            models.Index(fields=["buyer", "hour"], name="reason_rollup_buyer"),
            models.Index(fields=["hour"], name="reason_rollup_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.contract_id} {self.reason}: {self.count}"


class RollupCursor(models.Model):
    """How far the fold has gone (one row per ``name``): ``pings`` — the last ping id whose
    figures are in the rollups (each ping folded exactly once); ``outcomes`` — the time up to
    which changes to leads, sales, returns, conversions and deliveries were folded."""

    name = models.CharField(max_length=32, unique=True)
    last_id = models.BigIntegerField(default=0)
    until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.last_id} / {self.until}"


class Postback(models.Model):
    """One call of a seller's campaign postback URL (``GET``, signed), made for a lead that sold
    (``event`` ``sold``) or for a buyer's conversion on it, and retried with backoff until a 2xx
    or the last attempt. ``url`` is the template as it was filled at that moment.

    States: ``pending`` (an attempt is due at ``next_attempt_at``), ``sending`` (claimed by one
    worker until ``next_attempt_at``, its lease), ``succeeded``, ``given_up``.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SUCCEEDED = "succeeded", "Succeeded"
        GIVEN_UP = "given_up", "Given up"

    public_id = PublicIdField(prefix="pbk_", verbose_name="id")
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="postbacks", verbose_name="seller"
    )
    campaign = models.ForeignKey("contracts.Campaign", on_delete=models.CASCADE, related_name="postbacks")
    lead = models.ForeignKey("leads.Lead", on_delete=models.CASCADE, related_name="postbacks")
    conversion = models.ForeignKey(
        Conversion, null=True, blank=True, on_delete=models.CASCADE, related_name="postbacks"
    )
    event = models.CharField(max_length=32)
    url = models.TextField(help_text="The campaign's postback URL, filled in.")
    test = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="postback_due")]
        constraints = [
            # A lead's sale is told once, and each conversion once, however often an event replays.
            models.UniqueConstraint(
                fields=["lead"], condition=models.Q(conversion__isnull=True), name="postback_once_per_lead_sold"
            ),
            models.UniqueConstraint(
                fields=["conversion"], condition=models.Q(conversion__isnull=False), name="postback_once_per_conversion"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.event} ({self.status})"


class PostbackAttempt(models.Model):
    """One GET of a postback, as the seller's tracker answered it (or why it could not)."""

    postback = models.ForeignKey(Postback, on_delete=models.CASCADE, related_name="attempt_log")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response = models.TextField(blank=True, help_text="The tracker's answer, cut to 1 KB.")
    error = models.CharField(max_length=500, blank=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["postback", "number"]
        constraints = [models.UniqueConstraint(fields=["postback", "number"], name="postback_attempt_once")]

    def __str__(self) -> str:
        return f"{self.postback_id} #{self.number}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
