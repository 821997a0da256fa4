"""The dashboards' charts: server-side SVG drawn by pygal, inlined in the page.

No JavaScript and nothing fetched (pygal's tooltip script is switched off); readable without
colour: each series has its own marker shape and dash, every point carries its value as a label
when there are few enough, the chart has a title, and the page puts the same numbers in a table
beside it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import pygal
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

# pygal puts an import hook in front of every import (for its optional map plugins, pygal.maps.*,
# which Gavel does not use); on Python 3.11+ it warns on each import it sees, which the tests turn
# into errors. Take it out again.
sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, pygal.PluginImportFixer)]

# Dark ink and a mid grey: distinct in greyscale; the markers and dashes tell them apart anyway.
STYLE = Style(
    background="transparent",
    plot_background="#ffffff",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#d5dbe1",
    colors=("#1d4ed8", "#b45309", "#15803d"),
    font_family="system-ui, -apple-system, 'Segoe UI', sans-serif",
    title_font_size=17,
    label_font_size=13,
    major_label_font_size=13,
    value_font_size=12,
    value_label_font_size=12,
    legend_font_size=14,
    guide_stroke_color="#e3e8ef",
    major_guide_stroke_color="#cfd6e0",
    guide_stroke_dasharray="1,0",
    major_guide_stroke_dasharray="1,0",
)
DASHES = ("", "10, 5", "3, 4")
LABELLED_POINTS = 16  # more points than this: values are in the table beside, not on the chart
SCRIPT = re.compile(r"<script\b.*?</script>", re.S)


@dataclass(frozen=True)
class Series:
    title: str
    values: Sequence[Decimal | int | None]


def line_chart(*, title: str, labels: Sequence[str], series: Sequence[Series], money: bool = False) -> SafeString:
    """A line chart of ``series`` over ``labels`` (days), as an inline ``<svg>``."""
    chart = pygal.Line(
        style=STYLE,
        js=[],
        width=640,
        height=320,
        explicit_size=False,
        disable_xml_declaration=True,
        title=title,
        show_legend=len(series) > 1,
        legend_at_bottom=True,
        legend_at_bottom_columns=len(series),
        print_values=len(labels) <= LABELLED_POINTS,
        print_values_position="top",
        x_label_rotation=0 if len(labels) <= 10 else 40,
        show_minor_x_labels=len(labels) <= 10,
        x_labels_major_every=max(1, len(labels) // 8),
        truncate_label=-1,
        dots_size=4,
        stroke_style={"width": 2.5},
        include_x_axis=True,
        margin=12,
        margin_right=36,  # room for the last point's label
        no_data_text="No data in this range",
        value_formatter=(lambda v: f"${v:,.2f}") if money else (lambda v: f"{v:,.0f}"),
    )
    chart.x_labels = list(labels)
    for index, one in enumerate(series):
        chart.add(
            one.title,
            [float(v) if v is not None else None for v in one.values],
            stroke_style={"width": 2.5, "dasharray": DASHES[index % len(DASHES)]},
            dots_size=4 + 2 * index,
        )
    svg = chart.render(is_unicode=True)
    svg = SCRIPT.sub("", svg)  # pygal's tooltip config: no script runs on the page
    # A name for screen readers; the table beside it has the numbers.
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(title)}" ', 1)
    return mark_safe(svg)  # noqa: S308 - pygal escapes the labels and values it draws  # nosec B308 B703
