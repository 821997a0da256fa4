"""The hot statements' helpers: the binding cursor and array literals, against the real database."""

from __future__ import annotations

import pytest
from django.db import connection

from core.sql import bound_cursor, pg_array

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL array literals"),
]


@pytest.mark.parametrize(
    ("values", "sql_type"),
    [
        ([], "bigint"),
        ([1, 22, 9_007_199_254_740_993], "bigint"),
        (["day:2026-11-22", "week:2026-W47"], "text"),
        (['a "quoted" word', "back\\slash", "comma, brace } { and NULL", "NULL", "", " spaced "], "text"),
        (["é ü 漢字"], "text"),
    ],
)
def test_an_array_literal_reads_back_as_the_same_values(values, sql_type):
    with bound_cursor() as cursor:
        cursor.execute(f"SELECT %s::{sql_type}[]", [pg_array(values)])
        assert cursor.fetchone()[0] == values


def test_an_array_literal_matches_with_any():
    with bound_cursor() as cursor:
        cursor.execute(
            "SELECT x FROM unnest(%s::text[]) AS x WHERE x = ANY(%s::text[])",
            [
                pg_array(["a", 'b"', "c\\"]),
                pg_array(['b"', "c\\", "d"]),
            ],
        )
        assert [row[0] for row in cursor.fetchall()] == ['b"', "c\\"]
