"""``{% load terms %}``: a contract's structured terms as the API and the market file write them."""

from __future__ import annotations

import json

from django import template

register = template.Library()


@register.filter
def as_json(value: object) -> str:
    """Filters, price modifiers and schedules as JSON (``true``, not Python's ``True``)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
