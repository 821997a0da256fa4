"""Reads of the market's rows for other apps: a seller's view of its lead's sales, the expected holds,
and the exchange-wide facts reporting folds into its hourly rollups."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, F, Max, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, Left, TruncHour

from accounts.models import Organization
from accounts.tenancy import market_scope
from exchange.models import DeliveryAttempt, Ping, Sale
from exchange.returns.models import Return
from exchange.sql import (
    Hours,
    hours_q,
    ping_facts_buyer_portable,
    ping_facts_buyer_postgres,
    ping_reason_facts_portable,
    ping_reason_facts_postgres,
)
from exchange.webhooks.models import EventDelivery
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
# the rollup's dimensions, summed in the database so the fold moves aggregates, not rows. Written
# with the ORM, which serves PostgreSQL and SQLite alike; the one statement worth writing by hand
# (unnesting every ping's waterfall) is in exchange.sql, once per dialect.


def hour_of(field: str) -> TruncHour:
    """The UTC hour of ``field`` (an aware datetime on every database)."""
    return TruncHour(field, tzinfo=UTC)


def sub_ids(tracking: str) -> dict[str, Any]:
    """The five sub-ids of the ``tracking`` JSON field as columns ``s1``…``s5``: text, at most 100
    characters, '' when absent."""
    return {f"s{n}": Left(Coalesce(KeyTextTransform(f"sub_id{n}", tracking), Value("")), 100) for n in range(1, 6)}


def facts(rows: QuerySet[Any], dimensions: dict[str, Any], figures: dict[str, Any]) -> list[tuple[Any, ...]]:
    """``figures`` (aggregates) of ``rows`` grouped by ``dimensions`` (fields or expressions), as
    tuples: the dimensions, then the figures, in the order given (their names only document them)."""
    named = {f"d{i}": F(field) if isinstance(field, str) else field for i, field in enumerate(dimensions.values())}
    summed = {f"f{i}": figure for i, figure in enumerate(figures.values())}
    grouped = rows.order_by().values(**named).annotate(**summed)
    return list(grouped.values_list(*named, *summed))


def ping_last_settled_id(*, before: datetime) -> int:
    """The highest ping id created before ``before`` (0 when none): the fold takes pings up to it,
    leaving the last moments' pings, whose transactions may still be open, to the next run."""
    with market_scope():
        return Ping.objects.filter(created_at__lt=before).aggregate(last=Max("id"))["last"] or 0


def ping_facts_seller(*, after_id: int, upto_id: int, hours: Hours | None = None) -> list[tuple[Any, ...]]:
    """The sellers' ping figures of pings ``after_id < id <= upto_id`` (and within ``hours`` if
    given): (hour, seller, offer, campaign, sub_id1…5, test, pings, accepted). Re-auctions are the
    exchange's own pings, not the seller's: left out."""
    with market_scope():
        pings = Ping.objects.filter(id__gt=after_id, id__lte=upto_id).exclude(source=Ping.Source.REAUCTION)
        if hours is not None:
            pings = pings.filter(hours_q("created_at", hours))
        dimensions = {"hour": hour_of("created_at"), "seller": "organization_id", "offer": "offer_id"}
        dimensions |= {"campaign": "campaign_id", **sub_ids("tracking"), "test": "test"}
        figures = {"pings": Count("id"), "accepted": Count("id", filter=Q(status=Ping.Status.ACCEPTED))}
        return facts(pings, dimensions, figures)


def ping_facts_buyer(*, after_id: int, upto_id: int, hours: Hours | None = None) -> list[tuple[Any, ...]]:
    """The buyers' figures of the same pings' waterfalls (re-auctions included: the contract was
    asked again): (hour, seller, offer, campaign, buyer, contract, test, evaluated, bids, wins,
    rtb_timeouts, rtb_errors). A bid is a step that ranked (``won`` or ``outbid``).

    Each ping's waterfall is unnested in SQL on PostgreSQL, in Python elsewhere (exchange.sql)."""
    read = PING_FACTS_BUYER.get(connection.vendor, ping_facts_buyer_portable)
    with market_scope():
        return read(after_id=after_id, upto_id=upto_id, hours=hours)


PING_FACTS_BUYER = {"postgresql": ping_facts_buyer_postgres}


def ping_reason_facts(*, after_id: int, upto_id: int, hours: Hours | None = None) -> list[tuple[Any, ...]]:
    """Why each contract did or did not win the same pings' waterfalls, counted: (hour, buyer,
    contract, test, reason, count). The reason is the step's code (``outbid``, ``filtered:state``,
    ``cap_reached:day``…), cut to 64 characters; a step without one counts as ``unknown``. In SQL on
    PostgreSQL, in Python elsewhere (exchange.sql)."""
    read = PING_REASON_FACTS.get(connection.vendor, ping_reason_facts_portable)
    with market_scope():
        return read(after_id=after_id, upto_id=upto_id, hours=hours)


PING_REASON_FACTS = {"postgresql": ping_reason_facts_postgres}


