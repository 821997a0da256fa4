"""Billing's part of the ping's live-state statement (see core.sql): the buyers' available funds."""

from __future__ import annotations

from collections.abc import Sequence

from billing.models import AVAILABLE_FUNDS_SQL, LedgerAccount
from core.sql import Dialect, SqlPart


def available_funds_part(buyer_ids: Sequence[int], sql: Dialect) -> SqlPart:
    """Rows ``('f', buyer id, NULL, NULL, available funds, NULL)``, one per buyer with an account."""
    buyers, params = sql.in_("organization_id", buyer_ids, "bigint")
    return (
        f"SELECT 'f', organization_id, {sql.null('text')}, {sql.null('bigint')}, {AVAILABLE_FUNDS_SQL}, "  # nosec B608  # names and placeholders only
        f"{sql.null('timestamptz')} FROM {LedgerAccount._meta.db_table} WHERE {buyers} AND kind = %s",
        [*params, LedgerAccount.Kind.BUYER_BALANCE],
    )
