"""Reports: reads of the hourly rollups, for the API, the dashboards and CSV exports.

One selector, :func:`report_of`: an organization's figures over a range of days of its own time
zone, grouped by some dimensions, from the rollups only (never the raw pings). A seller's report
reads its seller rows, a buyer's its buyer rows (``reporting.models.Rollup`` explains the grain).

Figures per side, as DESIGN.md §6.1 names them:

* seller: ``pings accepted posted sold unsold returned conversions`` (counts) and ``amount``
  (payouts earned before returns), ``returned_amount`` (payouts clawed back by approved returns),
  ``conversion_value``;
* buyer: ``evaluated bids won sold returned conversions`` and ``amount`` (prices paid before
  returns), ``returned_amount`` (refunds), ``conversion_value``.

Days and hours are the organization's; a rollup hour counts in the local day it starts in (for a
zone offset by a fraction of an hour, such as India's, a day's edges follow UTC hours).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import F, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour

from accounts.models import Organization
from core.money import money_str
from reporting.models import ReasonRollup, Rollup

SELLER, BUYER = "seller", "buyer"
MAX_DAYS = 366
GROUPS = {
    SELLER: ("day", "hour", "offer", "campaign", "sub_id1", "sub_id2", "sub_id3", "sub_id4", "sub_id5"),
    BUYER: ("day", "hour", "offer", "contract", "source"),
}
# Each figure of a side's rows and the rollup column it sums.
FIGURES = {
    SELLER: {
        "pings": "pings",
        "accepted": "accepted",
        "posted": "posted",
        "sold": "sold",
        "unsold": "unsold",
        "returned": "returned",
        "conversions": "conversions",
        "amount": "payout",
        "returned_amount": "returned_payout",
        "conversion_value": "conversion_value",
    },
    BUYER: {
        "evaluated": "evaluated",
        "bids": "bids",
        "won": "wins",
        "sold": "sold",
        "returned": "returned",
        "conversions": "conversions",
        "amount": "price",
        "returned_amount": "returned_price",
        "conversion_value": "conversion_value",
    },
}
MONEY = frozenset({"amount", "returned_amount", "conversion_value"})
# A dimension's value in the rollups: public ids, never database ids.
DIMENSIONS = {
    "offer": F("offer__slug"),
    "campaign": F("campaign__public_id"),
    "contract": F("contract__public_id"),
    "source": F("campaign__source_token"),
}  # the sub-ids are the rollup's own columns


@dataclass(frozen=True)
class Report:
    start: date
    end: date
    timezone: str
    side: str
    group_by: list[str]
    rows: list[dict[str, Any]]
    totals: dict[str, Any]


def side_default(organization: Organization) -> str:
    """The side a report shows when none is asked: the seller's for an organization that sells
    (whether or not it also buys), else the buyer's."""
    return SELLER if organization.is_seller else BUYER


def report_of(
    *, organization: Organization, side: str, start: date, end: date, group_by: list[str], test: bool = False
) -> Report:
    """The organization's figures on ``side`` from ``start`` to ``end`` (inclusive days of its time
    zone), one row per combination of ``group_by`` (in that order, sorted by it), and the totals.

    Callers check the arguments (``reporting.api.serializers.ReportQuery``): a side the
    organization has, dimensions of that side, at most :data:`MAX_DAYS` days. ``test`` reports
    the test traffic instead of the real one.
    """
    tz = organization.tz
    since = datetime.combine(start, time.min, tzinfo=tz)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz)
    rows = rollups_of(organization=organization, side=side).filter(hour__gte=since, hour__lt=until, test=test)
    figures = FIGURES[side]
    sums = {name: Sum(column) for name, column in figures.items()}
    keys: dict[str, Any] = {}
    columns = [name for name in group_by if name.startswith("sub_id")]
    for name in group_by:
        if name in columns:
            continue
        if name == "day":
            keys[_alias(name)] = TruncDay("hour", tzinfo=tz)
        elif name == "hour":
            keys[_alias(name)] = TruncHour("hour", tzinfo=tz)
        else:
            keys[_alias(name)] = DIMENSIONS[name]
    order = [name if name in columns else _alias(name) for name in group_by]
    grouped = rows.values(*columns, **keys).annotate(**sums).order_by(*order) if group_by else []
    totals: dict[str, Any] = rows.aggregate(**sums)
    return Report(
        start=start,
        end=end,
        timezone=organization.timezone,
        side=side,
        group_by=list(group_by),
        rows=[_shaped(row, group_by, figures, tz) for row in grouped],
        totals=_shaped(totals, [], figures, tz),
    )


