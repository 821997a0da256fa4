"""The exchange's hand-written SQL: the one reporting read written per dialect (the buyers'
figures of the pings' waterfalls), and a post's statements on its sales (run on
:func:`core.sql.bound_cursor`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import Q

from contracts.models import BuyerContract
from core.sql import SqlPart, sql_time
from exchange.models import Ping, Sale

Hours = Sequence[tuple[datetime, datetime]]  # [start, end) ranges of whole hours


# --- the buyers' figures of the pings' waterfalls (reporting's fold) ----------------------------
#
# Both return (hour, seller, offer, campaign, buyer, contract, test, evaluated, bids, wins,
# rtb_timeouts, rtb_errors) of the pings ``after_id < id <= upto_id`` (within ``hours`` if given),
# one row per contract a ping's waterfall evaluated (a step naming no known contract is left out;
# a waterfall that is not a list has no steps). Callers hold ``market_scope``.

BIDS, WINS, TIMEOUTS, ERRORS = ("won", "outbid"), ("won",), ("rtb_timeout",), ("rtb_error", "rtb_invalid")


def ping_facts_buyer_postgres(*, after_id: int, upto_id: int, hours: Hours | None) -> list[tuple[Any, ...]]:
    """PostgreSQL unnests each ping's waterfall and sums the steps in one statement: the rows
    never leave the database (make bench-reports: the fold's rate is mostly this statement)."""
    where, params = _hours_where("p.created_at", hours) if hours is not None else ("TRUE", [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT date_trunc('hour', p.created_at), p.organization_id, p.offer_id, p.campaign_id,
                   c.organization_id, c.id, p.test,
                   count(*),
                   count(*) FILTER (WHERE w.step ->> 'reason' IN ('won', 'outbid')),
                   count(*) FILTER (WHERE w.step ->> 'reason' = 'won'),
                   count(*) FILTER (WHERE w.step ->> 'reason' = 'rtb_timeout'),
                   count(*) FILTER (WHERE w.step ->> 'reason' IN ('rtb_error', 'rtb_invalid'))
            FROM {Ping._meta.db_table} p
            CROSS JOIN LATERAL jsonb_array_elements(
                CASE WHEN jsonb_typeof(p.waterfall) = 'array' THEN p.waterfall ELSE '[]'::jsonb END
            ) AS w(step)
            JOIN {BuyerContract._meta.db_table} c ON c.public_id = w.step ->> 'contract'
            WHERE p.id > %s AND p.id <= %s AND {where}
            GROUP BY 1, 2, 3, 4, 5, 6, 7
            """,  # nosec B608  # names and placeholders only
            [after_id, upto_id, *params],
        )
        return list(cursor.fetchall())


def _contract_steps(
    *, after_id: int, upto_id: int, hours: Hours | None, columns: tuple[str, ...]
) -> Iterator[tuple[list[Any], datetime, tuple[int, int], dict[str, Any]]]:
    """Any database (SQLite, the embedded default): every step of the pings' waterfalls that names
    a known contract — the ping's ``columns``, its UTC hour, the contract's (buyer, id) and the
    step — read through the ORM a few thousand pings at a time (the demo's volumes are small)."""
    pings = Ping.objects.filter(id__gt=after_id, id__lte=upto_id)
    if hours is not None:
        pings = pings.filter(hours_q("created_at", hours))
    contracts = {
        public_id: (org, pk)
        for public_id, org, pk in BuyerContract.objects.values_list("public_id", "organization_id", "id")
    }
    rows = pings.order_by().values_list("created_at", "waterfall", *columns).iterator(chunk_size=2000)
    for created_at, waterfall, *values in rows:
        if not isinstance(waterfall, list):
            continue
        hour = created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        for step in waterfall:
            name = step.get("contract") if isinstance(step, dict) else None
            contract = contracts.get(name) if isinstance(name, str) else None
            if contract is not None:
                yield values, hour, contract, step


def ping_facts_buyer_portable(*, after_id: int, upto_id: int, hours: Hours | None) -> list[tuple[Any, ...]]:
    """Any database: the pings' waterfall steps summed here (:func:`_contract_steps`)."""
    sums: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    columns = ("organization_id", "offer_id", "campaign_id", "test")
    for (seller, offer, campaign, test), hour, contract, step in _contract_steps(
        after_id=after_id, upto_id=upto_id, hours=hours, columns=columns
    ):
        reason = step.get("reason")
        row = sums[(hour, seller, offer, campaign, *contract, test)]
        row[0] += 1
        row[1] += reason in BIDS
        row[2] += reason in WINS
        row[3] += reason in TIMEOUTS
        row[4] += reason in ERRORS
    return [(*key, *figures) for key, figures in sums.items()]


def ping_reason_facts_postgres(*, after_id: int, upto_id: int, hours: Hours | None) -> list[tuple[Any, ...]]:
    """The waterfalls' reasons counted per hour and contract, unnested in one statement."""
    where, params = _hours_where("p.created_at", hours) if hours is not None else ("TRUE", [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT date_trunc('hour', p.created_at), c.organization_id, c.id, p.test,
                   left(coalesce(nullif(w.step ->> 'reason', ''), 'unknown'), 64), count(*)
            FROM {Ping._meta.db_table} p
            CROSS JOIN LATERAL jsonb_array_elements(
                CASE WHEN jsonb_typeof(p.waterfall) = 'array' THEN p.waterfall ELSE '[]'::jsonb END
            ) AS w(step)
            JOIN {BuyerContract._meta.db_table} c ON c.public_id = w.step ->> 'contract'
            WHERE p.id > %s AND p.id <= %s AND {where}
            GROUP BY 1, 2, 3, 4, 5
            """,  # nosec B608  # names and placeholders only
            [after_id, upto_id, *params],
        )
        return list(cursor.fetchall())


def ping_reason_facts_portable(*, after_id: int, upto_id: int, hours: Hours | None) -> list[tuple[Any, ...]]:
    """Any database: the same counts, the waterfalls' steps counted here (:func:`_contract_steps`)."""
    counts: dict[tuple[Any, ...], int] = defaultdict(int)
    for (test,), hour, contract, step in _contract_steps(
        after_id=after_id, upto_id=upto_id, hours=hours, columns=("test",)
    ):
        reason = step.get("reason")
        reason = (reason if isinstance(reason, str) and reason else "unknown")[:64]
        counts[(hour, *contract, test, reason)] += 1
    return [(*key, count) for key, count in counts.items()]


@dataclass(frozen=True)
class Latency:
    """Ping latency over the latest ``pings`` pings (at most the window asked for), in ms."""

    pings: int
    p50: float | None
    p99: float | None
    since: datetime | None


def ping_latency_recent(*, window: int = 10_000, since: datetime | None = None) -> Latency:
    """The median and 99th percentile of the latest ``window`` pings' answer times (re-auctions,
    the exchange's own, left out), optionally only those since ``since``. Bounded: it reads the
    newest ``window`` rows by primary key, never the whole table. PostgreSQL's percentile_cont;
    elsewhere the same percentiles computed here over the same rows."""
    table = Ping._meta.db_table
    after = "AND created_at >= %s" if since is not None else ""
    latest = f"SELECT latency_ms, created_at FROM {table} WHERE source <> %s {after} ORDER BY id DESC LIMIT %s"  # nosec B608  # names and placeholders only
    params: list[Any] = [str(Ping.Source.REAUCTION), *([since] if since is not None else []), window]
    if connection.vendor == "postgresql":
        (count, p50, p99, first), *_ = _cursor_rows(
            f"""
            SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms), min(created_at)
            FROM ({latest}) recent
            """,  # nosec B608  # names and placeholders only
            params,
        )
        return Latency(pings=count, p50=p50, p99=p99, since=first)
    rows = _cursor_rows(latest, params)
    values = sorted(float(r[0]) for r in rows)
    return Latency(
        pings=len(values),
        p50=_percentile(values, 0.5),
        p99=_percentile(values, 0.99),
        since=min((r[1] for r in rows), default=None),
    )


def _percentile(values: list[float], fraction: float) -> float | None:
    # percentile_cont's linear interpolation between the closest ranks.
    if not values:
        return None
    position = fraction * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _cursor_rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _hours_where(column: str, hours: Hours) -> tuple[str, list[Any]]:
    if not hours:
        return "FALSE", []
    params: list[Any] = []
    for start, end in hours:
        params += [start, end]
    return "(" + " OR ".join([f"({column} >= %s AND {column} < %s)"] * len(hours)) + ")", params


def hours_q(field: str, hours: Hours) -> Q:
    """Keeps the rows whose ``field`` falls in one of ``hours`` (none when ``hours`` is empty)."""
    q = Q(pk__in=[])
    for start, end in hours:
        q |= Q(**{f"{field}__gte": start, f"{field}__lt": end})
    return q


# --- a post's sales: statements with a constant text, on core.sql.bound_cursor ---------------------

_SALES = Sale._meta.db_table


def bought_recently(
    *, organization_id: int, hashes: Sequence[str], statuses: Sequence[str], since: datetime
) -> SqlPart:
    """A row if the buyer bought a live, non-test sale of one of these consumers since ``since``
    (the dedup check; the sales' email and phone indexes answer it)."""
    consumers = ", ".join(["%s"] * len(hashes))
    live = ", ".join(["%s"] * len(statuses))
    return (
        f"SELECT 1 FROM {_SALES} WHERE (email_hash IN ({consumers}) OR phone_hash IN ({consumers})) "  # nosec B608  # names and placeholders only
        f"AND organization_id = %s AND status IN ({live}) AND test = %s AND created_at >= %s LIMIT 1",
        [*hashes, *hashes, organization_id, *statuses, False, sql_time(since)],
    )


def sale_moved(sale_id: int, *, before: str, after: str, changes: Mapping[str, object]) -> SqlPart:
    """Move one sale from status ``before`` to ``after`` with these other column values (a
    compare-and-set). Returns its id, or no row when it was no longer ``before``."""
    sets = "".join(f", {column} = %s" for column in changes)
    return (
        f"UPDATE {_SALES} SET status = %s{sets} WHERE id = %s AND status = %s RETURNING id",  # nosec B608  # names and placeholders only
        [after, *(sql_time(v) if isinstance(v, datetime) else v for v in changes.values()), sale_id, before],
    )


def ping_claimed(ping_id: int, now: datetime) -> SqlPart:
    """Mark a ping posted, if no post claimed it yet (a compare-and-set). Returns its id, or no row."""
    return (
        f"UPDATE {Ping._meta.db_table} SET posted_at = %s WHERE id = %s AND posted_at IS NULL RETURNING id",  # nosec B608  # names and placeholders only
        [sql_time(now), ping_id],
    )
