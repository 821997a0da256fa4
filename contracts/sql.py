"""The contracts' SQL: its part of the ping's live-state statement (see core.sql), the cap
counters; and a post's reservation of them, one statement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from contracts.models import PERIODS, CapCounter
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


def cap_counters_count(
    *,
    contract_id: int,
    organization_id: int,
    keys: Mapping[str, str],
    caps: Mapping[str, int],
    budgets: Mapping[str, Decimal],
    price: Decimal,
) -> SqlPart:
    """One statement (PostgreSQL and SQLite) that counts one lead at ``price`` in the counter of each
    period of ``keys``, in :data:`PERIODS` order: a new counter starts at that lead, an existing one
    counts it only if it stays within the period's cap (``count < cap``) and budget (``spend + price
    <= budget``). It returns the periods counted; a period that refused returns no row.

    A new counter is not checked: at one lead and ``price``, it is within any cap of at least one
    and any budget of at least ``price`` (the caller refuses smaller ones without asking)."""
    table = CapCounter._meta.db_table
    rows: list[str] = []
    row_params: list[object] = []
    limits: list[str] = []
    limit_params: list[object] = []
    for period in (p for p in PERIODS if p in keys):
        rows.append("(%s, %s, %s, %s, 1, %s)")
        row_params += [organization_id, contract_id, period, keys[period], price]
        within: list[str] = []
        limit_params.append(period)
        if period in caps:
            within.append(f"{table}.count < %s")
            limit_params.append(caps[period])
        if period in budgets:
            # A cast: SQLite gets a decimal as text, which it would not compare as a number.
            within.append(f"{table}.spend + excluded.spend <= CAST(%s AS NUMERIC)")
            limit_params.append(budgets[period])
        limits.append(f"WHEN %s THEN {' AND '.join(within) or '1 = 1'}")
    return (
        f"INSERT INTO {table} (organization_id, contract_id, period, period_key, count, spend) "  # nosec B608  # names and placeholders only
        f"VALUES {', '.join(rows)} ON CONFLICT (contract_id, period_key) DO UPDATE "
        f"SET count = {table}.count + 1, spend = {table}.spend + excluded.spend "
        f"WHERE CASE {table}.period {' '.join(limits)} END RETURNING period",
        [*row_params, *limit_params],
    )
