"""A campaign's postback URL template: the placeholders it may hold, their check and their filling.

A seller gives a URL such as ``https://track.example.com/pb?click={click_id}&amount={payout}&ev={event}``;
the exchange calls it (``GET``) when the campaign's lead sells and when its buyer reports a
conversion (``reporting``). Each placeholder is replaced by its value, URL-encoded; a placeholder
with no value (a sub-id the lead did not carry) becomes empty. Anything else in braces is refused
when the template is saved, so a typo (``{subid1}``) never reaches the seller's tracker as text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from core.outbound import UnsafeUrl, url_check

PLACEHOLDERS = (
    "lead_id",
    "event",
    "value",
    "payout",
    "sub_id1",
    "sub_id2",
    "sub_id3",
    "sub_id4",
    "sub_id5",
    "click_id",
    "test",
)
MAX_LENGTH = 2000
_BRACES = re.compile(r"\{([^{}]*)\}")
# What a template is checked with: plausible values of every placeholder.
_SAMPLE = {name: "x1" for name in PLACEHOLDERS}


def postback_url_fill(template: str, values: Mapping[str, object]) -> str:
    """The template with each placeholder replaced by its value, URL-encoded (none: empty)."""

    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return "" if value is None else quote(str(value), safe="")

    return _BRACES.sub(one, template)


def postback_url_validate(template: str) -> None:
    """Raise ``ValidationError`` (a message for the seller) unless ``template`` is an http(s) URL
    whose only placeholders are :data:`PLACEHOLDERS` and whose host the outbound guard allows."""
    if len(template) > MAX_LENGTH:
        raise ValidationError(f"At most {MAX_LENGTH} characters.")
    unknown = sorted({name for name in _BRACES.findall(template) if name not in PLACEHOLDERS})
    if unknown:
        raise ValidationError(
            f"Unknown placeholder {', '.join('{' + n + '}' for n in unknown)}: use "
            + ", ".join("{" + n + "}" for n in PLACEHOLDERS)
            + "."
        )
    filled = postback_url_fill(template, _SAMPLE)
    if "{" in filled or "}" in filled:
        raise ValidationError("A brace that is not part of a placeholder: write placeholders as {lead_id}.")
    if "{" in _host(template):
        raise ValidationError("The host cannot be a placeholder.")
    try:
        URLValidator(schemes=["http", "https"])(filled)
    except ValidationError as exc:
        raise ValidationError("Must be an http:// or https:// URL.") from exc
    try:
        url_check(filled)
    except UnsafeUrl as exc:
        raise ValidationError(str(exc)) from exc


def _host(url: str) -> str:
    """The part of ``url`` that names the host (what lies between ``//`` and the next ``/?#``)."""
    rest = url.split("//", 1)[1] if "//" in url else ""
    return re.split(r"[/?#]", rest, maxsplit=1)[0]
