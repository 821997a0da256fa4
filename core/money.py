"""Money helpers: Decimal only, one place that rounds."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import models

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


class MoneyField(models.DecimalField):  # type: ignore[type-arg]
    """An amount of the exchange's currency: 14 digits, 2 decimals."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", 14)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(*args, **kwargs)


class MoneyError(ValueError):
    pass


def to_money(value: object, *, rounding: str = ROUND_HALF_UP) -> Decimal:
    """Parse a string/int/Decimal into a Decimal quantized to the cent (never a float)."""
    if isinstance(value, float) or isinstance(value, bool):
        raise MoneyError("money must be given as a string or a decimal, not a float")
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError) as exc:
        raise MoneyError(f"{value!r} is not an amount of money") from exc
    if not amount.is_finite():
        raise MoneyError(f"{value!r} is not an amount of money")
    try:
        return amount.quantize(CENT, rounding=rounding)
    except InvalidOperation as exc:  # more digits than the context holds (1e40)
        raise MoneyError(f"{value!r} is too large an amount of money") from exc


def payout_for(price: Decimal, margin_percent: Decimal) -> Decimal:
    """The seller's payout for a sale at ``price``: price × (1 − margin), rounded down to the cent.

    Rounding down means the platform keeps the fraction of a cent, so payout + margin = price
    always holds exactly.
    """
    return to_money(price * (Decimal(100) - margin_percent) / Decimal(100), rounding=ROUND_DOWN)


def money_str(amount: Decimal) -> str:
    """The API form of an amount: a string with two decimals."""
    return str(to_money(amount))
