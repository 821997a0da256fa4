"""The dashboards: a seller's and a buyer's at ``/portal/dashboard/`` (an organization that is both
gets both, as tabs), the operator's at ``/ops/`` (staff only). Each table has its CSV export at
``…/<table>.csv`` with the same query string; page and CSV build the same range form and the same
table (``reporting.dashboards``). Everything is read from the rollups; only /ops/'s latency reads
the latest pings, a bounded read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.urls import reverse

from accounts.exports import csv_stream
from accounts.portal import portal_page
from reporting.charts import Series, line_chart
from reporting.dashboards import (
    BUYER_TABLES,
    OPS_TABLES,
    SELLER_TABLES,
    UTC,
    Ask,
    RangeForm,
    Table,
    display,
    ops_health,
    today_in,
)
from reporting.reports import BUYER, SELLER, side_default

SIDE_TABLES = {SELLER: SELLER_TABLES, BUYER: BUYER_TABLES}


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def _chart(table: Table, *, start: date, end: date, series: list[tuple[str, str]], title: str) -> Any:
    """A line per (column, label) of the by-day ``table``, every day of the range (0 on days
    without traffic)."""
    by_day = {row["day"]: row for row in table.rows}
    days = [day.isoformat() for day in _days(start, end)]
    return line_chart(
        title=title,
        labels=[day[5:] for day in days],  # MM-DD: the year is in the range above the chart
        series=[Series(label, [by_day.get(day, {}).get(key) or 0 for day in days]) for key, label in series],
        money=True,
    )


def _kpis(totals: dict[str, Any], wanted: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    return [(label, display(totals.get(key), kind)) for key, label, kind in wanted]


SELLER_KPIS = [
    ("revenue", "Revenue", "money"),
    ("sold", "Leads sold", "int"),
    ("sell_through", "Sell-through", "rate"),
    ("avg_payout", "Average payout", "money"),
    ("return_rate", "Return rate", "rate"),
    ("conversion_rate", "Conversion rate", "rate"),
]
BUYER_KPIS = [
    ("spend", "Spend", "money"),
    ("sold", "Leads bought", "int"),
    ("win_rate", "Win rate", "rate"),
    ("avg_price", "Average price", "money"),
    ("return_rate", "Return rate", "rate"),
    ("conversion_rate", "Conversion rate", "rate"),
]


@portal_page()
def dashboard(request: HttpRequest) -> HttpResponse:
    """The organization's dashboard on one side (``?side=``; the seller's first for one that sells)."""
    organization = request.organization  # type: ignore[attr-defined]
    asked = request.GET.get("side", "")
    side = asked if asked in organization.roles else side_default(organization)
    form = RangeForm(request.GET, today=today_in(organization.tz))
    context: dict[str, Any] = {"form": form, "side": side, "sides": organization.roles}
    if not form.is_valid():
        return render(request, "reporting/dashboard.html", context, status=400)
    c = form.cleaned_data
    ask = Ask(organization=organization, start=c["start"], end=c["end"], tz=organization.tz, sub_id=c["sub_id"])
    tables = {slug: build(ask) for slug, build in SIDE_TABLES[side].items()}
    day = tables.pop("by-day")
    assert day.totals is not None
    if side == SELLER:
        kpis = _kpis(day.totals, SELLER_KPIS)
        chart = _chart(day, start=ask.start, end=ask.end, series=[("revenue", "Revenue")], title="Revenue per day")
        day.columns = [
            c
            for c in day.columns
            if c.key in ("day", "pings", "sold", "sell_through", "revenue", "avg_payout", "return_rate")
        ]
    else:
        kpis = _kpis(day.totals, BUYER_KPIS)
        chart = _chart(day, start=ask.start, end=ask.end, series=[("spend", "Spend")], title="Spend per day")
        day.columns = [
            c for c in day.columns if c.key in ("day", "evaluated", "won", "win_rate", "sold", "spend", "avg_price")
        ]
    context.update(
        ask=ask,
        query=form.query(),
        kpis=kpis,
        chart=chart,
        day=day,
        tables=list(tables.values()),
        has_traffic=bool(day.totals["pings"] if side == SELLER else day.totals["evaluated"]),
    )
    return render(request, "reporting/dashboard.html", context)


@portal_page()
def dashboard_csv(request: HttpRequest, side: str, table: str) -> HttpResponseBase:
    """One table of the dashboard as CSV, for the same range (every column, the totals last)."""
    organization = request.organization  # type: ignore[attr-defined]
    if side not in organization.roles or table not in SIDE_TABLES.get(side, {}):
        raise Http404("No such table.")
    form = RangeForm(request.GET, today=today_in(organization.tz))
    if not form.is_valid():
        return _bad_range(form)
    c = form.cleaned_data
    ask = Ask(organization=organization, start=c["start"], end=c["end"], tz=organization.tz, sub_id=c["sub_id"])
    built = SIDE_TABLES[side][table](ask)
    return csv_stream(
        organization=organization,
        filename=f"gavel-{side}-{built.slug}-{ask.start}-{ask.end}.csv",
        header=built.csv_header,
        rows=built.csv_rows,
    )


def _bad_range(form: RangeForm) -> HttpResponse:
    errors = "; ".join(
        f"{name.rstrip('_')}: {' '.join(str(m) for m in messages)}" for name, messages in form.errors.items()
    )
    return HttpResponse(f"Bad range — {errors}\n", status=400, content_type="text/plain; charset=utf-8")


def staff_page(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Operators only: an anonymous visitor goes to the admin's login; a logged-in non-staff user
    gets a 404 (the page is not there for them)."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not request.user.is_staff:
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return guarded


OPS_KPIS = [
    ("pings", "Pings", "int"),
    ("sold", "Leads sold", "int"),
    ("unsold", "Unsold leads", "int"),
    ("revenue", "Revenue", "money"),
    ("margin", "Margin", "money"),
]


@staff_page
def ops(request: HttpRequest) -> HttpResponse:
    """The exchange right now and over a range (UTC): volume, money, latency, buyers' RTB and
    delivery health, top reasons, quality by campaign, the ledger's reconciliation."""
    form = RangeForm(request.GET, today=today_in(UTC))
    health = ops_health()
    context: dict[str, Any] = {"form": form, "health": health}
    if not form.is_valid():
        return render(request, "reporting/ops.html", context, status=400)
    c = form.cleaned_data
    ask = Ask(organization=None, start=c["start"], end=c["end"], tz=UTC)
    tables = {slug: build(ask) for slug, build in OPS_TABLES.items()}
    day = tables.pop("by-day")
    assert day.totals is not None
    chart = _chart(
        day,
        start=ask.start,
        end=ask.end,
        series=[("revenue", "Revenue"), ("margin", "Margin")],
        title="Revenue and margin per day",
    )
    context.update(
        ask=ask,
        query=form.query(),
        kpis=_kpis(day.totals, OPS_KPIS),
        chart=chart,
        day=day,
        tables=list(tables.values()),
    )
    return render(request, "reporting/ops.html", context)


@staff_page
def ops_csv(request: HttpRequest, table: str) -> HttpResponseBase:
    if table not in OPS_TABLES:
        raise Http404("No such table.")
    form = RangeForm(request.GET, today=today_in(UTC))
    if not form.is_valid():
        return _bad_range(form)
    c = form.cleaned_data
    ask = Ask(organization=None, start=c["start"], end=c["end"], tz=UTC)
    built = OPS_TABLES[table](ask)
    return csv_stream(
        organization=None,
        filename=f"gavel-ops-{built.slug}-{ask.start}-{ask.end}.csv",
        header=built.csv_header,
        rows=built.csv_rows,
    )
