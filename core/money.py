"""Money helpers: Decimal only, one place that rounds."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation
from typing import Any

from django.conf import settings
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


def payout_for(price: Decimal, margin_percent: Decimal, *, fixed: Decimal | None = None) -> Decimal:
    """The seller's payout for a sale at ``price``: the campaign's ``fixed`` payout when it has
    one, else price × (1 − margin), rounded down to the cent.

    Rounding down means the platform keeps the fraction of a cent, so payout + margin = price
    always holds exactly. A fixed payout is never more than a price the auction lets through:
    its floor is :func:`price_for_payout` of it (docs/decisions.md, fixed payouts).
    """
    if fixed is not None:
        return fixed
    return to_money(price * (Decimal(100) - margin_percent) / Decimal(100), rounding=ROUND_DOWN)


def price_for_payout(payout: Decimal, margin_percent: Decimal) -> Decimal | None:
    """The least price whose margin share pays ``payout`` to the seller: the least ``price`` with
    ``payout_for(price, margin_percent) >= payout`` (so price − payout ≥ margin % of the price).

    None when no price can (a 100 % margin and a positive payout).
    """
    if payout <= ZERO:
        return ZERO
    share = (Decimal(100) - margin_percent) / Decimal(100)
    if share <= ZERO:
        return None
    price = (payout / share).quantize(CENT, rounding=ROUND_UP)
    while payout_for(price, margin_percent) < payout:  # at most a cent or two of rounding
        price += CENT
    while price > CENT and payout_for(price - CENT, margin_percent) >= payout:
        price -= CENT
    return price


def money_str(amount: Decimal) -> str:
    """The API form of an amount: a string with two decimals."""
    return str(to_money(amount))


# --- the exchange's currency (GAVEL_CURRENCY) ------------------------------------------------------

# One currency per exchange. Amounts are shown as its symbol (or, for a code not listed here, the
# code and a space) and the amount with two decimals and thousands grouped by commas, whatever the
# currency: "$1,248.00", "€1,248.00", "CHF 1,248.00"; a negative amount takes a true minus sign
# first ("−€5.00"). One format on purpose: statements and exports stay comparable across exchanges.
CURRENCY_SYMBOLS = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "¥",
    "CAD": "CA$",
    "AUD": "A$",
    "NZD": "NZ$",
    "MXN": "MX$",
    "BRL": "R$",
    "INR": "₹",
}


def currency_code() -> str:
    """The exchange's currency: ``GAVEL_CURRENCY``, an ISO 4217 code (USD by default)."""
    return str(getattr(settings, "GAVEL_CURRENCY", "USD") or "USD").upper()


def currency_symbol(code: str | None = None) -> str:
    """The symbol amounts are written with: ``$`` for USD, ``€`` for EUR, else the code."""
    code = code or currency_code()
    return CURRENCY_SYMBOLS.get(code, code)


def money_label(amount: object, code: str | None = None) -> str:
    """``amount`` as people read it: ``-1234.5`` → ``−$1,234.50`` (or ``−€1,234.50`` in EUR,
    ``−CHF 1,234.50`` for a code without a symbol here); None → ``—``."""
    if amount is None:
        return "—"
    value = to_money(amount)
    code = code or currency_code()
    symbol = CURRENCY_SYMBOLS.get(code, f"{code} ")
    return f"−{symbol}{-value:,.2f}" if value < 0 else f"{symbol}{value:,.2f}"
