"""The contracts' part of the ping's live-state statement (see core.sql): cap counters."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.models import CapCounter
from core.sql import Dialect, SqlPart


def cap_counters_part(keyed: Sequence[tuple[int, str]], sql: Dialect) -> SqlPart:
    """Rows ``('c', contract id, period key, count, spend, NULL)`` of the counters of ``keyed``
    (contract id, period key) pairs; a period with no counter yet has no row (nothing used)."""
    ids, id_params = sql.in_("contract_id", sorted({cid for cid, _ in keyed}), "bigint")
    keys, key_params = sql.in_("period_key", sorted({key for _, key in keyed}), "text")
    return (
        f"SELECT 'c', contract_id, period_key, count, spend, {sql.null('timestamptz')} "  # nosec B608  # names and placeholders only
        f"FROM {CapCounter._meta.db_table} WHERE {ids} AND {keys}",
        [*id_params, *key_params],
    )
