"""The dashboards' definitions: the date range a page is asked for, and every table it shows.

A dashboard page and its CSV exports build the same :class:`RangeForm` from the same query string
and the same table from the same function (``SELLER_TABLES``, ``BUYER_TABLES``, ``OPS_TABLES``),
so a CSV is always the table on the page. Figures come from the report selectors
(``reporting.reports``: the hourly rollups), never from raw pings.

Rates are percentages with one decimal (``None``, shown ``—``, when the denominator is 0); money is
the rollups' two-decimal amounts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.db.models import F
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import market_scope
from billing.models import ReconciliationRun
from contracts.models import BuyerContract, Campaign
from core.money import money_str
from exchange.sql import Latency, ping_latency_recent
from leads.reasons import reason_words
from reporting.reports import (
    BUYER,
    MAX_DAYS,
    SELLER,
    Report,
    exchange_rollups,
    reasons_of,
    report_of,
    rollup_sums,
    rollups_of,
    seller_buyer_rollups,
)

UTC = ZoneInfo("UTC")
RANGES = [
    ("today", "Today"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("month", "This month"),
    ("custom", "Custom"),
]
SUB_IDS = [(f"sub_id{n}", f"sub_id{n}") for n in range(1, 6)]
DATE_FORMATS = ["%Y-%m-%d"]


class RangeForm(forms.Form):
    """The dashboard's range: a preset, or ``from``…``to`` (days of the organization's zone, both
    included) for ``custom``; a seller's page also picks the sub-id it breaks down by. Presets end
    today. A missing or unreadable value is a form error, never a guess."""

    range = forms.ChoiceField(choices=RANGES, required=False, initial="7d")
    from_ = forms.DateField(
        required=False,
        input_formats=DATE_FORMATS,
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )
    to = forms.DateField(
        required=False,
        input_formats=DATE_FORMATS,
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )
    sub_id = forms.ChoiceField(choices=SUB_IDS, required=False, initial="sub_id1", label="Sub-id")

    def __init__(self, data: Any, *, today: date) -> None:
        super().__init__(data)
        self.today = today

    def add_prefix(self, field_name: str) -> str:
        # "from" is a keyword: the field is from_, its name in the query string is from.
        return "from" if field_name == "from_" else super().add_prefix(field_name)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        preset = cleaned.get("range") or ("custom" if self.data.get("from") or self.data.get("to") else "7d")
        cleaned["range"] = preset
        today = self.today
        if preset == "custom":
            start, end = cleaned.get("from_"), cleaned.get("to")
            if "from_" not in self.errors and start is None:
                self.add_error("from_", "Give the first day of a custom range.")
            if "to" not in self.errors and end is None:
                self.add_error("to", "Give the last day of a custom range.")
            if start and end:
                if end < start:
                    self.add_error("to", "The last day must be on or after the first day.")
                elif (end - start).days + 1 > MAX_DAYS:
                    self.add_error("to", f"A range covers at most {MAX_DAYS} days.")
        else:
            end = today
            start = {
                "today": today,
                "7d": today - timedelta(days=6),
                "30d": today - timedelta(days=29),
                "month": today.replace(day=1),
            }[preset]
        cleaned["start"], cleaned["end"] = start, end
        cleaned["sub_id"] = cleaned.get("sub_id") or "sub_id1"
        return cleaned

    @property
    def picked(self) -> str:
        """The range shown (or asked for, when the form has errors)."""
        if self.is_valid():
            return str(self.cleaned_data["range"])
        asked = self.data.get("range")
        return asked if asked in dict(RANGES) else "custom"

    @property
    def sub_id_picked(self) -> str:
        asked = self.data.get("sub_id")
        return asked if asked in dict(SUB_IDS) else "sub_id1"

    @property
    def start_text(self) -> str:
        return f"{self.cleaned_data['start']:%Y-%m-%d}" if self.is_valid() else ""

    @property
    def end_text(self) -> str:
        return f"{self.cleaned_data['end']:%Y-%m-%d}" if self.is_valid() else ""

    def query(self) -> str:
        """The range as a query string, for the CSV links and the tabs."""
        c = self.cleaned_data
        parts = [f"range={c['range']}"]
        if c["range"] == "custom":
            parts += [f"from={c['start']:%Y-%m-%d}", f"to={c['end']:%Y-%m-%d}"]
        parts.append(f"sub_id={c['sub_id']}")
        return "&".join(parts)


def today_in(tz: Any) -> date:
    return timezone.now().astimezone(tz).date()


# --- tables -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "int"  # int, money, rate (a percentage), text


@dataclass
class Table:
    slug: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    totals: dict[str, Any] | None = None
    empty: str = "Nothing in this range."
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def cells(self, row: dict[str, Any]) -> list[tuple[Column, str]]:
        return [(c, display(row.get(c.key), c.kind)) for c in self.columns]

    @property
    def body(self) -> list[list[tuple[Column, str]]]:
        return [self.cells(row) for row in self.rows]

    @property
    def foot(self) -> list[tuple[Column, str]] | None:
        return self.cells(self.totals) if self.totals is not None else None

    def csv_rows(self) -> Iterable[list[Any]]:
        for row in self.rows:
            yield [csv_value(row.get(c.key), c.kind) for c in self.columns]
        if self.totals is not None:
            yield [csv_value(self.totals.get(c.key), c.kind) for c in self.columns]

    @property
    def csv_header(self) -> list[str]:
        return [f"{c.label} (%)" if c.kind == "rate" else c.label for c in self.columns]


def every_day(rows: list[dict[str, Any]], *, start: date, end: date, zero: dict[str, Any]) -> list[dict[str, Any]]:
    """``rows`` (one per day with traffic, ``day`` as YYYY-MM-DD) with a ``zero`` row for each
    other day of the range, so the table beside the chart has the chart's every point."""
    by_day = {row["day"]: row for row in rows}
    days = [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]
    return [by_day.get(day) or {**zero, "day": day} for day in days]


