"""Billing's SQL: its part of the ping's live-state statement (see core.sql), the buyers'
available funds; and a post's holds and bookings."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

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


# --- a post's bookings: statements with a constant text, on core.sql.bound_cursor -----------------
#
# A decimal parameter is compared and added as CAST(%s AS NUMERIC): SQLite gets a decimal as text,
# which it would compare as text.

_ACCOUNTS = LedgerAccount._meta.db_table


def accounts_read(wanted: Sequence[tuple[int | None, str]]) -> SqlPart:
    """Rows ``(id, organization id, kind)`` of the accounts of these (organization id or None for
    the exchange's own, kind) pairs that exist."""
    match = " OR ".join(
        "(organization_id IS NULL AND kind = %s)" if owner is None else "(organization_id = %s AND kind = %s)"
        for owner, _ in wanted
    )
    params: list[object] = []
    for owner, kind in wanted:
        params += [kind] if owner is None else [owner, kind]
    return f"SELECT id, organization_id, kind FROM {_ACCOUNTS} WHERE {match}", params  # nosec B608  # names and placeholders only


def balance_move(account_id: int, amount: Decimal, settled: Decimal) -> SqlPart:
    """Move one account's cached balance by ``amount`` and drop ``settled`` of its held funds
    (one UPDATE: it locks the row). Returns its id."""
    return (
        f"UPDATE {_ACCOUNTS} SET balance = balance + CAST(%s AS NUMERIC), "  # nosec B608  # names and placeholders only
        "held = held - CAST(%s AS NUMERIC) WHERE id = %s RETURNING id",
        [amount, settled, account_id],
    )


def funds_held(organization_id: int, amount: Decimal) -> SqlPart:
    """Hold ``amount`` of the buyer's funds if its available funds cover it (a compare-and-set).
    Returns the account's id, or no row when they do not."""
    return (
        f"UPDATE {_ACCOUNTS} SET held = held + CAST(%s AS NUMERIC) "  # nosec B608  # names and placeholders only
        f"WHERE organization_id = %s AND kind = %s AND {AVAILABLE_FUNDS_SQL} >= CAST(%s AS NUMERIC) RETURNING id",
        [amount, organization_id, LedgerAccount.Kind.BUYER_BALANCE, amount],
    )


def funds_unheld(organization_id: int, amount: Decimal) -> SqlPart:
    """Give back ``amount`` of the buyer's held funds."""
    return (
        f"UPDATE {_ACCOUNTS} SET held = held - CAST(%s AS NUMERIC) "  # nosec B608  # names and placeholders only
        "WHERE organization_id = %s AND kind = %s RETURNING id",
        [amount, organization_id, LedgerAccount.Kind.BUYER_BALANCE],
    )


def low_balance_fallen(organization_id: int) -> SqlPart:
    """Flag the buyer's account as told of its low balance, if its available funds are under its
    threshold and it was not told yet (a compare-and-set). Returns the account's id, or no row."""
    return (
        f"UPDATE {_ACCOUNTS} SET low_balance_notified = %s WHERE organization_id = %s AND kind = %s "  # nosec B608  # names and placeholders only
        "AND low_balance_notified = %s AND low_balance_threshold IS NOT NULL "
        f"AND low_balance_threshold > {AVAILABLE_FUNDS_SQL} RETURNING id",
        [True, organization_id, LedgerAccount.Kind.BUYER_BALANCE, False],
    )
