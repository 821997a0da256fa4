"""One auction: evaluate every contract of the offer for a ping, price, rank, keep the waterfall.

Runs under the market scope (it reads every buyer's state) and hands back only what the caller
must store; cutting it to what each party may see is the API's job.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from zoneinfo import ZoneInfo

from django.core.cache import cache
from django.db import connection
from django.utils.dateparse import parse_datetime

from billing.sql import available_funds_part
from contracts.rules import ping_values
from contracts.schedules import period_key
from contracts.sql import cap_counters_part
from core.money import payout_for
from core.sql import Dialect, SqlPart, bound_cursor, dialect_of
from exchange.auction.book import CompiledCampaign, CompiledContract, OfferBook
from exchange.auction.breaker import breaker_record, breaker_retry_take
from exchange.auction.distribution import Priced, Ranked, prices_paid, rank_bids
from exchange.auction.pricing import cap_at_max, contract_price, effective_floor
from exchange.auction.rtb import RtbCall, rtb_body, rtb_collect, rtb_start
from exchange.models import Ping, Sale
from leads.services import json_value
from leads.sql import suppressed_part

LIVE_SALE_STATUSES = (Sale.Status.RESERVED, Sale.Status.SOLD, Sale.Status.RETURNED)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepeatProbe:
    """Look for a seller's unexpired ping with this fingerprint (an exact repeat)."""

    organization_id: int
    fingerprint: str
    now: datetime

    def part(self, sql: Dialect) -> SqlPart:
        """The unexpired ping with the fingerprint (the first, if two identical pings raced), in
        live-state row shape: its seller, and its id as text. One step down the
        (fingerprint, expires_at) index; the seller is checked on the row (a condition on it let
        the planner scan all of the seller's pings)."""
        return (
            f"SELECT 'r', organization_id, CAST(id AS text), {sql.null('bigint')}, {sql.null('numeric')}, "  # nosec B608  # names and placeholders only
            f"{sql.null('timestamptz')} "
            f"FROM (SELECT organization_id, id FROM {Ping._meta.db_table} WHERE fingerprint = %s "
            "AND expires_at > %s ORDER BY expires_at LIMIT 1) AS first_ping",
            [self.fingerprint, self.now],
        )

    def first(self, organization_id: int, ping_id: str) -> int | None:
        """The earlier ping's id, if it is this seller's."""
        return int(ping_id) if organization_id == self.organization_id else None


@dataclass(frozen=True)
class AuctionPing:
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
    # Contracts that may not buy this lead again, with the waterfall's reason (a re-auction leaves
    # out the buyers that turned the lead down; a direct route that failed, its contract).
    excluded: Mapping[int, str] = field(default_factory=dict)
    # The seller campaign's direct route, when the draw sent this ping to it (DESIGN: drawn first).
    direct: DirectRoute | None = None
    # An earlier ping this one repeats exactly is answered as it was then instead of being
    # auctioned again (None: no such check).
    repeat: RepeatProbe | None = None
    # One-to-one consent (the offer requires it): the buyers the consent names, by organization
    # slug or public name, lower-cased; any other buyer is "not_named_in_consent". None: anyone.
    named_buyers: frozenset[str] | None = None
    # The lead's values with the ping's own ($source, $hour, $weekday), per buyer time zone.
    _values_by_tz: dict[ZoneInfo, Mapping[str, object]] = field(default_factory=dict, repr=False, compare=False)

    def values_for(self, contract: CompiledContract) -> Mapping[str, object]:
        """What the contract's filters and modifiers test: the lead's values, and the ping's own
        fields for a contract that tests them — computed once per buyer time zone per ping."""
        if not contract.pseudo_fields:
            return self.lead
        values = self._values_by_tz.get(contract.tz)
        if values is None:
            values = ping_values(self.lead, source=self.source_token, now=self.now, tz=contract.tz)
            self._values_by_tz[contract.tz] = values
        return values


@dataclass(frozen=True)
class DirectRoute:
    """A campaign's direct route for one ping: its contract at a fixed price, tried before any auction."""

    contract_id: int
    price: Decimal


