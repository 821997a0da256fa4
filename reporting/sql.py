"""Reporting's hand-written SQL: the rollups' and the reason rollups' upserts, one statement each for
PostgreSQL and SQLite.

``INSERT … ON CONFLICT … DO UPDATE`` adds a batch of figures to the rows already there in one
statement, which the ORM cannot (``bulk_create(update_conflicts=True)`` only replaces). Both
databases take it as written (SQLite since 3.24): the conflict target is the rollup's grain as
its unique index spells it, the empty buyer and contract of a seller row as ``COALESCE(…, 0)``,
so the index treats them as equal on both (``Rollup.Meta.constraints``, ``rollup_grain``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection

from reporting.models import GRAIN, ReasonRollup, Rollup, RollupCursor


def rollups_upsert(rows: Sequence[Sequence[Any]], columns: Sequence[str], *, add: bool, chunk: int = 1000) -> None:
    """Write ``rows`` (the grain's columns, then ``columns``' values, in Python types) into the
    rollups: ``columns`` added to what is there (``add``) or replacing it."""
    table = Rollup._meta.db_table
    names = GRAIN + tuple(columns)
    by_column = {field.attname: field for field in Rollup._meta.concrete_fields}
    fields = [by_column[name] for name in names]
    target = ", ".join(f"COALESCE({c}, 0)" if c in ("buyer_id", "contract_id") else c for c in GRAIN)
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" if add else f"{c} = excluded.{c}" for c in columns)
    placeholders = "(" + ", ".join(["%s"] * len(names)) + ")"
    per = max(1, min(chunk, (connection.features.max_query_params or 65535) // len(names)))
    with connection.cursor() as db:
        for i in range(0, len(rows), per):
            part = rows[i : i + per]
            db.execute(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join([placeholders] * len(part))} "  # nosec B608  # names and placeholders only
                f"ON CONFLICT ({target}) DO UPDATE SET {updates}",
                [field.get_db_prep_save(v, connection) for row in part for field, v in zip(fields, row, strict=True)],
            )


def reasons_upsert(facts: Sequence[Sequence[Any]], chunk: int = 1000) -> None:
    """Add the counts of ``facts`` (hour, buyer, contract, test, reason, count) to their rows of the
    reason rollups, in the rows' key order (two folds never wait on each other's rows crosswise)."""
    table = ReasonRollup._meta.db_table
    names = ("hour", "buyer_id", "contract_id", "test", "reason", "count")
    by_column = {field.attname: field for field in ReasonRollup._meta.concrete_fields}
    fields = [by_column[name] for name in names]
    rows = sorted(facts, key=lambda r: (r[0], r[2], r[4], r[3]))
    placeholders = "(" + ", ".join(["%s"] * len(names)) + ")"
    with connection.cursor() as db:
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            db.execute(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join([placeholders] * len(part))} "  # nosec B608  # names and placeholders only
                f"ON CONFLICT (hour, contract_id, reason, test) DO UPDATE SET count = {table}.count + excluded.count",
                [field.get_db_prep_save(v, connection) for row in part for field, v in zip(fields, row, strict=True)],
            )


ROLLUP_PING_TOTALS = ("pings", "accepted", "evaluated", "bids", "wins", "rtb_timeouts", "rtb_errors")


def rollup_ping_totals() -> tuple[int, dict[str, int]]:
    """The ``pings`` cursor (the last ping id folded) and the rollups' ping figures summed over all
    time, read in one statement so both come from the same snapshot: the figures are exactly those
    of the pings up to the cursor."""
    sums = ", ".join(f"COALESCE(SUM({c}), 0)" for c in ROLLUP_PING_TOTALS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT last_id FROM {RollupCursor._meta.db_table} WHERE name = %s), {sums}"  # nosec B608  # table and column names only
            f" FROM {Rollup._meta.db_table}",
            ["pings"],
        )
        last_id, *totals = cursor.fetchone()
    return int(last_id or 0), {c: int(v) for c, v in zip(ROLLUP_PING_TOTALS, totals, strict=True)}