def rate(part: Any, whole: Any) -> Decimal | None:
    """``part`` ÷ ``whole`` as a percentage with one decimal; None when ``whole`` is 0."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def average(amount: Any, count: Any) -> Decimal | None:
    if not count:
        return None
    return (Decimal(amount) / Decimal(count)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def display(value: Any, kind: str) -> str:
    if value is None or value == "":
        return "—"
    if kind == "money":
        return f"${Decimal(value):,.2f}"
    if kind == "rate":
        return f"{value} %"
    if kind == "int":
        return f"{int(value):,}"
    return str(value)


def csv_value(value: Any, kind: str) -> Any:
    if value is None:
        return ""
    if kind == "money":
        return money_str(Decimal(value))
    return value


# --- the seller's dashboard -----------------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    """What a table is built for: the organization (None on /ops/), the days, the zone, the sub-id."""

    organization: Organization | None
    start: date
    end: date
    tz: Any
    sub_id: str = "sub_id1"


SELLER_COLUMNS = [
    Column("pings", "Pings"),
    Column("sold", "Sold"),
    Column("sell_through", "Sell-through", "rate"),
    Column("revenue", "Revenue", "money"),
    Column("avg_payout", "Avg payout", "money"),
    Column("returned", "Returned"),
    Column("return_rate", "Return rate", "rate"),
    Column("conversions", "Conversions"),
    Column("conversion_rate", "Conversion rate", "rate"),
]


def seller_figures(row: dict[str, Any]) -> dict[str, Any]:
    """A seller report row's dashboard figures. Revenue is the payouts earned before returns
    (the report's ``amount``); returns show as their count and rate."""
    amount = Decimal(row["amount"])
    return {
        "pings": row["pings"],
        "sold": row["sold"],
        "sell_through": rate(row["sold"], row["pings"]),
        "revenue": amount,
        "returned_amount": Decimal(row["returned_amount"]),
        "avg_payout": average(amount, row["sold"]),
        "returned": row["returned"],
        "return_rate": rate(row["returned"], row["sold"]),
        "conversions": row["conversions"],
        "conversion_rate": rate(row["conversions"], row["sold"]),
    }


def _seller_report(ask: Ask, group_by: list[str]) -> Report:
    assert ask.organization is not None
    return report_of(organization=ask.organization, side=SELLER, start=ask.start, end=ask.end, group_by=group_by)


def seller_by_day(ask: Ask) -> Table:
    report = _seller_report(ask, ["day"])
    zero = seller_figures({name: 0 for name in report.totals})
    rows = every_day(
        [{"day": row["day"], **seller_figures(row)} for row in report.rows], start=ask.start, end=ask.end, zero=zero
    )
    return Table(
        "by-day",
        "By day",
        [Column("day", "Day", "text"), *SELLER_COLUMNS],
        rows,
        {"day": "Total", **seller_figures(report.totals)},
        empty="No pings in this range. Send leads to a campaign (see Campaigns) and they show here within a minute.",
    )


def seller_by_campaign(ask: Ask) -> Table:
    report = _seller_report(ask, ["campaign"])
    names = dict(Campaign.objects.filter(organization=ask.organization).values_list("public_id", "name"))
    rows = [
        {"campaign": names.get(row["campaign"], row["campaign"]), "campaign_id": row["campaign"], **seller_figures(row)}
        for row in report.rows
    ]
    columns = [Column("campaign", "Campaign", "text"), Column("campaign_id", "Id", "text"), *SELLER_COLUMNS]
    return Table("by-campaign", "By campaign", columns, rows, empty="No campaign had traffic in this range.")


def seller_by_sub_id(ask: Ask) -> Table:
    report = _seller_report(ask, [ask.sub_id])
    rows = [{"sub_id": row[ask.sub_id] or "(none)", **seller_figures(row)} for row in report.rows]
    return Table(
        "by-sub-id",
        f"By {ask.sub_id}",
        [Column("sub_id", ask.sub_id, "text"), *SELLER_COLUMNS],
        rows,
        empty=f"No traffic in this range. Send tracking.{ask.sub_id} with your leads to break them down here.",
    )


QUALITY_COLUMNS = [
    Column("sold", "Sold"),
    Column("returned", "Returned"),
    Column("return_rate", "Return rate", "rate"),
    Column("delivery_rejects", "Delivery rejects"),
    Column("delivery_reject_rate", "Delivery reject rate", "rate"),
    Column("conversions", "Conversions"),
    Column("conversion_rate", "Conversion rate", "rate"),
]


def quality_figures(row: dict[str, Any]) -> dict[str, Any]:
    """Return, delivery-reject and conversion rates of sales (buyer rows: one per sale)."""
    sold = row["sold"]
    return {
        "sold": sold,
        "returned": row["returned"],
        "return_rate": rate(row["returned"], sold),
        "delivery_rejects": row["delivery_rejects"],
        "delivery_reject_rate": rate(row["delivery_rejects"], sold + row["delivery_rejects"]),
        "conversions": row["conversions"],
        "conversion_rate": rate(row["conversions"], sold),
    }


QUALITY_SUMS = ["sold", "returned", "delivery_rejects", "conversions"]
QUALITY_NOTE = (
    "Per sale (a lead sold to two buyers counts twice). Delivery reject rate: rejected deliveries ÷ "
    "(sales + rejected deliveries)."
)


def seller_quality(ask: Ask) -> Table:
    assert ask.organization is not None
    rows = rollup_sums(
        seller_buyer_rollups(organization=ask.organization),
        tz=ask.tz,
        start=ask.start,
        end=ask.end,
        keys={"campaign_id": F("campaign__public_id"), "campaign": F("campaign__name")},
        columns=QUALITY_SUMS,
    )
    return Table(
        "quality",
        "Quality by campaign",
        [Column("campaign", "Campaign", "text"), *QUALITY_COLUMNS],
        [{**row, **quality_figures(row)} for row in rows],
        empty="No sales in this range yet.",
        note=QUALITY_NOTE,
    )


SELLER_TABLES: dict[str, Callable[[Ask], Table]] = {
    "by-day": seller_by_day,
    "by-campaign": seller_by_campaign,
    "by-sub-id": seller_by_sub_id,
    "quality": seller_quality,
}


# --- the buyer's dashboard ----------------------------------------------------------------------

BUYER_COLUMNS = [
    Column("evaluated", "Evaluated"),
    Column("won", "Won"),
    Column("win_rate", "Win rate", "rate"),
    Column("sold", "Bought"),
    Column("spend", "Spend", "money"),
    Column("avg_price", "Avg price", "money"),
    Column("return_rate", "Return rate", "rate"),
    Column("conversion_rate", "Conversion rate", "rate"),
]


def buyer_figures(row: dict[str, Any]) -> dict[str, Any]:
    """A buyer report row's dashboard figures. Spend is the prices paid before refunds (the
    report's ``amount``); win rate is wins ÷ pings the contract was evaluated on."""
    amount = Decimal(row["amount"])
    return {
        "evaluated": row["evaluated"],
        "won": row["won"],
        "win_rate": rate(row["won"], row["evaluated"]),
        "sold": row["sold"],
        "spend": amount,
        "avg_price": average(amount, row["sold"]),
        "returned": row["returned"],
        "return_rate": rate(row["returned"], row["sold"]),
        "conversions": row["conversions"],
        "conversion_rate": rate(row["conversions"], row["sold"]),
    }


def _buyer_report(ask: Ask, group_by: list[str]) -> Report:
    assert ask.organization is not None
    return report_of(organization=ask.organization, side=BUYER, start=ask.start, end=ask.end, group_by=group_by)


def buyer_by_day(ask: Ask) -> Table:
    report = _buyer_report(ask, ["day"])
    zero = buyer_figures({name: 0 for name in report.totals})
    return Table(
        "by-day",
        "By day",
        [Column("day", "Day", "text"), *BUYER_COLUMNS],
        every_day(
            [{"day": row["day"], **buyer_figures(row)} for row in report.rows], start=ask.start, end=ask.end, zero=zero
        ),
        {"day": "Total", **buyer_figures(report.totals)},
        empty="No pings reached your contracts in this range. Check that a contract is active (Contracts).",
    )


def buyer_by_contract(ask: Ask) -> Table:
    report = _buyer_report(ask, ["contract"])
    names = dict(BuyerContract.objects.filter(organization=ask.organization).values_list("public_id", "name"))
    rows = [
        {"contract": names.get(row["contract"], row["contract"]), "contract_id": row["contract"], **buyer_figures(row)}
        for row in report.rows
    ]
    columns = [Column("contract", "Contract", "text"), Column("contract_id", "Id", "text"), *BUYER_COLUMNS]
    return Table("by-contract", "By contract", columns, rows, empty="No contract was evaluated in this range.")


def buyer_by_source(ask: Ask) -> Table:
    report = _buyer_report(ask, ["source"])
    rows = [{"source": row["source"], **buyer_figures(row)} for row in report.rows]
    return Table(
        "by-source",
        "By source",
        [Column("source", "Source", "text"), *BUYER_COLUMNS],
        rows,
        empty="No source sent you pings in this range.",
        note="A source is a seller's campaign, by its opaque token (the same token your contract's source bids use).",
    )


def buyer_quality(ask: Ask) -> Table:
    assert ask.organization is not None
    rows = report_of(organization=ask.organization, side=BUYER, start=ask.start, end=ask.end, group_by=["source"]).rows
    rejects = {
        row["source"]: row["delivery_rejects"]
        for row in rollup_sums(
            rollups_of(organization=ask.organization, side=BUYER),
            tz=ask.tz,
            start=ask.start,
            end=ask.end,
            keys={"source": F("campaign__source_token")},
            columns=["delivery_rejects"],
        )
    }
    shaped = [
        {"source": row["source"], **quality_figures({**row, "delivery_rejects": rejects.get(row["source"], 0)})}
        for row in rows
        if row["sold"] or rejects.get(row["source"])
    ]
    return Table(
        "quality",
        "Quality by source",
        [Column("source", "Source", "text"), *QUALITY_COLUMNS],
        shaped,
        empty="You bought nothing in this range yet.",
        note=QUALITY_NOTE,
    )


def buyer_lost(ask: Ask) -> Table:
    counted = reasons_of(organization=ask.organization, start=ask.start, end=ask.end, tz=ask.tz)
    total = sum(row["times"] for row in counted)
    rows = [
        {
            "reason": reason_words(row["reason"]),
            "code": row["reason"],
            "times": row["times"],
            "share": rate(row["times"], total),
        }
        for row in counted
    ]
    return Table(
        "lost",
        "Why I lost",
        [
            Column("reason", "Reason", "text"),
            Column("code", "Code", "text"),
            Column("times", "Times"),
            Column("share", "Share", "rate"),
        ],
        rows,
        empty="Nothing lost in this range: every ping your contracts were evaluated on, they won (or none came).",
        note="Every time one of your contracts was evaluated on a ping and did not win, by the waterfall's reason.",
    )


BUYER_TABLES: dict[str, Callable[[Ask], Table]] = {
    "by-day": buyer_by_day,
    "by-contract": buyer_by_contract,
    "by-source": buyer_by_source,
    "quality": buyer_quality,
    "lost": buyer_lost,
}


# --- the operator's page (/ops/): the whole exchange, real traffic, days in UTC ------------------------

OPS_DAY_COLUMNS = [
    Column("day", "Day", "text"),
    Column("pings", "Pings"),
    Column("posted", "Posted"),
    Column("sold", "Sold"),
    Column("unsold", "Unsold"),
    Column("revenue", "Revenue", "money"),
    Column("payout", "Payouts", "money"),
    Column("margin", "Margin", "money"),
]
OPS_SUMS = ["pings", "posted", "sold", "unsold", "price", "payout", "margin", "returned_price", "returned_payout"]


def _ops_figures(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "revenue": row["price"]}


def ops_by_day(ask: Ask) -> Table:
    rows = exchange_rollups(side=SELLER)
    kwargs: dict[str, Any] = {"tz": ask.tz, "start": ask.start, "end": ask.end, "columns": OPS_SUMS}
    days = rollup_sums(rows, keys={"day": "day"}, **kwargs)
    (totals,) = rollup_sums(rows, keys={}, **kwargs)
    return Table(
        "by-day",
        "Volume, revenue and margin by day",
        OPS_DAY_COLUMNS,
        every_day(
            [{**_ops_figures(row), "day": row["day"].isoformat()} for row in days],
            start=ask.start,
            end=ask.end,
            zero=_ops_figures(dict.fromkeys(OPS_SUMS, 0)),
        ),
        {**_ops_figures(totals), "day": "Total"},
        empty="No traffic in this range.",
        note="Revenue: what buyers paid; payouts: what sellers earned; margin: the exchange's take — before returns.",
    )


def ops_buyers(ask: Ask) -> Table:
    """Each buyer's RTB health and deliveries: timeouts, errors, breaker holds, delivery rejects."""
    rows = rollup_sums(
        exchange_rollups(side=BUYER),
        tz=ask.tz,
        start=ask.start,
        end=ask.end,
        keys={"buyer_id": F("buyer_id"), "buyer": F("buyer__name")},
        columns=["evaluated", "rtb_timeouts", "rtb_errors", "sold", "delivery_rejects"],
    )
    with market_scope():
        held: dict[int, int] = {}
        for organization_id in BuyerContract.objects.filter(hold=BuyerContract.Hold.BREAKER).values_list(
            "organization_id", flat=True
        ):
            held[organization_id] = held.get(organization_id, 0) + 1
        rtb = set(BuyerContract.objects.exclude(rtb_url="").values_list("organization_id", flat=True))
        names = dict(
            Organization.objects.filter(id__in=set(held) - {r["buyer_id"] for r in rows}).values_list("id", "name")
        )
    shaped = []
    for row in rows:
        shaped.append(
            {
                **row,
                "rtb": "yes" if row["buyer_id"] in rtb else "no",
                "timeout_rate": rate(row["rtb_timeouts"], row["evaluated"]) if row["buyer_id"] in rtb else None,
                "breaker_holds": held.get(row["buyer_id"], 0),
                "delivery_reject_rate": rate(row["delivery_rejects"], row["sold"] + row["delivery_rejects"]),
            }
        )
    for organization_id, name in names.items():  # held now, no traffic in the range
        zero = dict.fromkeys(["evaluated", "rtb_timeouts", "rtb_errors", "sold", "delivery_rejects"], 0)
        shaped.append({"buyer": name, **zero, "rtb": "yes", "breaker_holds": held[organization_id]})
    shaped.sort(key=lambda r: (-r["breaker_holds"], -(r["rtb_timeouts"] + r["rtb_errors"]), r["buyer"]))
    return Table(
        "buyers",
        "Buyers: RTB health and deliveries",
        [
            Column("buyer", "Buyer", "text"),
            Column("rtb", "RTB", "text"),
            Column("evaluated", "Evaluated"),
            Column("rtb_timeouts", "Timeouts"),
            Column("timeout_rate", "Timeout rate", "rate"),
            Column("rtb_errors", "Errors"),
            Column("breaker_holds", "Breaker holds now"),
            Column("sold", "Sold"),
            Column("delivery_rejects", "Delivery rejects"),
            Column("delivery_reject_rate", "Reject rate", "rate"),
        ],
        shaped,
        empty="No buyer was evaluated in this range.",
        note="Breaker holds: the buyer's contracts the RTB circuit breaker holds right now.",
    )


def ops_reasons(ask: Ask) -> Table:
    counted = reasons_of(organization=None, start=ask.start, end=ask.end, tz=ask.tz, limit=12)
    total = sum(row["times"] for row in counted)
    return Table(
        "reasons",
        "Top rejection reasons",
        [
            Column("reason", "Reason", "text"),
            Column("code", "Code", "text"),
            Column("times", "Times"),
            Column("share", "Share", "rate"),
        ],
        [
            {
                "reason": reason_words(row["reason"]),
                "code": row["reason"],
                "times": row["times"],
                "share": rate(row["times"], total),
            }
            for row in counted
        ],
        empty="No contract was turned down in this range.",
        note="Why contracts did not win the pings they were evaluated on (the 12 most frequent; share of these).",
    )


def ops_quality(ask: Ask) -> Table:
    rows = rollup_sums(
        exchange_rollups(side=BUYER),
        tz=ask.tz,
        start=ask.start,
        end=ask.end,
        keys={"seller": F("seller__name"), "campaign": F("campaign__name"), "source": F("campaign__source_token")},
        columns=QUALITY_SUMS,
    )
    return Table(
        "quality",
        "Quality by campaign (source)",
        [
            Column("seller", "Seller", "text"),
            Column("campaign", "Campaign", "text"),
            Column("source", "Source", "text"),
            *QUALITY_COLUMNS,
        ],
        [{**row, **quality_figures(row)} for row in rows if row["sold"] or row["delivery_rejects"]],
        empty="No sales in this range.",
        note=QUALITY_NOTE,
    )


OPS_TABLES: dict[str, Callable[[Ask], Table]] = {
    "by-day": ops_by_day,
    "buyers": ops_buyers,
    "reasons": ops_reasons,
    "quality": ops_quality,
}


@dataclass(frozen=True)
class Health:
    latency: Latency
    reconciliation: ReconciliationRun | None


def ops_health() -> Health:
    """Right now: ping latency over the latest pings (a bounded read), the last reconciliation."""
    return Health(latency=ping_latency_recent(window=10_000), reconciliation=ReconciliationRun.objects.first())
