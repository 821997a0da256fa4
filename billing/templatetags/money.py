"""``{% load money %}``: amounts as the portal shows them."""

from __future__ import annotations

from decimal import Decimal

from django import template

from core.money import to_money

register = template.Library()


@register.filter
def dollars(value: Decimal | None) -> str:
    """``-1234.5`` → ``−$1,234.50`` (a true minus sign, thousands grouped); None → ``—``."""
    if value is None:
        return "—"
    amount = to_money(value)
    return f"−${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"
