"""The two SQL dialects the ping's one live-state statement is written in: PostgreSQL and portable.

Each app that owns a table the auction reads builds its part of that statement (``<app>/sql.py``)
against a :class:`Dialect`; the exchange joins the parts with ``UNION ALL`` and runs them in one
round trip. Each dialect is written whole, not as branches inside each part.

Every part returns rows of the same six columns: a one-letter kind, an id, a text, an integer, a
number and a time (``NULL`` where the kind has none).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

SqlPart = tuple[str, list[Any]]


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
