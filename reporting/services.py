"""Reporting's writes: conversions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import market_scope
from core.errors import Invalid, NotFound
from core.money import MoneyError, to_money
from exchange.models import Sale
from reporting.models import Conversion

EVENT = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_VALUE = Decimal("1000000.00")
# A conversion's time may run a little ahead of ours (the buyer's clock), never further.
CLOCK_SKEW = timedelta(minutes=5)
# Sales a buyer can report a conversion on: bought (a returned lead may still have converted).
CONVERTIBLE = (Sale.Status.SOLD, Sale.Status.RETURNED)


@dataclass(frozen=True)
class Recorded:
    conversion: Conversion
    created: bool


def conversion_record(
    *, buyer: Organization, sale_public_id: str, event: str, value: object, occurred_at: datetime | None = None
) -> Recorded:
    """Record that the buyer's purchase converted. The same sale and event again answers the first
    conversion (``created`` False), whatever its value: a conversion is reported once.

    Refused, with nothing written: another buyer's or an unknown sale (NotFound), a sale not bought
    (released or still reserved), an event not ``[a-z][a-z0-9_]*`` (at most 32), a value that is not
    an amount from 0.00 to 1 000 000.00, a time before the sale or ahead of now.
    """
    now = timezone.now()
    occurred_at = occurred_at or now
    fields: dict[str, list[str]] = {}
    if not isinstance(event, str) or not EVENT.match(event):
        fields["event"] = ["Use a lower-case name: letters, digits and _, starting with a letter, at most 32."]
    try:
        amount = to_money(value)
        if not Decimal(0) <= amount <= MAX_VALUE:
            raise MoneyError("out of range")
    except MoneyError:
        fields["value"] = [f'An amount from 0.00 to {MAX_VALUE:,.2f}, as a string such as "120.00".']
        amount = Decimal(0)
    if occurred_at > now + CLOCK_SKEW:
        fields["occurred_at"] = ["A conversion cannot happen in the future."]
    with market_scope():
        sale = Sale.objects.filter(organization=buyer, public_id=sale_public_id).first()
        if sale is None:
            raise NotFound("No such purchase.")
        existing = Conversion.objects.filter(sale=sale, event=event).first() if not fields else None
        if existing is not None:
            return Recorded(existing, created=False)
        if sale.status not in CONVERTIBLE:
            fields.setdefault("sale_id", []).append(f"Only a bought lead converts; this sale is {sale.status}.")
        if sale.sold_at is not None and occurred_at < sale.sold_at:
            fields.setdefault("occurred_at", []).append("A conversion cannot happen before the sale.")
        if fields:
            raise Invalid("The conversion is not valid.", fields=fields)
        try:
            with transaction.atomic():
                conversion = Conversion.objects.create(
                    organization=buyer,
                    seller_id=sale.seller_id,
                    sale=sale,
                    campaign_id=sale.campaign_id,
                    contract_id=sale.contract_id,
                    event=event,
                    value=amount,
                    test=sale.test,
                    occurred_at=occurred_at,
                )
        except IntegrityError:  # the same conversion, reported at the same moment: the first one stands
            return Recorded(Conversion.objects.get(sale=sale, event=event), created=False)
    return Recorded(conversion, created=True)