def direct_route_draw(campaign: CompiledCampaign, seed: str) -> DirectRoute | None:
    """The campaign's direct route if this ping falls in its share: a stable draw on the ping's id
    (SHA-256, 0–99, under ``direct_share_percent``), so the same ping always draws the same."""
    if campaign.direct_contract_id is None or campaign.direct_price is None or campaign.direct_share_percent <= 0:
        return None
    draw = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") % 100
    if draw >= campaign.direct_share_percent:
        return None
    return DirectRoute(campaign.direct_contract_id, campaign.direct_price)


@dataclass
class WaterfallStep:
    contract: CompiledContract
    reason: str
    price: Decimal | None = None
    latency_ms: float = 0.0
    kind: str = ""  # "direct": the campaign's direct route; "": the auction

    def as_json(self) -> dict[str, object]:
        step: dict[str, object] = {
            "contract": self.contract.public_id,
            "organization": self.contract.organization_id,
            "reason": self.reason,
            "price": None if self.price is None else f"{self.price:.2f}",
            "latency_ms": round(self.latency_ms, 3),
        }
        if self.kind:
            step["step"] = self.kind
        return step


@dataclass
class AuctionResult:
    status: str
    reason: str | None
    ranked: list[Ranked]
    waterfall: list[WaterfallStep] = field(default_factory=list)
    margin_percent: Decimal = Decimal(0)
    payout_fixed: Decimal | None = None
    # The earlier ping this one repeats exactly (AuctionPing.repeat): nothing was auctioned.
    repeat_of: int | None = None
    # Contracts the offer's index left out, counted by reason (``{"filtered:state": 2850}``): they
    # have no step of their own.
    left_out: dict[str, int] = field(default_factory=dict)

    def waterfall_json(self) -> list[dict[str, object]]:
        """The waterfall as stored on the ping: a step per contract looked at, then one entry per
        reason the index left contracts out, ``{"reason": "filtered:state", "contracts": 2850}``."""
        return [
            *(step.as_json() for step in self.waterfall),
            *({"reason": reason, "contracts": count} for reason, count in self.left_out.items()),
        ]

    @property
    def winners(self) -> list[Ranked]:
        return [r for r in self.ranked if r.won]

    def payout_of(self, ranked: Ranked) -> Decimal:
        return payout_for(ranked.price, self.margin_percent, fixed=self.payout_fixed)


@dataclass
class LiveState:
    """Caps, budgets, funds, past purchases and opt-out of one ping, read in one round trip."""

    counters: dict[tuple[int, str], tuple[int, Decimal]]
    funds: dict[int, Decimal]
    last_purchase: dict[int, datetime]
    suppressed: bool = False
    # Buyers that put this consumer on their own do-not-contact list.
    suppressed_buyers: set[int] = field(default_factory=set)
    repeat_of: int | None = None


def cap_keys(contract: CompiledContract, now: datetime) -> Mapping[str, str]:
    """The period key of each period the contract limits (by count or by money)."""
    return _period_keys(contract.periods, now, contract.tz)


@functools.lru_cache(maxsize=1024)
def _period_keys(periods: tuple[str, ...], now: datetime, tz: ZoneInfo) -> Mapping[str, str]:
    # A ping asks this of every contract, several times, at one instant; most share a time zone.
    return MappingProxyType({p: period_key(p, now, tz) for p in periods})


def _purchases_part(buyer_ids: list[int], hashes: list[str], *, since: datetime, sql: Dialect) -> SqlPart:
    """Rows ``('d', buyer id, NULL, NULL, NULL, last purchase)``: each buyer's last live purchase of
    this consumer (by email or phone hash) since ``since``, for the dedup windows."""
    emails, email_params = sql.in_("email_hash", hashes, "text")
    phones, phone_params = sql.in_("phone_hash", hashes, "text")
    buyers, buyer_params = sql.in_("organization_id", buyer_ids, "bigint")
    statuses, status_params = sql.in_("status", [str(s) for s in LIVE_SALE_STATUSES], "text")
    return (
        f"SELECT 'd', organization_id, {sql.null('text')}, {sql.null('bigint')}, {sql.null('numeric')}, "  # nosec B608  # names and placeholders only
        f"MAX(created_at) FROM {Sale._meta.db_table} WHERE ({emails} OR {phones}) AND {buyers} AND {statuses} "
        "AND test = %s AND created_at >= %s GROUP BY organization_id",
        [*email_params, *phone_params, *buyer_params, *status_params, False, since],
    )


