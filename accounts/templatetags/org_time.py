"""``{% load org_time %}``: every time on a portal page in the organization's time zone, labelled.

``{% local_time sale.created_at %}`` → ``<time datetime="2026-12-07T19:05:00+00:00"
title="2026-12-07 14:05:00 America/New_York">Dec 7, 14:05 EST</time>`` (the year shown only when
it is not the current one); ``{% local_time value "date" %}`` → ``Dec 7, 2026``;
``{% local_time value "seconds" %}`` adds the seconds. ``{% tz_label %}`` is the zone's name for
a column header ("Time (America/New_York)"). The organization is the page's
``current_organization``; without one (a page outside the portal) times are in UTC, still labelled.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

UTC = zoneinfo.ZoneInfo("UTC")


def _tz(context: template.Context) -> zoneinfo.ZoneInfo:
    organization = context.get("current_organization")
    return organization.tz if organization is not None else UTC


def local_time_text(value: dt.datetime, tz: zoneinfo.ZoneInfo, style: str = "minutes") -> str:
    """``value`` in ``tz`` as the portal writes it: ``Dec 7, 14:05 EST`` (``Dec 7 2025, 14:05 EST``
    outside the current year); style ``date`` → ``Dec 7, 2026``; ``seconds`` → ``Dec 7, 14:05:09 EST``."""
    local = value.astimezone(tz)
    if style == "date":
        return f"{local:%b} {local.day}, {local.year}"
    day = f"{local:%b} {local.day}"
    if local.year != timezone.now().astimezone(tz).year:
        day += f" {local.year}"
    clock = f"{local:%H:%M:%S}" if style == "seconds" else f"{local:%H:%M}"
    return f"{day}, {clock} {local.tzname()}"


@register.simple_tag(takes_context=True)
def local_time(context: template.Context, value: Any, style: str = "minutes") -> SafeString | str:
    """A ``<time>`` element in the organization's zone; ``—`` for no time."""
    if not isinstance(value, dt.datetime):
        return "—"
    tz = _tz(context)
    local = value.astimezone(tz)
    return format_html(
        '<time datetime="{}" title="{} {}">{}</time>',
        value.isoformat(),
        f"{local:%Y-%m-%d %H:%M:%S}",
        str(tz),
        local_time_text(value, tz, style),
    )


@register.simple_tag(takes_context=True)
def tz_label(context: template.Context) -> SafeString:
    """The zone the page's times are in, e.g. ``America/New_York`` (in a span that keeps its case
    in the portal's upper-case column headers)."""
    return format_html('<span class="tz">{}</span>', str(_tz(context)))
