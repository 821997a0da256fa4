"""Reads of the market's rows for other apps: a seller's view of its lead's sales, the expected holds,
and the exchange-wide facts reporting folds into its hourly rollups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count, Max, OuterRef, Q, Subquery, Sum

from accounts.models import Organization
from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from exchange.models import DeliveryAttempt, Ping, Sale
from exchange.returns.models import Return
from leads.models import Lead


def lead_sales_for_seller(*, seller: Organization, lead: Lead) -> list[dict[str, Any]]:
    """The sales of the seller's lead, without naming the buyers (sales belong to buyers, so this
    reads across tenants, filtered by the seller)."""
    with market_scope():
        sales = Sale.objects.filter(seller=seller, lead=lead).order_by("created_at")
        return [
            {"sale_id": s.public_id, "status": s.status, "payout": f"{s.payout:.2f}", "sold_at": s.sold_at}
            for s in sales
        ]


def lead_auctions_for_seller(*, seller: Organization, lead: Lead) -> list[dict[str, Any]]:
    """The auctions the seller's lead went through, oldest first: its own ping (cycle 0) and each
    background re-auction (cycle 1, 2, …), each with when it ran, its outcome and how many bids
    it had — no buyer named, no waterfall (those are the operator's, in the admin)."""
    fingerprints = {Ping.reauction_fingerprint(lead.public_id, c): c for c in range(1, lead.reauction_cycle + 1)}
    found = Q(pk=lead.ping_id) if lead.ping_id else Q(pk__in=[])
    if fingerprints:
        found |= Q(fingerprint__in=list(fingerprints), source=Ping.Source.REAUCTION)
    with market_scope():
        pings = (
            Ping.objects.filter(found, organization=seller)
            .annotate(bid_count=Count("bids"))
            .order_by("created_at")
            .values_list(
                "public_id", "fingerprint", "source", "created_at", "status", "reason", "waterfall", "bid_count"
            )
        )
        return [
            {
                "cycle": fingerprints.get(fingerprint, 0) if source == Ping.Source.REAUCTION else 0,
                "ping_id": public_id,
                "at": created_at,
                "status": status,
                "reason": reason or None,
                "direct": _direct_outcome(waterfall),
                "bids": bid_count,
            }
            for public_id, fingerprint, source, created_at, status, reason, waterfall, bid_count in pings
        ]


def _direct_outcome(waterfall: object) -> str | None:
    """What the campaign's direct route did in a ping: ``won``, why it could not take the lead, or
    None when the ping did not draw it."""
    first = waterfall[0] if isinstance(waterfall, list) and waterfall else None
    if isinstance(first, dict) and first.get("step") == "direct":
        return str(first.get("reason"))
    return None


def holds_expected() -> Subquery:
    """What each buyer (``OuterRef("organization")``) should have held: the prices of its real
    sales still being delivered. The ledger's reconciliation compares it with the buyer's ``held``."""
    return Subquery(
        Sale.objects.filter(organization=OuterRef("organization"), status=Sale.Status.RESERVED, test=False)
        .order_by()
        .values("organization")
        .annotate(total=Sum("price"))
        .values("total")
    )


# --- facts for reporting's rollups ---------------------------------------------------------------
#
# Exchange-wide reads for the operator's fold (``reporting.services``), not a tenant's: they take
# no organization. Each returns plain tuples grouped by hour (UTC, the connection's time zone) and
# the rollup's dimensions, summed in SQL so the fold moves aggregates, not rows.

Hours = Sequence[tuple[datetime, datetime]]  # [start, end) ranges of whole hours


def sub_ids_sql(alias: str) -> str:
    """The five sub-ids of ``alias.tracking`` as SQL columns: text, at most 100 characters, '' when absent."""
    return ", ".join(f"left(coalesce({alias}.tracking ->> 'sub_id{n}', ''), 100)" for n in range(1, 6))


def hours_where(column: str, hours: Hours) -> tuple[str, list[Any]]:
    """SQL (and its parameters) keeping the rows whose ``column`` falls in one of ``hours``."""
    if not hours:
        return "FALSE", []
    params: list[Any] = []
    for start, end in hours:
        params += [start, end]
    return "(" + " OR ".join([f"({column} >= %s AND {column} < %s)"] * len(hours)) + ")", params


def _rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def ping_last_settled_id(*, before: datetime) -> int:
    """The highest ping id created before ``before`` (0 when none): the fold takes pings up to it,
    leaving the last moments' pings, whose transactions may still be open, to the next run."""
    with market_scope():
        return Ping.objects.filter(created_at__lt=before).aggregate(last=Max("id"))["last"] or 0


def ping_facts_seller(*, after_id: int, upto_id: int, hours: Hours | None = None) -> list[tuple[Any, ...]]:
    """The sellers' ping figures of pings ``after_id < id <= upto_id`` (and within ``hours`` if
    given): (hour, seller, offer, campaign, sub_id1…5, test, pings, accepted). Re-auctions are the
    exchange's own pings, not the seller's: left out."""
    where, params = hours_where("p.created_at", hours) if hours is not None else ("TRUE", [])
    return _rows(
        f"""
        SELECT date_trunc('hour', p.created_at), p.organization_id, p.offer_id, p.campaign_id, {sub_ids_sql("p")},
               p.test, count(*), count(*) FILTER (WHERE p.status = %s)
        FROM {Ping._meta.db_table} p
        WHERE p.id > %s AND p.id <= %s AND p.source <> %s AND {where}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
        """,
        [Ping.Status.ACCEPTED, after_id, upto_id, Ping.Source.REAUCTION, *params],
    )


def ping_facts_buyer(*, after_id: int, upto_id: int, hours: Hours | None = None) -> list[tuple[Any, ...]]:
    """The buyers' figures of the same pings' waterfalls (re-auctions included: the contract was
    asked again): (hour, seller, offer, campaign, buyer, contract, test, evaluated, bids, wins,
    rtb_timeouts, rtb_errors). A bid is a step that ranked (``won`` or ``outbid``)."""
    where, params = hours_where("p.created_at", hours) if hours is not None else ("TRUE", [])
    return _rows(
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
        """,
        [after_id, upto_id, *params],
    )


def ping_reason_facts(*, after_id: int, upto_id: int, hours: Hours | None = None) -> list[tuple[Any, ...]]:
    """Why each contract did or did not win the same pings' waterfalls, counted: (hour, buyer,
    contract, test, reason, count). The reason is the step's code (``outbid``, ``filtered:state``,
    ``cap_reached:day``…), cut to 64 characters; a step without one counts as ``unknown``."""
    where, params = hours_where("p.created_at", hours) if hours is not None else ("TRUE", [])
    return _rows(
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
        """,
        [after_id, upto_id, *params],
    )


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
    latest = f"SELECT latency_ms, created_at FROM {table} WHERE source <> %s {after} ORDER BY id DESC LIMIT %s"
    params: list[Any] = [str(Ping.Source.REAUCTION), *([since] if since is not None else []), window]
    if connection.vendor == "postgresql":
        (count, p50, p99, first), *_ = _rows(
            f"""
            SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms), min(created_at)
            FROM ({latest}) recent
            """,
            params,
        )
        return Latency(pings=count, p50=p50, p99=p99, since=first)
    rows = _rows(latest, params)
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