def live_state_read(
    contracts: list[CompiledContract], *, now: datetime, hashes: list[str], repeat: RepeatProbe | None = None
) -> LiveState:
    """Read everything the auction needs from the database in ONE query (a UNION ALL): the cap
    counters of the current periods, each buyer's available funds, each buyer's last purchase of
    this consumer within the widest dedup window, whether the consumer opted out (exchange-wide,
    or on which of these buyers' own lists), and (``repeat``)
    the first answer to an exact repeat of this ping.

    One round trip instead of five is most of a ping's database time; the rows are tagged by kind.
    """
    state = LiveState({}, {}, {})
    sql = dialect_of(connection.vendor)
    parts: list[SqlPart] = []
    if repeat is not None:
        parts.append(repeat.part(sql))
    buyer_ids = sorted({c.organization_id for c in contracts})
    keyed = [(c.id, key) for c in contracts for key in cap_keys(c, now).values()]
    if keyed:
        parts.append(cap_counters_part(keyed, sql))
    if buyer_ids:
        parts.append(available_funds_part(buyer_ids, sql))
    window = max((c.dedup_days for c in contracts), default=0)
    if hashes and buyer_ids and window > 0:
        parts.append(_purchases_part(buyer_ids, hashes, since=now - timedelta(days=window), sql=sql))
    if hashes:
        parts.append(suppressed_part(hashes, buyer_ids, sql))
    if not parts:
        return state
    with bound_cursor() as cursor:
        # Only table names and placeholders are interpolated; every value is a parameter.
        cursor.execute(" UNION ALL ".join(part for part, _ in parts), [p for _, params in parts for p in params])
        rows = cursor.fetchall()
    for kind, key_id, period, count, amount, at in rows:
        if kind == "c":
            state.counters[(key_id, period)] = (int(count), _decimal(amount))
        elif kind == "f":
            state.funds[key_id] = _decimal(amount)
        elif kind == "d":
            state.last_purchase[key_id] = _aware(at)
        elif kind == "r":
            assert repeat is not None
            state.repeat_of = repeat.first(key_id, period)
        elif period == "exchange":
            state.suppressed = True
        else:
            state.suppressed_buyers.add(key_id)
    return state


def repeat_read(repeat: RepeatProbe) -> int | None:
    """The earlier ping an exact repeat repeats, for a ping that runs no auction (live_state_read
    asks it with the rest otherwise)."""
    sql, params = repeat.part(dialect_of(connection.vendor))
    with bound_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else repeat.first(row[1], row[2])


def _decimal(value: object) -> Decimal:
    # SQLite hands back floats for computed numerics; amounts are cents, so str() is exact.
    return value if isinstance(value, Decimal) else Decimal(str(value)).quantize(Decimal("0.01"))


