"""``{% load reasons %}``: ``{{ sale.release_reason|reason_words:"release" }}`` — see ``leads.reasons``."""

from __future__ import annotations

from django import template

from leads.reasons import Vocabulary
from leads.reasons import reason_words as _reason_words

register = template.Library()


@register.filter
def reason_words(code: str | None, vocabulary: Vocabulary = "bid") -> str:
    return _reason_words(code, vocabulary)
