"""Redis down: the exchange treats it as a cache (decision 64), so pings are still decided and posts
still sell, from PostgreSQL, and the books balance afterwards."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.test import override_settings

from accounts.tenancy import market_scope
from leads.models import Lead
from tests.exchange.builder import buyer, client, load, ping_body, post_body
from tests.ledger import balance, ledger_is_consistent
from tests.waiting import free_port

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not settings.REDIS_URL or connection.vendor != "postgresql", reason="Redis, PostgreSQL"),
]


def redis_down():
    """The cache pointed at a port nothing listens on: every connection is refused."""
    closed = f"redis://127.0.0.1:{free_port()}/0"
    return override_settings(CACHES={"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": closed}})


def test_with_redis_down_pings_are_decided_posts_sell_and_the_books_balance(caplog):
    load(buyer("acme", "10.00"), buyer("zeta", "7.00"))
    with redis_down():
        assert caches["default"].get("anything") is None  # a miss, not an error
        answers = []
        for n in range(3):
            pinged = client().post("/api/v1/ping", ping_body(n), format="json")
            assert pinged.status_code == 200, pinged.content
            assert (pinged.json()["status"], pinged.json()["payout"]) == ("accepted", "8.00")
            posted = client().post("/api/v1/post", post_body(pinged.json()["ping_id"], n), format="json")
            assert posted.status_code == 200, posted.content
            answers.append(posted.json())
    assert [(a["status"], a["payout"]) for a in answers] == [("sold", "8.00")] * 3
    with market_scope():
        assert sorted(Lead.objects.values_list("status", flat=True)) == ["sold"] * 3
    assert balance("acme") == Decimal("970.00")
    assert abs(balance("seller", "seller_payable")) == Decimal("24.00")
    assert abs(balance(None, "platform_revenue")) == Decimal("6.00")
    ledger_is_consistent(settled=True)
    assert "Redis unreachable" in caplog.text


def test_a_cache_that_comes_back_is_used_again():
    with redis_down():
        caches["default"].set("gavel:fault-probe", 1, 30)
        assert caches["default"].get("gavel:fault-probe") is None
    caches["default"].set("gavel:fault-probe", 2, 30)
    assert caches["default"].get("gavel:fault-probe") == 2
    caches["default"].delete("gavel:fault-probe")
