"""``{% load money %}``: amounts as the portal shows them."""

from __future__ import annotations

from decimal import Decimal

from django import template

from billing.money import money_str, to_money

register = template.Library()


@register.filter
def dollars(value: Decimal | None) -> str:
    """``-12.5`` → ``−$12.50`` (a true minus sign); None → ``—``."""
    if value is None:
        return "—"
    amount = to_money(value)
    return f"−${money_str(-amount)}" if amount < 0 else f"${money_str(amount)}"