def lead_hours_changed(*, since: datetime) -> list[datetime]:
    """The hours (lead posting hours) whose leads, sales, returns or deliveries changed since
    ``since``: a lead's outcome set, a sale made or booked, a return decided, a delivery tried."""
    with market_scope():
        changed = [
            Lead.objects.filter(updated_at__gte=since).annotate(h=hour_of("created_at")),
            Sale.objects.filter(created_at__gte=since).annotate(h=hour_of("lead__created_at")),
            Sale.objects.filter(sold_at__gte=since).annotate(h=hour_of("lead__created_at")),
            Return.objects.filter(decided_at__gte=since).annotate(h=hour_of("sale__lead__created_at")),
            DeliveryAttempt.objects.filter(created_at__gte=since).annotate(h=hour_of("sale__lead__created_at")),
        ]
        first, *others = (rows.order_by().values_list("h", flat=True) for rows in changed)
        return sorted(first.union(*others))


def lead_facts(*, hours: Hours) -> list[tuple[Any, ...]]:
    """The leads posted in ``hours``: (hour, seller, offer, campaign, sub_id1…5, test, posted,
    sold, unsold). A lead still pending (re-auctioning) is posted, neither sold nor unsold."""
    with market_scope():
        leads = Lead.objects.filter(hours_q("created_at", hours))
        dimensions = {"hour": hour_of("created_at"), "seller": "organization_id", "offer": "offer_id"}
        dimensions |= {"campaign": "campaign_id", **sub_ids("tracking"), "test": "test"}
        figures = {
            "posted": Count("id"),
            "sold": Count("id", filter=Q(status=Lead.Status.SOLD)),
            "unsold": Count("id", filter=Q(status=Lead.Status.UNSOLD)),
        }
        return facts(leads, dimensions, figures)


def sale_facts(*, hours: Hours) -> list[tuple[Any, ...]]:
    """The bought sales (sold or returned) of the leads posted in ``hours``: (hour, seller, offer,
    campaign, sub_id1…5, buyer, contract, test, sales, returned, price, payout, margin,
    returned_price, returned_payout)."""
    returned = Q(status=Sale.Status.RETURNED)
    with market_scope():
        sales = Sale.objects.filter(
            hours_q("lead__created_at", hours), status__in=[Sale.Status.SOLD, Sale.Status.RETURNED]
        )
        dimensions = {"hour": hour_of("lead__created_at"), "seller": "seller_id", "offer": "offer_id"}
        dimensions |= {"campaign": "campaign_id", **sub_ids("lead__tracking"), "buyer": "organization_id"}
        dimensions |= {"contract": "contract_id", "test": "test"}
        figures = {
            "sales": Count("id"),
            "returned": Count("id", filter=returned),
            "price": Sum("price"),
            "payout": Sum("payout"),
            "margin": Sum("margin"),
            "returned_price": Sum("price", filter=returned, default=Decimal("0")),
            "returned_payout": Sum("payout", filter=returned, default=Decimal("0")),
        }
        return facts(sales, dimensions, figures)


def delivery_reject_facts(*, hours: Hours) -> list[tuple[Any, ...]]:
    """The delivery attempts not accepted (rejected, timed out, failed) for the leads posted in
    ``hours``: (hour, seller, offer, campaign, buyer, contract, test, rejects)."""
    with market_scope():
        attempts = DeliveryAttempt.objects.filter(hours_q("sale__lead__created_at", hours)).exclude(
            outcome=DeliveryAttempt.Outcome.ACCEPTED
        )
        dimensions = {"hour": hour_of("sale__lead__created_at"), "seller": "sale__seller_id"}
        dimensions |= {"offer": "sale__offer_id", "campaign": "sale__campaign_id", "buyer": "organization_id"}
        dimensions |= {"contract": "contract_id", "test": "sale__test"}
        return facts(attempts, dimensions, {"rejects": Count("id")})


# --- the operator's metrics (reporting.metrics) --------------------------------------------------


def ping_latency_buckets(*, bounds_ms: tuple[float, ...], window: int = 10_000) -> tuple[list[int], int, float]:
    """How the latest ``window`` pings' answer times (re-auctions left out, as on the operator's
    page) fall into ``bounds_ms``: the cumulative count at or under each bound, the count of all and
    the sum of their times in milliseconds. Bounded: the newest rows by primary key."""
    with market_scope():
        recent = Ping.objects.exclude(source=Ping.Source.REAUCTION).order_by("-id")[:window]
        figures = {f"le{n}": Count("id", filter=Q(latency_ms__lte=bound)) for n, bound in enumerate(bounds_ms)}
        row = recent.aggregate(**figures, count=Count("id"), total=Sum("latency_ms"))
    return [int(row[f"le{n}"]) for n in range(len(bounds_ms))], int(row["count"]), float(row["total"] or 0)


def sales_by_status() -> dict[str, int]:
    """Every sale (test ones included) counted by status; each status present, 0 when none."""
    with market_scope():
        counted = dict(Sale.objects.order_by().values_list("status").annotate(n=Count("id")))
    return {status: int(counted.get(status, 0)) for status in Sale.Status.values}


def webhook_backlog() -> int:
    """Event deliveries still to make (pending or being sent): the webhooks' backlog."""
    with market_scope():
        return EventDelivery.objects.filter(
            status__in=[EventDelivery.Status.PENDING, EventDelivery.Status.SENDING]
        ).count()
