"""Reporting's own rows: the conversions buyers report on their purchases."""

from __future__ import annotations

from django.db import models
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
