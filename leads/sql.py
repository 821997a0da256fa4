"""The leads' part of the ping's live-state statement (see core.sql): opt-outs."""

from __future__ import annotations

from collections.abc import Sequence

from core.sql import Dialect, SqlPart
from leads.models import Suppression


def suppressed_part(consumer_hashes: Sequence[str], sql: Dialect) -> SqlPart:
    """A row ``('s', 0, NULL, NULL, NULL, NULL)`` per suppression of one of these consumers."""
    consumers, params = sql.in_("consumer_hash", consumer_hashes, "text")
    return (
        f"SELECT 's', 0, {sql.null('text')}, {sql.null('bigint')}, {sql.null('numeric')}, {sql.null('timestamptz')} "
        f"FROM {Suppression._meta.db_table} WHERE {consumers}",
        params,
    )
