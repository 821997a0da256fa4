"""Prices and floors: what a contract bids, the least a seller takes, what a winner pays."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from core.money import ZERO, price_for_payout
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
    """The least price a bid may have: the offer's floor, and enough to pay the campaign's payout
    floor (its floor, or its fixed payout) with the margin's share left to the exchange.

    None when no price can pay the seller's floor (a 100 % margin with a positive floor).
    """
    price = price_for_payout(payout_floor, margin_percent)
    if price is None:
        return None
    return max(offer_floor, ZERO, price)
