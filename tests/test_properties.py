"""Hypothesis properties of the money helpers (core/money.py)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from core.money import money_str, payout_for, to_money

AMOUNTS = st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), allow_nan=False, places=4)
PERCENTS = st.decimals(min_value=Decimal("0"), max_value=Decimal("100"), allow_nan=False, places=2)


@given(AMOUNTS)
def test_to_money_is_a_decimal_with_at_most_two_places(value: Decimal) -> None:
    money = to_money(value)
    assert isinstance(money, Decimal) and not isinstance(money, float)
    assert -money.as_tuple().exponent <= 2  # type: ignore[operator]
    assert abs(money - value) <= Decimal("0.005")


@given(AMOUNTS, PERCENTS)
def test_the_payout_and_the_margin_make_the_price(price: Decimal, margin: Decimal) -> None:
    price = to_money(price)
    payout = payout_for(price, margin)
    share = to_money(price * margin / 100)
    assert payout <= price
    assert abs(payout + share - price) <= Decimal("0.01")


@given(AMOUNTS)
def test_money_str_round_trips(value: Decimal) -> None:
    money = to_money(value)
    assert to_money(money_str(money)) == money
