"""The leads' SQL: their part of the ping's live-state statement (see core.sql), opt-outs and
buyers' own lists; and a post's outcome of its lead."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from core.sql import Dialect, SqlPart, sql_time
from leads.models import Lead, Suppression


def suppressed_part(consumer_hashes: Sequence[str], buyer_ids: Sequence[int], sql: Dialect) -> SqlPart:
    """Rows ``('s', organization id or 0, scope, NULL, NULL, NULL)``: each exchange-wide
    suppression of one of these consumers, and each one these buyers put on their own lists."""
    consumers, params = sql.in_("consumer_hash", consumer_hashes, "text")
    # No buyers: an id no organization has (an empty IN list is not SQL).
    buyers, buyer_params = sql.in_("organization_id", list(buyer_ids) or [0], "bigint")
    return (
        f"SELECT 's', COALESCE(organization_id, 0), scope, {sql.null('bigint')}, {sql.null('numeric')}, "  # nosec B608  # names and placeholders only
        f"{sql.null('timestamptz')} FROM {Suppression._meta.db_table} WHERE {consumers} "
        f"AND (scope = %s OR (scope = %s AND {buyers}))",
        [*params, Suppression.Scope.EXCHANGE.value, Suppression.Scope.ORGANIZATION.value, *buyer_params],
    )


def lead_outcome(lead_id: int, *, status: str, reason: str, payout: Decimal | None, now: datetime) -> SqlPart:
    """Set where a lead stands (status, reason, and what its seller earns unless ``payout`` is None)."""
    paid = "" if payout is None else ", payout = CAST(%s AS NUMERIC)"
    return (
        f"UPDATE {Lead._meta.db_table} SET status = %s, reason = %s, updated_at = %s{paid} WHERE id = %s",  # nosec B608  # names and placeholders only
        [status, reason, sql_time(now), *([] if payout is None else [payout]), lead_id],
    )


def suppressions_refusing(consumer_hashes: Sequence[str]) -> SqlPart:
    """Rows ``(scope, organization id)`` of every suppression of these consumers that refuses a
    buyer: exchange-wide ones and those on any organization's own list."""
    consumers = ", ".join(["%s"] * len(consumer_hashes))
    return (
        f"SELECT scope, organization_id FROM {Suppression._meta.db_table} WHERE consumer_hash IN ({consumers}) "  # nosec B608  # names and placeholders only
        "AND (scope = %s OR organization_id IS NOT NULL)",
        [*consumer_hashes, Suppression.Scope.EXCHANGE.value],
    )