def _aware(value: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = parse_datetime(str(value))
    assert parsed is not None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def named_buyers_of(offer: OfferBook, consent: Mapping[str, object]) -> frozenset[str] | None:
    """The buyers a one-to-one consent names (organization slugs or public names, lower-cased),
    for an offer that requires one-to-one consent; None for any other offer (anyone may buy)."""
    if not offer.one_to_one_consent:
        return None
    named = consent.get("named_buyers")
    if not isinstance(named, list | tuple):
        return frozenset()
    return frozenset(n.strip().lower() for n in named if isinstance(n, str) and n.strip())


def lead_refusal(contract: CompiledContract, *, score: int, named_buyers: frozenset[str] | None) -> str | None:
    """Why a contract may not buy a posted lead whatever its bid: the lead's score (the ping's and
    the post's signals) under its minimum, or a one-to-one consent that does not name its buyer."""
    if named_buyers is not None and not (contract.organization_names & named_buyers):
        return "not_named_in_consent"
    if score < contract.min_score:
        return "below_min_score"
    return None


def static_reason(contract: CompiledContract, ping: AuctionPing) -> str | None:
    """The first check (cheapest first) that needs no database and that the contract fails.

    A contract the circuit breaker paused passes once its retry is due (half-open); whether this
    ping is the one that asks it is settled in :func:`rtb_calls`.
    """
    if not contract.organization_active or not (contract.active or contract.retry_due(ping.now)):
        return "paused"
    if contract.terms_error:
        return "invalid_terms"
    if ping.campaign.organization_id in contract.blocked_seller_ids:
        return "seller_blocked"
    if contract.organization_id in ping.campaign.blocked_buyer_ids:
        return "buyer_blocked"
    if ping.named_buyers is not None and not (contract.organization_names & ping.named_buyers):
        return "not_named_in_consent"
    failed = contract.predicate(ping.values_for(contract))
    if failed is not None:
        return f"filtered:{failed}"
    if ping.quality_score < contract.min_score:
        return "below_min_score"
    if not contract.schedule.is_open(ping.now, contract.tz):
        return "schedule_closed"
    return None


def live_reason(contract: CompiledContract, price: Decimal, ping: AuctionPing, state: LiveState) -> str | None:
    """A buyer's own opt-out list, caps, budget, funds and dedup, against the state read for this ping."""
    if contract.organization_id in state.suppressed_buyers:
        return "suppressed"
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
    ping: AuctionPing,
    contracts: list[CompiledContract],
    state: LiveState,
    floor: Decimal | None,
    steps: dict[int, WaterfallStep],
) -> list[RtbCall]:
    """The RTB requests worth sending: a buyer that could not buy at any price is not asked, nor a
    contract the circuit breaker paused while another ping's retry of it is in flight."""
    calls: list[RtbCall] = []
    remaining_ms = ping.offer.ping_timeout_ms - (time.perf_counter() - ping.started) * 1000
    lead = {k: json_value(v) for k, v in ping.lead.items()}
    for contract in contracts:
        reason = live_reason(contract, floor or Decimal(0), ping, state)
        if reason is None and floor is None:
            reason = "below_floor"
        if reason is None and not contract.active and not breaker_retry_take(contract.id):
            reason = "paused"
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


def auction_run(ping: AuctionPing) -> AuctionResult:
    """Evaluate every contract of the offer and rank the bids (DESIGN.md §8).

    Test pings are evaluated the same way (the seller sees the real answer); they only never
    consume caps or funds, which is the post's business.
    """
    offer, campaign = ping.offer, ping.campaign
    steps: list[WaterfallStep] = []
    survivors: list[CompiledContract] = []
    # The contracts the lead could satisfy, by the offer's index; the others are counted by reason.
    positions, left_out = offer.index.candidates(ping.lead)
    for position in positions:
        contract = offer.contracts[position]
        started = time.perf_counter()
        reason = ping.excluded.get(contract.id) if ping.excluded else None
        reason = reason or static_reason(contract, ping)
        step = WaterfallStep(contract, reason or "", latency_ms=(time.perf_counter() - started) * 1000)
        steps.append(step)
        if reason is None:
            survivors.append(contract)

    hashes = [h for h in (ping.email_hash, ping.phone_hash) if h]
    state = live_state_read(survivors, now=ping.now, hashes=hashes, repeat=ping.repeat)
    if state.repeat_of is not None:
        return AuctionResult(status="repeat", reason=None, ranked=[], repeat_of=state.repeat_of)
    if state.suppressed:
        for step in steps:
            step.reason = step.reason or "suppressed"
        return AuctionResult(status="rejected", reason="suppressed", ranked=[], waterfall=steps, left_out=left_out)
    if ping.direct is not None:
        direct_step = _direct_step(ping, ping.direct, steps, state)
        if direct_step is not None and direct_step.reason == "won":
            # Sold to the direct route: no auction, and no waterfall but this step.
            ranked = [Ranked(direct_step.contract, ping.direct.price, ping.direct.price, True, 0)]
            return AuctionResult("accepted", None, ranked, [direct_step], campaign.margin_percent)
        if direct_step is not None:
            steps.insert(0, direct_step)
    floor = effective_floor(
        offer_floor=offer.floor, payout_floor=campaign.payout_floor, margin_percent=campaign.margin_percent
    )
    priced: list[Priced] = []
    by_contract = {s.contract.id: s for s in steps if not s.kind}

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
            try:
                price = contract_price(contract, ping.values_for(contract))
            except Exception:
                # Terms are bounded when saved, so this is a row written around that (or a bug): one
                # contract's failure skips that contract, never the auction nor the seller's answer.
                logger.exception("pricing contract %s failed", contract.public_id)
                by_contract[contract.id].reason = "pricing_error"
            else:
                admit(contract, price)
            by_contract[contract.id].latency_ms += (time.perf_counter() - started) * 1000
    if pending is not None:
        remaining = offer.ping_timeout_ms / 1000 - (time.perf_counter() - ping.started)
        answers = rtb_collect(pending, min(remaining, deadline_s))
        contracts = {c.contract.id: c.contract for c in calls}
        for answer in answers:
            step = by_contract[answer.contract_id]
            step.latency_ms = answer.latency_ms
            if answer.reason is not None:
                step.reason = answer.reason
            else:
                assert answer.bid is not None
                admit(contracts[answer.contract_id], cap_at_max(contracts[answer.contract_id], answer.bid), answer.ref)
        breaker_record(answers, contracts, now=ping.now)

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
        status="accepted",
        reason=None,
        ranked=ranked,
        waterfall=steps,
        margin_percent=campaign.margin_percent,
        payout_fixed=campaign.payout_fixed,
        left_out=left_out,
    )
    if not ranked:
        result.status = "rejected"
        # Every buyer that would have bid had already bought this consumer.
        result.reason = "duplicate" if any(s.reason == "duplicate" for s in steps) else "no_buyers"
    return result


