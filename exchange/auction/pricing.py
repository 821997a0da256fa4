"""Prices and floors: what a contract bids, the least a seller takes, what a winner pays."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_UP, Decimal

from core.money import CENT, ZERO, payout_for
from exchange.auction.book import CompiledContract


def contract_price(contract: CompiledContract, lead: Mapping[str, object]) -> Decimal:
    """A fixed-price contract's bid for this lead: price + modifiers, cut to its ceiling (may raise
    on terms stored around validation: the engine answers that with ``pricing_error``)."""
    assert contract.price is not None
    price = contract.price_modifiers(contract.price, lead)
    return cap_at_max(contract, price)


def cap_at_max(contract: CompiledContract, price: Decimal) -> Decimal:
    """``price`` cut to the contract's ceiling: its max price, never above the offer's max bid (a
    stored contract saved before the bound, or an RTB answer, may ask for more)."""
    return contract.ceiling if price > contract.ceiling else price


def effective_floor(*, offer_floor: Decimal, payout_floor: Decimal, margin_percent: Decimal) -> Decimal | None:
    """The least price a bid may have: the offer's floor, and enough to pay the campaign's floor.

    None when no price can pay the seller's floor (a 100 % margin with a positive floor).
    """
    floor = max(offer_floor, ZERO)
    if payout_floor <= ZERO:
        return floor
    share = (Decimal(100) - margin_percent) / Decimal(100)
    if share <= ZERO:
        return None
    price = (payout_floor / share).quantize(CENT, rounding=ROUND_UP)
    while payout_for(price, margin_percent) < payout_floor:  # at most a cent or two of rounding
        price += CENT
    while price > CENT and payout_for(price - CENT, margin_percent) >= payout_floor:
        price -= CENT
    return max(floor, price)
