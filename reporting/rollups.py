"""The rollups' writes: fold new raw rows into the hourly rollups, and rebuild any range.

Two kinds of figures, folded two ways (decision 47):

* **Ping figures** (``pings``, ``accepted``, ``evaluated``, ``bids``, ``wins``, ``rtb_*``) come from
  pings, which never change once stored. They are folded *incrementally, exactly once*: the
  ``pings`` cursor holds the last ping id folded; one transaction adds the figures of the next
  ids and moves the cursor, so a replay (a task delivered twice, two workers at once — they queue
  on the cursor's row lock) adds nothing. Pings of the last :data:`SETTLE` are left to the next
  run, so a ping whose transaction is still open is not skipped.
* **Outcome figures** (``posted``, ``sold``, ``unsold``, ``returned``, ``conversions``, the money,
  ``delivery_rejects``) belong to the hour the lead was posted and change later (a lead sold by a
  re-auction, a sale returned days after, a conversion reported). They are *recomputed*: every
  lead hour in which something changed since the last run (minus :data:`OVERLAP`, for late
  commits) is computed again from the raw rows and replaces what was there. Recomputing is
  idempotent by construction.

Raw pings age out (``exchange.services.retention``); the rollup's ping figures stay. A rebuild
of hours older than the retention keeps their ping figures and recomputes only the outcomes.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from accounts.tenancy import market_scope
from exchange.selectors import (
    Hours,
    delivery_reject_facts,
    facts,
    hour_of,
    hours_q,
    lead_facts,
    lead_hours_changed,
    ping_facts_buyer,
    ping_facts_seller,
    ping_last_settled_id,
    ping_reason_facts,
    sale_facts,
    sub_ids,
)
from reporting.models import GRAIN, Conversion, ReasonRollup, Rollup, RollupCursor
from reporting.sql import reasons_upsert, rollups_upsert

logger = logging.getLogger(__name__)

SETTLE = timedelta(seconds=5)
OVERLAP = timedelta(minutes=2)
PING_BATCH = 50_000  # ping ids per transaction
HOUR = timedelta(hours=1)

KEY = GRAIN
PING_COLUMNS = ("pings", "accepted", "evaluated", "bids", "wins", "rtb_timeouts", "rtb_errors")
OUTCOME_COLUMNS: tuple[str, ...] = ("posted", "sold", "unsold", "returned", "conversions", "delivery_rejects")
OUTCOME_COLUMNS += ("price", "payout", "margin", "returned_price", "returned_payout", "conversion_value")
NO_SUB_IDS = ("", "", "", "", "")

RowKey = tuple[Any, ...]
Figures = dict[RowKey, dict[str, Any]]


@dataclass(frozen=True)
class Folded:
    pings: int  # ping ids folded (the cursor's move)
    hours: int  # lead hours recomputed


def rollups_fold(*, now: datetime | None = None, ping_batch: int = PING_BATCH) -> Folded:
    """Bring the rollups up to date: add the pings stored since the last run (exactly once) and
    recompute the lead hours touched since it. Safe to run at any time, as often as wanted,
    concurrently (runs queue on the cursors' rows)."""
    now = now or timezone.now()
    upto = ping_last_settled_id(before=now - SETTLE)
    moved = 0
    while True:
        step = _pings_fold(upto=upto, batch=ping_batch)
        moved += step
        if step == 0:
            break
    return Folded(pings=moved, hours=_outcomes_fold(now=now))


def rollups_rebuild(*, start: datetime, end: datetime, now: datetime | None = None) -> int:
    """Recompute every figure of the hours in [``start``, ``end``) from the raw rows, one day per
    transaction; the number of hours rebuilt. Hours older than the ping retention keep their ping
    figures (their raw pings may be gone) and have their outcomes recomputed. Pings past the fold's
    cursor are left to the fold (never counted twice)."""
    now = now or timezone.now()
    start, end = _hour_floor(start), _hour_floor(end - timedelta(microseconds=1)) + HOUR
    horizon = _hour_floor(now - timedelta(days=settings.GAVEL_PING_RETENTION_DAYS)) + HOUR
    day = start
    while day < end:
        chunk = (day, min(day + timedelta(days=1), end))
        with transaction.atomic():
            cursor = _cursor("pings")
            recent = (max(chunk[0], horizon), chunk[1])
            if recent[0] < recent[1]:
                _zero(PING_COLUMNS, [recent])
                _upsert(_ping_figures(after_id=0, upto_id=cursor.last_id, hours=[recent]), PING_COLUMNS, add=True)
                _reasons_replace(after_id=0, upto_id=cursor.last_id, hours=[recent])
            elif chunk[0] < horizon:
                logger.info("rollups_rebuild: %s–%s is past the ping retention; ping figures kept", *chunk)
            _outcomes_recompute([chunk])
        day = chunk[1]
    return int((end - start) / HOUR)


# --- the two folds ------------------------------------------------------------------------------


def _cursor(name: str) -> RollupCursor:
    """The cursor's row, locked until the end of the caller's transaction."""
    RollupCursor.objects.get_or_create(name=name)
    return RollupCursor.objects.select_for_update().get(name=name)


def _pings_fold(*, upto: int, batch: int) -> int:
    with transaction.atomic():
        cursor = _cursor("pings")
        if cursor.last_id >= upto:
            return 0
        last = min(upto, cursor.last_id + batch)
        _upsert(_ping_figures(after_id=cursor.last_id, upto_id=last, hours=None), PING_COLUMNS, add=True)
        reasons_upsert(ping_reason_facts(after_id=cursor.last_id, upto_id=last))
        moved = last - cursor.last_id
        cursor.last_id = last
        cursor.save(update_fields=["last_id"])
    return moved


def _outcomes_fold(*, now: datetime) -> int:
    with transaction.atomic():
        cursor = _cursor("outcomes")
        since = (cursor.until or datetime(2000, 1, 1, tzinfo=UTC)) - OVERLAP
        hours = sorted(set(lead_hours_changed(since=since)) | set(_conversion_hours(since=since)))
        ranges = _ranges(hours)
        _outcomes_recompute(ranges)
        cursor.until = now
        cursor.save(update_fields=["until"])
    return len(hours)


def _outcomes_recompute(ranges: Hours) -> None:
    if not ranges:
        return
    _zero(OUTCOME_COLUMNS, ranges)
    _upsert(_outcome_figures(ranges), OUTCOME_COLUMNS, add=False)
    Rollup.objects.filter(hours_q("hour", ranges), **dict.fromkeys(PING_COLUMNS + OUTCOME_COLUMNS, 0)).delete()


# --- figures ------------------------------------------------------------------------------------


def _ping_figures(*, after_id: int, upto_id: int, hours: Hours | None) -> Figures:
    figures: Figures = defaultdict(dict)
    for hour, seller, offer, campaign, *rest in ping_facts_seller(after_id=after_id, upto_id=upto_id, hours=hours):
        sub_ids, (test, pings, accepted) = tuple(rest[:5]), rest[5:]
        key = (hour, seller, offer, campaign, *sub_ids, None, None, test)
        figures[key].update(pings=pings, accepted=accepted)
    for row in ping_facts_buyer(after_id=after_id, upto_id=upto_id, hours=hours):
        hour, seller, offer, campaign, buyer, contract, test, *values = row
        key = (hour, seller, offer, campaign, *NO_SUB_IDS, buyer, contract, test)
        figures[key].update(zip(("evaluated", "bids", "wins", "rtb_timeouts", "rtb_errors"), values, strict=True))
    return figures


def _outcome_figures(ranges: Hours) -> Figures:
    """Seller rows and buyer rows of the leads posted in ``ranges``, from the raw rows."""
    figures: Figures = defaultdict(lambda: dict.fromkeys(OUTCOME_COLUMNS, 0))

    def add(key: RowKey, **values: Any) -> None:
        row = figures[key]
        for column, value in values.items():
            row[column] += value

    for hour, seller, offer, campaign, *rest in lead_facts(hours=ranges):
        sub_ids, (test, posted, sold, unsold) = tuple(rest[:5]), rest[5:]
        add((hour, seller, offer, campaign, *sub_ids, None, None, test), posted=posted, sold=sold, unsold=unsold)
    for hour, seller, offer, campaign, *rest in sale_facts(hours=ranges):
        sub_ids, (buyer, contract, test, sales, returned, price, payout, margin, r_price, r_payout) = (
            tuple(rest[:5]),
            rest[5:],
        )
        money = {"price": price, "payout": payout, "margin": margin, "returned_price": r_price}
        money["returned_payout"] = r_payout
        add((hour, seller, offer, campaign, *sub_ids, None, None, test), returned=returned, **money)
        add((hour, seller, offer, campaign, *NO_SUB_IDS, buyer, contract, test), sold=sales, returned=returned, **money)
    for hour, seller, offer, campaign, buyer, contract, test, rejects in delivery_reject_facts(hours=ranges):
        add((hour, seller, offer, campaign, *NO_SUB_IDS, buyer, contract, test), delivery_rejects=rejects)
    for hour, seller, offer, campaign, *rest in _conversion_facts(ranges):
        sub_ids, (buyer, contract, test, count, value) = tuple(rest[:5]), rest[5:]
        add((hour, seller, offer, campaign, *sub_ids, None, None, test), conversions=count, conversion_value=value)
        add(
            (hour, seller, offer, campaign, *NO_SUB_IDS, buyer, contract, test),
            conversions=count,
            conversion_value=value,
        )
    return figures


def _conversion_facts(ranges: Hours) -> list[tuple[Any, ...]]:
    """Conversions of the sales of the leads posted in ``ranges``: (hour, seller, offer, campaign,
    sub_id1…5, buyer, contract, test, conversions, value)."""
    with market_scope():
        conversions = Conversion.objects.filter(hours_q("sale__lead__created_at", ranges))
        dimensions = {"hour": hour_of("sale__lead__created_at"), "seller": "seller_id", "offer": "sale__offer_id"}
        dimensions |= {"campaign": "campaign_id", **sub_ids("sale__lead__tracking"), "buyer": "organization_id"}
        dimensions |= {"contract": "contract_id", "test": "test"}
        return facts(conversions, dimensions, {"conversions": Count("id"), "value": Sum("value")})


def _conversion_hours(*, since: datetime) -> list[datetime]:
    with market_scope():
        hours = Conversion.objects.filter(created_at__gte=since).annotate(h=hour_of("sale__lead__created_at"))
        return list(hours.order_by().values_list("h", flat=True).distinct())


def _reasons_replace(*, after_id: int, upto_id: int, hours: Hours) -> None:
    """Recount the waterfall reasons of ``hours`` from the raw pings (a rebuild)."""
    ReasonRollup.objects.filter(hours_q("hour", hours)).delete()
    reasons_upsert(ping_reason_facts(after_id=after_id, upto_id=upto_id, hours=hours))


# --- writing rows -------------------------------------------------------------------------------


def _zero(columns: Sequence[str], ranges: Hours) -> None:
    Rollup.objects.filter(hours_q("hour", ranges)).update(**dict.fromkeys(columns, 0))


def _upsert(figures: Figures, columns: Sequence[str], *, add: bool) -> None:
    """Write ``figures`` into their rows: added to what is there (``add``) or replacing it."""
    rows = [(*key, *(values.get(c, 0) for c in columns)) for key, values in sorted(figures.items(), key=_order)]
    rollups_upsert(rows, columns, add=add)


def _order(item: tuple[RowKey, Any]) -> tuple[Any, ...]:
    # Rows are written in key order so two writers lock them in the same order (no deadlock).
    return tuple((v is None, v if v is not None else 0) for v in item[0])


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ranges(hours: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Whole hours merged into [start, end) ranges."""
    ranges: list[tuple[datetime, datetime]] = []
    for hour in sorted(hours):
        if ranges and ranges[-1][1] == hour:
            ranges[-1] = (ranges[-1][0], hour + HOUR)
        else:
            ranges.append((hour, hour + HOUR))
    return ranges