def _direct_step(
    ping: AuctionPing, direct: DirectRoute, steps: list[WaterfallStep], state: LiveState
) -> WaterfallStep | None:
    """The direct route's contract checked like any bid, at the route's price: its auction step's
    reason if it failed a check that needs no price (paused, filters, schedule…), else its
    buyer's opt-out list, caps, budget, funds and dedup. ``won`` when it can take the lead. Its
    live state was read with the others (it is one of the offer's contracts): no query of its own."""
    started = time.perf_counter()
    contract = ping.offer.contracts_by_id.get(direct.contract_id)
    if contract is None:  # not in the offer's book (gone since the campaign named it): no direct route
        return None
    own = next((s for s in steps if s.contract.id == direct.contract_id), None)
    # Not among the steps: the index left it out, and its filters say why.
    reason = own.reason if own is not None else static_reason(contract, ping)
    reason = reason or ("" if contract.active else "paused")
    reason = reason or live_reason(contract, direct.price, ping, state) or "won"
    return WaterfallStep(contract, reason, direct.price, (time.perf_counter() - started) * 1000, kind="direct")


def auction_dry_run(ping: AuctionPing, contracts: list[CompiledContract]) -> list[WaterfallStep]:
    """What each of ``contracts`` would do with ``ping``, by the auction's own checks and prices
    (:func:`static_reason`, :func:`live_reason`, :func:`contract_price`, the floor), for a buyer
    testing its terms: each step's reason is ``""`` when the contract would bid, at ``price``.

    Reads the live state (caps, budgets, funds) in one query and writes nothing: no ping, no bid,
    no cap, no money. An RTB contract that would be asked is not called: its step has the reason
    ``rtb_would_ask`` and no price. Nothing is ranked (other buyers' contracts are not looked at).
    """
    steps = [WaterfallStep(contract, static_reason(contract, ping) or "") for contract in contracts]
    survivors = [step.contract for step in steps if not step.reason]
    state = live_state_read(survivors, now=ping.now, hashes=[h for h in (ping.email_hash, ping.phone_hash) if h])
    floor = effective_floor(
        offer_floor=ping.offer.floor,
        payout_floor=ping.campaign.payout_floor,
        margin_percent=ping.campaign.margin_percent,
    )
    for step in steps:
        contract = step.contract
        if step.reason:
            continue
        if state.suppressed:
            step.reason = "suppressed"
        elif contract.price is None:
            # As rtb_calls: a buyer that could not buy at any price is not asked; a contract the
            # circuit breaker holds would be asked only by the ping that takes its retry.
            reason = live_reason(contract, floor or Decimal(0), ping, state)
            if reason is None and floor is None:
                reason = "below_floor"
            if reason is None and not contract.active:
                reason = "paused"
            step.reason = reason or "rtb_would_ask"
        else:
            try:
                step.price = contract_price(contract, ping.values_for(contract))
            except Exception:
                logger.exception("pricing contract %s failed", contract.public_id)
                step.reason = "pricing_error"
                continue
            reason = live_reason(contract, step.price, ping, state)
            if reason is None and (floor is None or step.price < floor):
                reason = "below_floor"
            step.reason = reason or ""
    return steps
