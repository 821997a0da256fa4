"""The hot paths' SQL: the dialects of the ping's live-state statement, and the cursor and helpers
every hot statement runs on.

The two SQL dialects the ping's one live-state statement is written in: PostgreSQL and portable.

Each app that owns a table the auction reads builds its part of that statement (``<app>/sql.py``)
against a :class:`Dialect`; the exchange joins the parts with ``UNION ALL`` and runs them in one
round trip. Each dialect is written whole, not as branches inside each part.

Every part returns rows of the same six columns: a one-letter kind, an id, a text, an integer, a
number and a time (``NULL`` where the kind has none).

The post's statements (decision 70) are written the same way, each by the app that owns the table
and run by :func:`sql_rows`; rows are inserted and read by :func:`model_insert` and
:func:`model_read`, whose statement texts are built once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorWrapper
from django.db.models import Field, Model

SqlPart = tuple[str, list[Any]]
M = TypeVar("M", bound="Model")


class Dialect:
    """Portable SQL (SQLite, the embedded default): ``IN`` lists and untyped ``NULL``."""

    def in_(self, column: str, values: Collection[int | str], sql_type: str) -> SqlPart:
        return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)

    def null(self, sql_type: str) -> str:
        return "NULL"


class PostgresDialect(Dialect):
    """PostgreSQL: ``column = ANY(%s::type[])`` with one array literal, so the statement's text
    does not change with the number of values (it is prepared once per connection), and typed
    ``NULL``s, which a ``UNION ALL`` of parts needs."""

    def in_(self, column: str, values: Collection[int | str], sql_type: str) -> SqlPart:
        return f"{column} = ANY(%s::{sql_type}[])", [pg_array(values)]

    def null(self, sql_type: str) -> str:
        return f"CAST(NULL AS {sql_type})"


def dialect_of(vendor: str) -> Dialect:
    return POSTGRES if vendor == "postgresql" else PORTABLE


PORTABLE = Dialect()
POSTGRES = PostgresDialect()


def pg_array(values: Iterable[int | str]) -> str:
    """A PostgreSQL array literal of ints or strings, for a ``%s::bigint[]`` or ``%s::text[]``
    parameter (psycopg adapts a list element by element in Python, a string in C)."""
    return "{" + ",".join(str(v) if isinstance(v, int) else _element(v) for v in values) + "}"


def _element(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- the hot paths' statements -------------------------------------------------------------------
#
# A cursor for the hot statements: server-side binding, prepared after a few runs.
#
# Django's PostgreSQL cursors bind parameters on the client: psycopg quotes every value into the
# SQL text in Python, and PostgreSQL parses and plans the result every time. A hot statement has a
# constant text, so this cursor sends the values apart, dumped by psycopg's C adapters, and lets
# the driver prepare the statement once per connection (``prepare_threshold``, 5 runs by default;
# ``DB_PREPARE_THRESHOLD=`` empty turns it off, as behind a connection pooler in transaction mode).
# It is still Django's cursor wrapper, so query counts, logging and error translation are unchanged.


def bound_cursor() -> CursorWrapper:
    """A server-side binding cursor on PostgreSQL; Django's usual cursor elsewhere."""
    # The connection itself, not the ``connection`` proxy: each attribute of the proxy looks the
    # thread's connection up again.
    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor != "postgresql":
        return conn.cursor()
    from django.db.backends.postgresql import base

    cursor_class: Any = base.ServerBindingCursor  # psycopg's own cursor; not in django-stubs

    conn.close_if_health_check_failed()
    conn.ensure_connection()
    conn.validate_thread_sharing()
    with conn.wrap_database_errors:
        raw = cursor_class(conn.connection)
    return conn.make_debug_cursor(raw) if conn.queries_logged else conn.make_cursor(raw)


def sql_time(moment: datetime) -> object:
    """A time as this database takes it as a raw statement's parameter (SQLite: naive UTC text, as
    Django stores it; PostgreSQL: the time itself)."""
    return connections[DEFAULT_DB_ALIAS].ops.adapt_datetimefield_value(moment)


def sql_rows(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run one statement on :func:`bound_cursor`; the rows it returns (none when it returns none)."""
    with bound_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


@functools.cache
def _insert_plan(model: type[Model], rows: int, ignore_conflicts: bool) -> tuple[str, tuple[Field[Any, Any], ...]]:
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    row = f"({', '.join(['%s'] * len(fields))})"
    conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    return (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(str(f.column)) for f in fields)}) "  # nosec B608  # names and placeholders only
        f"VALUES {', '.join([row] * rows)}{conflict} RETURNING {quote(str(meta.pk.column))}",  # type: ignore[union-attr]
        fields,
    )


def model_insert(*objs: Model, ignore_conflicts: bool = False) -> int:
    """Insert instances of one model in one statement, as ``save(force_insert=True)`` would: each
    field's ``pre_save`` (generated public ids, ``auto_now_add``) and its adaptation to this
    database, the primary keys set from ``RETURNING`` (PostgreSQL and SQLite both return the rows
    in the order given). The statement's text is built once per model and row count, where the
    ORM's compiler builds it again on every call and costs a hot path more CPU than the round trip.
    No signal is sent (the project connects none to its models).

    ``ignore_conflicts`` (one instance): a row a unique constraint refuses is not inserted, and
    the instance keeps no primary key. Returns the number of rows inserted."""
    if ignore_conflicts and len(objs) != 1:
        raise ValueError("ignore_conflicts inserts one instance: its row is the only one returned")
    if not objs:
        return 0
    conn = connections[DEFAULT_DB_ALIAS]
    sql, fields = _insert_plan(type(objs[0]), len(objs), ignore_conflicts)
    params = [f.get_db_prep_save(f.pre_save(obj, True), conn) for obj in objs for f in fields]
    rows = sql_rows(sql, params)
    for obj, (pk,) in zip(objs, rows, strict=False):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = DEFAULT_DB_ALIAS
    return len(rows)


@functools.cache
def _read_plan(model: type[Model], where: str) -> tuple[str, tuple[str, ...], tuple[tuple[Any, list[Any]], ...]]:
    meta = model._meta
    conn = connections[DEFAULT_DB_ALIAS]
    quote = conn.ops.quote_name
    fields = meta.concrete_fields
    converters = []
    for f in fields:
        col = f.get_col(meta.db_table)
        converters.append((col, [*conn.ops.get_db_converters(col), *f.get_db_converters(conn)]))
    return (
        f"SELECT {', '.join(quote(str(f.column)) for f in fields)} FROM {quote(meta.db_table)} WHERE {where}",  # nosec B608  # names and the caller's constant condition
        tuple(f.attname for f in fields),
        tuple(converters),
    )


def model_read(model: type[M], where: str, params: Sequence[Any]) -> list[M]:
    """Instances of ``model`` whose rows match ``where`` (a constant condition over its columns,
    with ``%s`` placeholders; it may end in ORDER BY or LIMIT), every concrete field read and
    converted as the ORM would. The statement's text is built once per model and condition. No
    scope applies: the caller's condition names the tenant where one is wanted."""
    conn = connections[DEFAULT_DB_ALIAS]
    sql, names, converters = _read_plan(model, where)
    found = []
    for row in sql_rows(sql, params):
        values = list(row)
        for i, (col, steps) in enumerate(converters):
            for step in steps:
                values[i] = step(values[i], col, conn)
        found.append(model.from_db(DEFAULT_DB_ALIAS, names, values))
    return found
