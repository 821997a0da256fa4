"""The money invariants under random operations, some of them concurrent, on real PostgreSQL.

A hypothesis state machine tops buyers up (and retries top-ups), sells leads (several posts at
once, from a campaign paid the margin share and from one paid a fixed payout per sale), returns
and decides purchases, and pays sellers (and retries payouts). After every step:
every transaction sums to zero, every cached balance is the sum of its entries, no funds stay
held, no buyer is below its credit limit, and no sale or retry is booked twice.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.conf import settings
from django.db.models import Count, Sum
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from accounts.models import Organization
from accounts.tenancy import market_scope
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction
from billing.services import BillingError, payout_record, topup_record
from core.errors import ExchangeError
from core.money import payout_for
from exchange.models import Sale
from exchange.returns.services import return_decide, return_request
from tests.exchange.builder import SELLER2_KEY, SELLER_KEY, buyer, client, load, ping_body, post_body, run_at_once

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), reason="needs real concurrent connections"
    ),
]

FIXED_PAYOUT = "7.00"  # at a 33.33 % margin, bids from 10.50
AMOUNTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("80.00"), places=2)


class Money(RuleBasedStateMachine):
    consumer = 0

    @initialize()
    def market(self):
        load(
            buyer("rich", "30.00", balance="200.00", credit_limit="50.00"),
            buyer("lean", "22.50", balance="40.00"),
            buyer("tiny", "0.01", balance="1.00", filters={"field": "age", "op": "gt", "value": 60}),
            floor="0.00",
            reauction_cycles=0,
            margin_percent="33.33",
            # The first seller's campaign pays a fixed payout per sale; the second's, the share.
            campaign={"payout_fixed": FIXED_PAYOUT},
        )
        self.keys: list[tuple[str, str, Decimal]] = []

    def _org(self, slug):
        return Organization.objects.get(slug=slug)

    @rule(slug=st.sampled_from(["rich", "lean", "tiny"]), amount=AMOUNTS, retry=st.booleans())
    def top_up(self, slug, amount, retry):
        Money.consumer += 1
        key = f"hyp-topup-{Money.consumer}"
        for _ in range(2 if retry else 1):
            topup_record(organization=self._org(slug), amount=amount, reference="wire", idempotency_key=key)

    @rule(posts=st.integers(min_value=1, max_value=4), old=st.booleans(), fixed=st.booleans())
    def sell(self, posts, old, fixed):
        key, campaign = (SELLER_KEY, "cmp_seller") if fixed else (SELLER2_KEY, "cmp_seller2")
        bodies = []
        for _ in range(posts):
            Money.consumer += 1
            age = 70 if old else 30
            body = ping_body(Money.consumer, campaign=campaign, age=age)
            answer = client(key).post("/api/v1/ping", body, format="json").json()
            bodies.append(post_body(answer["ping_id"], Money.consumer, age=age))
        results = run_at_once(
            [(lambda b=b: client(key).post("/api/v1/post", b, format="json").status_code) for b in bodies]
        )
        assert results == [200] * posts

    @rule(pick=st.integers(min_value=0, max_value=10_000), approve=st.booleans())
    def give_back(self, pick, approve):
        with market_scope():
            sold = list(Sale.objects.filter(status="sold", test=False).select_related("organization").order_by("pk"))
        if not sold:
            return
        sale = sold[pick % len(sold)]
        try:
            ret = return_request(buyer=sale.organization, sale_public_id=sale.public_id, reason="bad_phone")
        except ExchangeError:
            return  # already returned, or decided: nothing to book
        if ret.status == "requested":
            return_decide(ret=ret, approve=approve, user=None)
            return_decide(ret=ret, approve=approve, user=None)  # deciding twice books once

    @rule(share=st.integers(min_value=1, max_value=100), retry=st.booleans())
    def pay_out(self, share, retry):
        seller = self._org("seller")
        with market_scope():
            owed = LedgerAccount.objects.filter(organization=seller, kind="seller_payable").values_list(
                "balance", flat=True
            ).first() or Decimal(0)
        amount = (owed * share / 100).quantize(Decimal("0.01"))
        if amount <= 0:
            return
        Money.consumer += 1
        key = f"hyp-payout-{Money.consumer}"
        for _ in range(2 if retry else 1):
            try:
                payout_record(
                    seller=seller,
                    amount=amount,
                    period_start=date(2026, 11, 1),
                    period_end=date(2026, 11, 30),
                    reference="ach",
                    idempotency_key=key,
                )
            except BillingError:
                return

    @invariant()
    def books_balance(self):
        with market_scope():
            unbalanced = LedgerTransaction.objects.annotate(total=Sum("entries__amount")).exclude(total=0).count()
            assert unbalanced == 0
            for account in LedgerAccount.objects.all():
                total = LedgerEntry.objects.filter(account=account).aggregate(t=Sum("amount"))["t"] or Decimal(0)
                assert account.balance == total, account
                assert account.held == Decimal("0.00"), account
                if account.kind == "buyer_balance":
                    assert account.balance >= -account.credit_limit, account
                # A seller's payable may go below zero: a return after a payout claws money back.
            booked = Sale.objects.filter(status__in=["sold", "returned"], test=False).count()
            sale_txns = LedgerTransaction.objects.filter(kind="sale").count()
            assert booked == sale_txns
            twice = (
                LedgerTransaction.objects.filter(kind="sale")
                .values("idempotency_key")
                .annotate(n=Count("id"))
                .filter(n__gt=1)
                .count()
            )
            assert twice == 0
            returned = Sale.objects.filter(status="returned").count()
            assert LedgerTransaction.objects.filter(kind="return").count() == returned
            # Each sale books exactly price / payout / margin: the fixed payout, or the share.
            for sale in Sale.objects.filter(status__in=["sold", "returned"], test=False).select_related("campaign"):
                fixed = sale.campaign.payout_fixed
                assert sale.payout == (fixed if fixed is not None else payout_for(sale.price, Decimal("33.33")))
                assert sale.margin == sale.price - sale.payout >= 0, sale
                entries = dict(
                    LedgerEntry.objects.filter(transaction__idempotency_key=f"sale:{sale.public_id}").values_list(
                        "account__kind", "amount"
                    )
                )
                assert entries.get("seller_payable", Decimal(0)) == sale.payout, entries  # a 0.00 line is left out
                assert entries.get("platform_revenue", Decimal(0)) == sale.margin, entries


def test_the_money_invariants_hold_under_random_concurrent_operations():
    run_state_machine_as_test(
        Money,
        settings=hsettings(
            max_examples=12,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
