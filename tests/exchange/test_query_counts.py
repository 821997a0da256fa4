"""The ping and post paths stay within a pinned number of queries, however many contracts bid."""

from __future__ import annotations

import pytest
from django.db import connection

from exchange.auction import book
from tests.exchange.builder import buyer, client, lead_body, load, ping_body, post_body, sell

pytestmark = pytest.mark.django_db


@pytest.fixture
def market():
    load(*[buyer(f"b{n}", f"{10 + n}.00", caps={"day": 100}, budget={"month": "10000.00"}) for n in range(12)])
    sell(99)  # build the contract book and create the ledger accounts once


def test_a_ping_takes_a_fixed_number_of_queries(market, django_assert_max_num_queries, monkeypatch):
    # PostgreSQL: the live state (one UNION ALL) and the ping with its bids (one CTE); keys, the
    # contract book's version and repeat answers come from the cache. SQLite writes in a transaction.
    # Without a shared cache the book's version is also read from the database, once per process
    # per DATABASE_VERSION_TTL_S (decision 36): not once per ping, so not counted here.
    monkeypatch.setattr(book, "DATABASE_VERSION_TTL_S", 3600.0)
    with django_assert_max_num_queries(2 if connection.vendor == "postgresql" else 5):
        response = client().post("/api/v1/ping", ping_body(1), format="json")
    assert response.json()["status"] == "accepted"


# PostgreSQL adds two advisory locks (dedup); SQLite needs none.
# The sale's event (lead.sold) is 2 queries, the low-balance check 1. Counted inside the test's
# transaction, where each atomic block adds a SAVEPOINT and its RELEASE (about a dozen of these
# queries), which the outermost blocks of a real request do not.
def test_a_post_takes_a_fixed_number_of_queries(market, django_assert_max_num_queries):
    answer = client().post("/api/v1/ping", ping_body(2), format="json").json()
    # 42: one of them is reporting's look at the sold lead's campaign for a postback URL, one the
    # opt-out lists read again (a consumer may opt out between the ping and the post).
    with django_assert_max_num_queries(42):
        response = client().post("/api/v1/post", post_body(answer["ping_id"], 2), format="json")
    assert response.json()["status"] == "sold"


# A full lead: the ping's two statements (the ping stored as posted), then the post's work without
# reading the ping back, claiming it or re-reading its bids (they come from the auction just run).
def test_a_full_lead_takes_a_fixed_number_of_queries(market, django_assert_max_num_queries):
    with django_assert_max_num_queries(38):  # reporting's postback look-up included
        response = client().post("/api/v1/leads", lead_body(3), format="json")
    assert response.json()["status"] == "sold"