def lead_hours_changed(*, since: datetime) -> list[datetime]:
    """The hours (lead posting hours) whose leads, sales, returns or deliveries changed since
    ``since``: a lead's outcome set, a sale made or booked, a return decided, a delivery tried."""
    lead, sale, ret, attempt = (m._meta.db_table for m in (Lead, Sale, Return, DeliveryAttempt))
    rows = _rows(
        f"""
        SELECT date_trunc('hour', l.created_at) FROM {lead} l WHERE l.updated_at >= %s
        UNION SELECT date_trunc('hour', l.created_at) FROM {sale} s JOIN {lead} l ON l.id = s.lead_id
            WHERE s.created_at >= %s
        UNION SELECT date_trunc('hour', l.created_at) FROM {sale} s JOIN {lead} l ON l.id = s.lead_id
            WHERE s.sold_at >= %s
        UNION SELECT date_trunc('hour', l.created_at) FROM {ret} r
            JOIN {sale} s ON s.id = r.sale_id JOIN {lead} l ON l.id = s.lead_id WHERE r.decided_at >= %s
        UNION SELECT date_trunc('hour', l.created_at) FROM {attempt} d
            JOIN {sale} s ON s.id = d.sale_id JOIN {lead} l ON l.id = s.lead_id WHERE d.created_at >= %s
        """,
        [since] * 5,
    )
    return sorted(row[0] for row in rows)


