"""``{% load money %}``: amounts in the exchange's currency (``GAVEL_CURRENCY``), as the portal
shows them: ``{{ amount|money }}`` → ``$1,248.00`` (``€1,248.00`` in EUR; format:
``core.money.money_label``), ``{% currency %}`` → the symbol for a form's label ("Floor ($)")."""

from __future__ import annotations

from decimal import Decimal

from django import template

from core.money import currency_symbol, money_label

register = template.Library()


@register.filter
def money(value: Decimal | None) -> str:
    """``-1234.5`` → ``−$1,234.50`` (a true minus sign, thousands grouped); None → ``—``."""
    return money_label(value)


@register.simple_tag
def currency() -> str:
    """The exchange's currency symbol (or its code when it has none here)."""
    return currency_symbol()
