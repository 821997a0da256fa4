"""A post's reservation of a contract's caps and budgets: one statement, all periods or none."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from accounts.tenancy import market_scope
from contracts.models import BuyerContract, CapCounter
from contracts.services import CapRefused, cap_reserve
from tests.exchange.builder import buyer, load

pytestmark = pytest.mark.django_db

KEYS = {"day": "d2026-11-22", "month": "m2026-11"}


@pytest.fixture
def contract() -> BuyerContract:
    load(buyer("a", "10.00"))
    with market_scope():
        return BuyerContract.objects.get(slug="a-c")


def reserve(contract: BuyerContract, price: str, *, caps: dict[str, int], budgets: dict[str, str]) -> str:
    """Reserve as a post does, in a transaction rolled back on refusal: "counted" or the reason."""
    try:
        with transaction.atomic():
            cap_reserve(
                contract_id=contract.pk,
                organization_id=contract.organization_id,
                keys=KEYS,
                caps=caps,
                budgets={p: Decimal(v) for p, v in budgets.items()},
                price=Decimal(price),
            )
    except CapRefused as exc:
        return exc.reason
    return "counted"


def counters(contract: BuyerContract) -> dict[str, tuple[int, Decimal]]:
    with market_scope():
        return {c.period: (c.count, c.spend) for c in CapCounter.objects.filter(contract=contract)}


def test_each_period_counts_the_lead_until_its_cap_then_none_does(contract):
    limits = {"caps": {"day": 2}, "budgets": {"month": "100.00"}}

    answers = [reserve(contract, "30.00", **limits) for _ in range(3)]

    assert answers == ["counted", "counted", "cap_reached:day"]
    assert counters(contract) == {"day": (2, Decimal("60.00")), "month": (2, Decimal("60.00"))}


def test_a_price_past_the_budget_is_refused_and_counts_nowhere(contract):
    limits = {"caps": {"day": 10}, "budgets": {"month": "50.00"}}
    assert reserve(contract, "30.00", **limits) == "counted"

    assert reserve(contract, "20.01", **limits) == "budget_reached"
    assert reserve(contract, "20.00", **limits) == "counted"  # exactly the budget

    assert counters(contract) == {"day": (2, Decimal("50.00")), "month": (2, Decimal("50.00"))}


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        ({"caps": {"day": 0}, "budgets": {}}, "cap_reached:day"),
        ({"caps": {}, "budgets": {"month": "9.99"}}, "budget_reached"),
    ],
)
def test_limits_no_lead_fits_in_are_refused_before_any_counter_exists(contract, limits, reason):
    assert reserve(contract, "10.00", **limits) == reason
    assert counters(contract) == {}