def lead_facts(*, hours: Hours) -> list[tuple[Any, ...]]:
    """The leads posted in ``hours``: (hour, seller, offer, campaign, sub_id1…5, test, posted,
    sold, unsold). A lead still pending (re-auctioning) is posted, neither sold nor unsold."""
    where, params = hours_where("l.created_at", hours)
    return _rows(
        f"""
        SELECT date_trunc('hour', l.created_at), l.organization_id, l.offer_id, l.campaign_id, {sub_ids_sql("l")},
               l.test, count(*), count(*) FILTER (WHERE l.status = %s), count(*) FILTER (WHERE l.status = %s)
        FROM {Lead._meta.db_table} l WHERE {where}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
        """,
        [Lead.Status.SOLD, Lead.Status.UNSOLD, *params],
    )


def sale_facts(*, hours: Hours) -> list[tuple[Any, ...]]:
    """The bought sales (sold or returned) of the leads posted in ``hours``: (hour, seller, offer,
    campaign, sub_id1…5, buyer, contract, test, sales, returned, price, payout, margin,
    returned_price, returned_payout)."""
    where, params = hours_where("l.created_at", hours)
    return _rows(
        f"""
        SELECT date_trunc('hour', l.created_at), s.seller_id, s.offer_id, s.campaign_id, {sub_ids_sql("l")},
               s.organization_id, s.contract_id, s.test,
               count(*), count(*) FILTER (WHERE s.status = %s),
               sum(s.price), sum(s.payout), sum(s.margin),
               coalesce(sum(s.price) FILTER (WHERE s.status = %s), 0),
               coalesce(sum(s.payout) FILTER (WHERE s.status = %s), 0)
        FROM {Sale._meta.db_table} s JOIN {Lead._meta.db_table} l ON l.id = s.lead_id
        WHERE s.status IN (%s, %s) AND {where}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
        """,
        [*[Sale.Status.RETURNED] * 3, Sale.Status.SOLD, Sale.Status.RETURNED, *params],
    )


def delivery_reject_facts(*, hours: Hours) -> list[tuple[Any, ...]]:
    """The delivery attempts not accepted (rejected, timed out, failed) for the leads posted in
    ``hours``: (hour, seller, offer, campaign, buyer, contract, test, rejects)."""
    where, params = hours_where("l.created_at", hours)
    return _rows(
        f"""
        SELECT date_trunc('hour', l.created_at), s.seller_id, s.offer_id, s.campaign_id,
               d.organization_id, d.contract_id, s.test, count(*)
        FROM {DeliveryAttempt._meta.db_table} d
        JOIN {Sale._meta.db_table} s ON s.id = d.sale_id JOIN {Lead._meta.db_table} l ON l.id = s.lead_id
        WHERE d.outcome <> %s AND {where}
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        """,
        [DeliveryAttempt.Outcome.ACCEPTED, *params],
    )
