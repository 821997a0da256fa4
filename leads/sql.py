"""The leads' part of the ping's live-state statement (see core.sql): opt-outs and buyers' own lists."""

from __future__ import annotations

from collections.abc import Sequence

from core.sql import Dialect, SqlPart
from leads.models import Suppression


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
