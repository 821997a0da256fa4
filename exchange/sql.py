"""A cursor for the ping's two hot statements: server-side binding, prepared after a few runs.

Django's PostgreSQL cursors bind parameters on the client: psycopg quotes every value into the
SQL text in Python, and PostgreSQL parses and plans the result every time. The ping's two
statements (the live-state read and the ping write) have a constant text, so this cursor sends
the values apart, dumped by psycopg's C adapters, and lets the driver prepare the statement once
per connection (``prepare_threshold``, 5 runs by default; ``DB_PREPARE_THRESHOLD=`` empty turns it
off, as behind a connection pooler in transaction mode). It is still Django's cursor wrapper, so
query counts, logging and error translation are unchanged.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorWrapper


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
