"""One auction: evaluate every contract of the offer for a ping, price, rank, keep the waterfall.

Runs under the market scope (it reads every buyer's state) and hands back only what the caller
must store; cutting it to what each party may see is the API's job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Max, Q

from accounts.tenancy import market_scope
from billing.models import LedgerAccount
from billing.money import payout_for
from contracts.models import CapCounter
from contracts.schedules import period_key
from exchange.auction.book import CompiledCampaign, CompiledContract, OfferBook
from exchange.auction.breaker import breaker_record
from exchange.auction.distribution import Priced, Ranked, prices_paid, rank_bids
from exchange.auction.pricing import cap_at_max, contract_price, effective_floor
from exchange.auction.rtb import RtbCall, rtb_body, rtb_collect, rtb_start
from exchange.models import Sale
from leads.services import json_value

LIVE_SALE_STATUSES = (Sale.Status.RESERVED, Sale.Status.SOLD, Sale.Status.RETURNED)


@dataclass(frozen=True)
class PingInput:
    """What the engine needs to know of a ping."""

    seed: str
    offer: OfferBook
    campaign: CompiledCampaign
    lead: Mapping[str, object]
    email_hash: str
    phone_hash: str
    quality_score: int
    test: bool
    now: datetime
    offer_slug: str = ""
    source_token: str = ""
    signing_secrets: Mapping[int, str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    exclude_contract_ids: frozenset[int] = frozenset()


@dataclass
class WaterfallStep:
    contract: CompiledContract
    reason: str
    price: Decimal | None = None
    latency_ms: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "contract": self.contract.public_id,
            "organization": self.contract.organization_id,
            "reason": self.reason,
            "price": None if self.price is None else f"{self.price:.2f}",
            "latency_ms": round(self.latency_ms, 3),
        }


@dataclass
class AuctionResult:
    status: str
    reason: str | None
    ranked: list[Ranked]
    waterfall: list[WaterfallStep] = field(default_factory=list)
    margin_percent: Decimal = Decimal(0)

    @property
    def winners(self) -> list[Ranked]:
        return [r for r in self.ranked if r.won]

    def payout_of(self, ranked: Ranked) -> Decimal:
        return payout_for(ranked.price, self.margin_percent)


@dataclass
class LiveState:
    """Caps, budgets, funds and past purchases of the candidates, read in three queries."""

    counters: dict[tuple[int, str], tuple[int, Decimal]]
    funds: dict[int, Decimal]
    last_purchase: dict[int, datetime]


def cap_keys(contract: CompiledContract, now: datetime) -> dict[str, str]:
    """The period key of each period the contract limits (by count or by money)."""
    periods = set(contract.caps) | set(contract.budgets)
    return {p: period_key(p, now, contract.tz) for p in periods}


def live_state_read(contracts: list[CompiledContract], *, now: datetime, hashes: list[str]) -> LiveState:
    counters: dict[tuple[int, str], tuple[int, Decimal]] = {}
    funds: dict[int, Decimal] = {}
    last_purchase: dict[int, datetime] = {}
    if not contracts:
        return LiveState(counters, funds, last_purchase)
    with market_scope():
        keyed = [(c.id, key) for c in contracts for key in cap_keys(c, now).values()]
        if keyed:
            rows = CapCounter.objects.filter(
                contract_id__in={cid for cid, _ in keyed}, period_key__in={k for _, k in keyed}
            ).values_list("contract_id", "period_key", "count", "spend")
            counters = {(cid, key): (count, spend) for cid, key, count, spend in rows}
        buyer_ids = {c.organization_id for c in contracts}
        for org_id, balance, held, credit in LedgerAccount.objects.filter(
            organization_id__in=buyer_ids, kind=LedgerAccount.Kind.BUYER_BALANCE
        ).values_list("organization_id", "balance", "held", "credit_limit"):
            funds[org_id] = balance - held + credit
        if hashes:
            window = max(c.dedup_days for c in contracts)
            if window > 0:
                match = Q()
                for column in ("email_hash", "phone_hash"):
                    for value in hashes:
                        match |= Q(**{column: value})
                rows = (
                    Sale.objects.filter(match, organization_id__in=buyer_ids, test=False)
                    .filter(status__in=LIVE_SALE_STATUSES, created_at__gte=now - timedelta(days=window))
                    .values("organization_id")
                    .annotate(last=Max("created_at"))
                    .values_list("organization_id", "last")
                )
                last_purchase = dict(rows)
    return LiveState(counters, funds, last_purchase)


def static_reason(contract: CompiledContract, ping: PingInput) -> str | None:
    """The first check (cheapest first) that needs no database and that the contract fails."""
    if not contract.active or not contract.organization_active:
        return "paused"
    if ping.campaign.organization_id in contract.blocked_seller_ids:
        return "seller_blocked"
    if contract.organization_id in ping.campaign.blocked_buyer_ids:
        return "buyer_blocked"
    failed = contract.predicate(ping.lead)
    if failed is not None:
        return f"filtered:{failed}"
    if ping.quality_score < contract.min_score:
        return "below_min_score"
    if not contract.schedule.is_open(ping.now, contract.tz):
        return "schedule_closed"
    return None


def live_reason(contract: CompiledContract, price: Decimal, ping: PingInput, state: LiveState) -> str | None:
    """Caps, budget, funds and dedup, against the state read for this ping."""
    keys = cap_keys(contract, ping.now)
    for period, cap in contract.caps.items():
        count, _ = state.counters.get((contract.id, keys[period]), (0, Decimal(0)))
        if count >= cap:
            return f"cap_reached:{period}"
    for period, budget in contract.budgets.items():
        _, spend = state.counters.get((contract.id, keys[period]), (0, Decimal(0)))
        if spend + price > budget:
            return "budget_reached"
    if state.funds.get(contract.organization_id, Decimal(0)) < price:
        return "insufficient_balance"
    last = state.last_purchase.get(contract.organization_id)
    if last is not None and contract.dedup_days > 0 and last >= ping.now - timedelta(days=contract.dedup_days):
        return "duplicate"
    return None


def rtb_calls(
    ping: PingInput,
    contracts: list[CompiledContract],
    state: LiveState,
    floor: Decimal | None,
    steps: dict[int, WaterfallStep],
) -> list[RtbCall]:
    """The RTB requests worth sending: a buyer that could not buy at any price is not asked."""
    calls: list[RtbCall] = []
    remaining_ms = ping.offer.ping_timeout_ms - (time.perf_counter() - ping.started) * 1000
    lead = {k: json_value(v) for k, v in ping.lead.items()}
    for contract in contracts:
        reason = live_reason(contract, floor or Decimal(0), ping, state)
        if reason is None and floor is None:
            reason = "below_floor"
        if reason is not None:
            steps[contract.id].reason = reason
            continue
        timeout_ms = max(min(contract.rtb_timeout_ms, remaining_ms), 1)
        body = rtb_body(
            ping_id=ping.seed,
            offer=ping.offer_slug,
            contract=contract,
            lead=lead,
            quality_score=ping.quality_score,
            source=ping.source_token,
            tmax_ms=int(timeout_ms),
            test=ping.test,
        )
        calls.append(RtbCall(contract, body, timeout_ms / 1000))
    return calls


def _round_robin_turn(offer_id: int) -> Callable[[], int]:
    def turn() -> int:
        key = f"gavel:rr:{offer_id}"
        cache.add(key, 0, timeout=None)
        try:
            return int(cache.incr(key))
        except ValueError:
            return 0

    return turn


def auction_run(ping: PingInput) -> AuctionResult:
    """Evaluate every contract of the offer and rank the bids (DESIGN.md §8).

    Test pings are evaluated the same way (the seller sees the real answer); they only never
    consume caps or funds, which is the post's business.
    """
    offer, campaign = ping.offer, ping.campaign
    steps: list[WaterfallStep] = []
    survivors: list[CompiledContract] = []
    for contract in offer.contracts:
        if contract.id in ping.exclude_contract_ids:
            continue
        started = time.perf_counter()
        reason = static_reason(contract, ping)
        step = WaterfallStep(contract, reason or "", latency_ms=(time.perf_counter() - started) * 1000)
        steps.append(step)
        if reason is None:
            survivors.append(contract)

    hashes = [h for h in (ping.email_hash, ping.phone_hash) if h]
    state = live_state_read(survivors, now=ping.now, hashes=hashes)
    floor = effective_floor(
        offer_floor=offer.floor, payout_floor=campaign.floor, margin_percent=campaign.margin_percent
    )
    priced: list[Priced] = []
    by_contract = {s.contract.id: s for s in steps}

    def admit(contract: CompiledContract, price: Decimal, ref: str = "") -> None:
        step = by_contract[contract.id]
        step.price = price
        reason = live_reason(contract, price, ping, state)
        if reason is None and (floor is None or price < floor):
            reason = "below_floor"
        if reason is None:
            priced.append(Priced(contract, price, ref))
        step.reason = reason or ""

    # RTB buyers are asked first, so their answers travel while the fixed prices are computed.
    calls = rtb_calls(ping, [c for c in survivors if c.price is None], state, floor, by_contract)
    deadline_s = offer.ping_timeout_ms / 1000 - (time.perf_counter() - ping.started)
    pending = rtb_start(calls, dict(ping.signing_secrets)) if calls else None
    for contract in survivors:
        if contract.price is not None:
            started = time.perf_counter()
            admit(contract, contract_price(contract, ping.lead))
            by_contract[contract.id].latency_ms += (time.perf_counter() - started) * 1000
    if pending is not None:
        remaining = offer.ping_timeout_ms / 1000 - (time.perf_counter() - ping.started)
        answers = rtb_collect(pending, calls, min(remaining, deadline_s))
        contracts = {c.contract.id: c.contract for c in calls}
        for answer in answers:
            step = by_contract[answer.contract_id]
            step.latency_ms = answer.latency_ms
            if answer.reason is not None:
                step.reason = answer.reason
            else:
                assert answer.bid is not None
                admit(contracts[answer.contract_id], cap_at_max(contracts[answer.contract_id], answer.bid), answer.ref)
        breaker_record(answers, contracts)

    ordered, winners, rule = rank_bids(
        distribution=offer.distribution,
        bids=priced,
        seed=ping.seed,
        multisell_max=offer.multisell_max,
        hybrid_floor=offer.hybrid_floor,
        round_robin_turn=_round_robin_turn(offer.id),
    )
    ranked = prices_paid(ordered=ordered, winners=winners, pricing=offer.pricing, rule=rule, floor=floor or Decimal(0))
    for bid in ranked:
        by_contract[bid.contract.id].reason = "won" if bid.won else "outbid"
    result = AuctionResult(
        status="accepted", reason=None, ranked=ranked, waterfall=steps, margin_percent=campaign.margin_percent
    )
    if not ranked:
        result.status = "rejected"
        # Every buyer that would have bid had already bought this consumer.
        result.reason = "duplicate" if any(s.reason == "duplicate" for s in steps) else "no_buyers"
    return result