def rollups_of(*, organization: Organization, side: str) -> QuerySet[Rollup]:
    """The organization's rollup rows on ``side``: its seller rows, or its buyer rows."""
    if side == SELLER:
        return Rollup.objects.filter(seller=organization, contract__isnull=True)
    return Rollup.objects.filter(buyer=organization, contract__isnull=False)


def _alias(name: str) -> str:
    # A dimension's name in the query: most are also the names of the rollup's own columns.
    return f"by_{name}"


def _shaped(row: Mapping[str, Any], group_by: list[str], figures: dict[str, str], tz: Any) -> dict[str, Any]:
    shaped: dict[str, Any] = {}
    for name in group_by:
        value = row[name] if name.startswith("sub_id") else row[_alias(name)]
        if name == "day":
            value = value.astimezone(tz).date().isoformat()
        elif name == "hour":
            value = value.astimezone(tz).isoformat()
        shaped[name] = value
    for name in figures:
        value = row[name] or 0
        shaped[name] = money_str(Decimal(value)) if name in MONEY else int(value)
    return shaped


# --- the dashboards' further reads (still rollups only) -------------------------------------------


def day_bounds(*, tz: Any, start: date, end: date) -> tuple[datetime, datetime]:
    """[midnight of ``start``, midnight after ``end``) in ``tz``: the hours a range of days covers."""
    return datetime.combine(start, time.min, tzinfo=tz), datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz)


def rollup_sums(
    rows: QuerySet[Rollup],
    *,
    tz: Any,
    start: date,
    end: date,
    keys: Mapping[str, Any],
    columns: list[str],
    test: bool = False,
) -> list[dict[str, Any]]:
    """``rows`` of the days ``start``…``end`` (of ``tz``) summed by ``keys`` (name → expression;
    ``"day"`` → the day in ``tz``), one dict per group with the summed ``columns`` (0 for none),
    sorted by the keys. No keys: one dict, the totals."""
    since, until = day_bounds(tz=tz, start=start, end=end)
    rows = rows.filter(hour__gte=since, hour__lt=until, test=test)
    sums = {column: Sum(column) for column in columns}
    exprs = {name: (TruncDay("hour", tzinfo=tz) if expr == "day" else expr) for name, expr in keys.items()}
    if not exprs:
        return [_zeroed(rows.aggregate(**sums), columns)]
    aliased = {f"k_{name}": expr for name, expr in exprs.items()}
    grouped = rows.values(**aliased).annotate(**sums).order_by(*aliased)
    out = []
    for row in grouped:
        values: dict[str, Any] = dict(row)
        shaped = {name: values[f"k_{name}"] for name in exprs}
        for name, expr in keys.items():
            if expr == "day":
                shaped[name] = shaped[name].astimezone(tz).date()
        out.append({**shaped, **_zeroed(values, columns)})
    return out


def exchange_rollups(*, side: str) -> QuerySet[Rollup]:
    """Every organization's rollup rows on ``side`` (the operator's view)."""
    return Rollup.objects.filter(contract__isnull=side == SELLER)


def seller_buyer_rollups(*, organization: Organization) -> QuerySet[Rollup]:
    """The buyer rows of a seller's own leads (what each buyer's delivery did with them): the
    seller's per-campaign delivery rejects. Only the seller's campaigns; no buyer is named."""
    return Rollup.objects.filter(seller=organization, contract__isnull=False)


def reasons_of(
    *, organization: Organization | None, start: date, end: date, tz: Any, test: bool = False, limit: int | None = None
) -> list[dict[str, Any]]:
    """The waterfall's reasons counted (``ReasonRollup``) over the days, most frequent first:
    one buyer's (``organization``), or the whole exchange's (None). ``won`` is left out."""
    since, until = day_bounds(tz=tz, start=start, end=end)
    rows = ReasonRollup.objects.filter(hour__gte=since, hour__lt=until, test=test).exclude(reason="won")
    if organization is not None:
        rows = rows.filter(buyer=organization)
    counted = rows.values("reason").annotate(times=Sum("count")).order_by("-times", "reason")
    return [{"reason": row["reason"], "times": int(row["times"])} for row in counted[:limit]]


def _zeroed(row: Mapping[str, Any], columns: list[str]) -> dict[str, Any]:
    return {column: row[column] if row[column] is not None else 0 for column in columns}
