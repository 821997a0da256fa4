"""Distribution: which priced bids win a ping, in what order the rest stand by, and what each pays.

Every rule ranks all bids (winners first, then the stand-ins a rejected lead falls to). Ties go
to the higher priority, then to a draw seeded by the ping id, so an auction can be replayed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby

from core.money import CENT
from exchange.auction.book import CompiledContract


@dataclass(frozen=True)
class Priced:
    contract: CompiledContract
    bid_price: Decimal
    ref: str = ""


@dataclass(frozen=True)
class Ranked:
    contract: CompiledContract
    bid_price: Decimal
    price: Decimal
    won: bool
    rank: int
    ref: str = ""


def tie_draw(seed: str, contract: CompiledContract) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{contract.public_id}".encode()).digest()[:8], "big")


def _by_price(bids: Sequence[Priced], seed: str) -> list[Priced]:
    """Highest bid first, then the higher priority; bids tied on both by the ping's draw (only
    they pay for its hash)."""
    ordered: list[Priced] = []
    for _, group in groupby(sorted(bids, key=_price_key), key=_price_key):
        tied = list(group)
        if len(tied) > 1:
            tied.sort(key=lambda b: tie_draw(seed, b.contract))
        ordered.extend(tied)
    return ordered


def _price_key(bid: Priced) -> tuple[Decimal, int]:
    return (-bid.bid_price, -bid.contract.priority)


def _best_per_buyer(ordered: list[Priced]) -> tuple[list[Priced], list[Priced]]:
    """Each buyer organization's best bid, in order, and the rest."""
    seen: set[int] = set()
    best: list[Priced] = []
    rest: list[Priced] = []
    for bid in ordered:
        (rest if bid.contract.organization_id in seen else best).append(bid)
        seen.add(bid.contract.organization_id)
    return best, rest


def _single_winner(ordered: list[Priced], winner_index: int) -> tuple[list[Priced], int]:
    winner = ordered.pop(winner_index)
    return [winner, *ordered], 1


def rank_bids(
    *,
    distribution: str,
    bids: Sequence[Priced],
    seed: str,
    multisell_max: int,
    hybrid_floor: Decimal | None,
    round_robin_turn: Callable[[], int],
) -> tuple[list[Priced], int, str]:
    """Order the bids for this rule; return (ordered bids, number of winners, rule applied)."""
    ordered = _by_price(bids, seed)
    if not ordered:
        return [], 0, distribution
    if distribution == "hybrid":
        exclusive = hybrid_floor is not None and ordered[0].bid_price >= hybrid_floor
        distribution = "exclusive" if exclusive else "multisell"
    if distribution == "exclusive":
        return ordered, 1, distribution
    if distribution == "multisell":
        best, rest = _best_per_buyer(ordered)
        winners = best[:multisell_max]
        return [*winners, *best[multisell_max:], *rest], len(winners), distribution
    if distribution == "priority":
        ordered = sorted(bids, key=lambda b: (-b.contract.priority, -b.bid_price, tie_draw(seed, b.contract)))
        return ordered, 1, distribution
    if distribution == "weighted":
        total = sum(b.contract.weight for b in ordered)
        if total <= 0:
            return ordered, 1, distribution
        point = random.Random(seed).uniform(0, total)  # noqa: S311 - a fair draw, not a secret  # nosec B311
        for index, bid in enumerate(ordered):
            point -= bid.contract.weight
            if point <= 0:
                return (*_single_winner(ordered, index), distribution)
        return (*_single_winner(ordered, len(ordered) - 1), distribution)
    if distribution == "round_robin":
        by_id = sorted(ordered, key=lambda b: b.contract.id)
        chosen = by_id[round_robin_turn() % len(by_id)]
        return (*_single_winner(ordered, ordered.index(chosen)), distribution)
    raise ValueError(f"unknown distribution {distribution!r}")


def prices_paid(*, ordered: list[Priced], winners: int, pricing: str, rule: str, floor: Decimal) -> list[Ranked]:
    """What each ranked bid pays if it sells.

    first_price: its bid. second_price, one winner (and each stand-in): the best price ranked
    after it + 0.01. second_price, multisell: the highest losing price, the same for every winner.
    Never below the floor nor above the bid.
    """

    def clamp(value: Decimal, bid: Decimal) -> Decimal:
        return min(max(value, floor), bid)

    ranked: list[Ranked] = []
    clearing = None
    if pricing == "second_price" and rule == "multisell":
        losing = [b.bid_price for b in ordered[winners:]]
        clearing = max(losing) if losing else floor
    for index, bid in enumerate(ordered):
        if pricing != "second_price":
            price = bid.bid_price
        elif clearing is not None:
            price = clamp(clearing, bid.bid_price)
        else:
            below = [b.bid_price for b in ordered[index + 1 :]]
            price = clamp(max(below) + CENT, bid.bid_price) if below else clamp(floor, bid.bid_price)
        ranked.append(Ranked(bid.contract, bid.bid_price, price, index < winners, index, bid.ref))
    return ranked
