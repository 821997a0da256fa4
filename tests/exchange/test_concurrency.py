"""Concurrent posts on real PostgreSQL connections: caps, funds, dedup and the ledger hold."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings

from accounts.tenancy import market_scope
from billing.models import LedgerAccount
from exchange.models import Sale
from leads.models import Lead
from tests.exchange.builder import SELLER2_KEY, buyer, client, lead_body, load, ping, post_body, run_at_once
from tests.ledger import ledger_is_consistent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), reason="needs real concurrent connections"
    ),
]


def test_forty_concurrent_posts_sell_exactly_the_cap_of_five():
    load(
        buyer("capped", "30.00", caps={"day": 5}, balance="10000.00"),
        buyer("next", "20.00", caps={"day": 20}),
        reauction_cycles=0,  # the leads no bid can take end unsold at once
    )
    pings = [ping(n) for n in range(40)]
    assert all(p["payout"] == "24.00" for p in pings)

    results = run_at_once(
        [
            (lambda n=n, p=p: client().post("/api/v1/post", post_body(p["ping_id"], n), format="json").json())
            for n, p in enumerate(pings)
        ]
    )

    with market_scope():
        capped = Sale.objects.filter(status="sold", contract__slug="capped-c").count()
        nxt = Sale.objects.filter(status="sold", contract__slug="next-c").count()
        from contracts.models import CapCounter

        counters = dict(CapCounter.objects.values_list("contract__slug", "count"))
    assert capped == 5
    assert nxt == 20
    assert counters == {"capped-c": 5, "next-c": 20}
    statuses = sorted(r["status"] for r in results)
    assert statuses == ["sold"] * 25 + ["unsold"] * 15
    assert sorted(r["payout"] for r in results if r["status"] == "sold") == ["16.00"] * 20 + ["24.00"] * 5
    ledger_is_consistent(settled=True)


def test_concurrent_posts_never_take_a_buyer_below_its_credit_limit():
    load(buyer("a", "30.00", balance="100.00", credit_limit="50.00"))
    pings = [ping(n) for n in range(12)]
    results = run_at_once(
        [
            (lambda n=n, p=p: client().post("/api/v1/post", post_body(p["ping_id"], n), format="json").json())
            for n, p in enumerate(pings)
        ]
    )
    assert sum(r["status"] == "sold" for r in results) == 5  # 150.00 of funds / 30.00
    with market_scope():
        account = LedgerAccount.objects.get(organization__slug="a", kind="buyer_balance")
    assert account.balance == Decimal("-50.00")
    ledger_is_consistent(settled=True)


def test_one_consumer_posted_by_two_sellers_at_once_is_sold_once_to_a_buyer():
    load(buyer("a", "30.00"))
    results = run_at_once(
        [
            lambda: client().post("/api/v1/leads", lead_body(7), format="json").json(),
            lambda: (
                client(SELLER2_KEY).post("/api/v1/leads", lead_body(7, campaign="cmp_seller2"), format="json").json()
            ),
        ]
        * 3
    )
    assert sorted(r["status"] for r in results).count("sold") == 1
    with market_scope():
        assert Sale.objects.filter(status="sold").count() == 1
        assert Lead.objects.count() == 6
    ledger_is_consistent(settled=True)
