"""Selling a lead to a contract: reserve, deliver, book or release; route through the bids."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from celery import signature
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import market_scope
from billing.services import FundsRefused, funds_hold, funds_release, sale_book
from contracts.services import CapRefused, cap_release, cap_reserve
from core.hooks import event_emit
from core.money import ZERO, money_str, payout_for
from core.outbound import http_send_all
from core.sql import model_insert, sql_rows
from exchange.auction.book import CompiledContract, OfferBook
from exchange.auction.engine import LIVE_SALE_STATUSES, cap_keys, lead_refusal, named_buyers_of
from exchange.delivery import DeliveryResult, delivery_judge, delivery_request, delivery_send, redacted
from exchange.models import Bid, DeliveryAttempt, Ping, Sale
from exchange.services.rejects import reject_watch
from exchange.sql import bought_recently, sale_moved
from leads.models import Lead
from leads.selectors import SuppressionMatch, suppression_match
from leads.services import json_value, lead_outcome_set


@dataclass(frozen=True)
class SaleAttempt:
    """What selling a lead to one contract came to: the sale, or the waterfall reason it did not buy."""

    sale: Sale | None
    reason: str = ""


# --- selling ------------------------------------------------------------------------------------


def _dedup_lock(buyer_id: int, hashes: list[str]) -> None:
    """Serialize purchases of one consumer by one buyer (PostgreSQL advisory locks, sorted)."""
    if connection.vendor != "postgresql":
        return  # SQLite takes the database write lock at BEGIN IMMEDIATE: already serialized
    if not hashes:
        return
    keys = sorted(
        int.from_bytes(hashlib.sha256(f"{buyer_id}:{h}".encode()).digest()[:8], "big", signed=True) for h in hashes
    )
    with connection.cursor() as cursor:
        # One statement; its select list is evaluated left to right, so the locks are taken in order.
        cursor.execute("SELECT " + ", ".join(["pg_advisory_xact_lock(%s)"] * len(keys)), keys)


def _bought_recently(contract: CompiledContract, hashes: list[str], now: dt.datetime) -> bool:
    if contract.dedup_days <= 0 or not hashes:
        return False
    return bool(
        sql_rows(
            *bought_recently(
                organization_id=contract.organization_id,
                hashes=hashes,
                statuses=LIVE_SALE_STATUSES,
                since=now - timedelta(days=contract.dedup_days),
            )
        )
    )


@dataclass(frozen=True)
class LeadPackage:
    """What a buyer receives: the full lead and its consent, in JSON form."""

    lead: dict[str, Any]
    consent: dict[str, Any]
    pii_fields: frozenset[str]

    @classmethod
    def of(cls, values: Mapping[str, object], consent: Mapping[str, object], offer: OfferBook) -> LeadPackage:
        return cls(
            lead={k: json_value(v) for k, v in values.items()},
            consent={k: json_value(v) for k, v in consent.items()},
            pii_fields=frozenset(k for k, spec in offer.fields.items() if spec.pii),
        )


@dataclass(frozen=True)
class _Reservation:
    """A sale reserved for one contract, its delivery still to make (``payload``; None when the
    contract takes its leads from the portal, and the sale is booked already)."""

    sale: Sale
    contract: CompiledContract
    payload: dict[str, Any] | None


def _sale_reserve(
    *,
    lead: Lead,
    contract: CompiledContract,
    price: Decimal,
    margin_percent: Decimal,
    bid: Bid | None,
    package: LeadPackage,
    offer_slug: str,
    direct: bool,
    suppression: SuppressionMatch,
    payout_fixed: Decimal | None = None,
) -> _Reservation | str:
    """Reserve one sale: the buyer's opt-out list, then caps, budget and funds and dedup in one
    transaction of its own; a contract that takes its leads from the portal is booked at once.
    Returns the reservation, or the waterfall reason the contract cannot buy."""
    now = timezone.now()
    hashes = [h for h in (lead.email_hash, lead.phone_hash) if h]
    if suppression.refuses(contract.organization_id):
        return "suppressed"
    keys = cap_keys(contract, now)
    payout = payout_for(price, margin_percent, fixed=payout_fixed)
    if payout > price:
        return "below_floor"  # a fixed payout this price cannot pay (terms changed since)
    with market_scope(), transaction.atomic():
        if not lead.test:
            refusal = _reservation_refusal(contract, hashes=hashes, keys=keys, price=price, now=now)
            if refusal is not None:
                transaction.set_rollback(True)  # nothing reserved, nothing written
                return refusal
        sale = Sale(
            organization_id=contract.organization_id,
            seller_id=lead.organization_id,
            lead=lead,
            bid=bid,
            contract_id=contract.id,
            campaign_id=lead.campaign_id,
            offer_id=lead.offer_id,
            price=price,
            payout=payout,
            margin=price - payout,
            test=lead.test,
            direct=direct,
            email_hash=lead.email_hash,
            phone_hash=lead.phone_hash,
            cap_keys=sorted(keys.values()),
            created_at=now,
        )
        model_insert(sale)
        if contract.delivery.get("method", "none") == "none":
            # The buyer takes its leads from the portal and API: accepted at once.
            _sale_capture(sale, lead)
            return _Reservation(sale, contract, None)
    payload = {
        "lead_id": lead.public_id,
        "sale_id": sale.public_id,
        "ping_id": lead.ping.public_id if lead.ping else None,
        "offer": offer_slug,
        "price": money_str(price),
        "ref": bid.ref if bid else "",
        "quality_score": lead.quality_score,
        "test": lead.test,
        "lead": package.lead,
        "consent": package.consent,
    }
    return _Reservation(sale, contract, payload)


def _sale_settle(
    reservation: _Reservation, *, lead: Lead, package: LeadPackage, result: DeliveryResult, cut_short: bool = False
) -> SaleAttempt:
    """What the buyer answered to one delivery: log the attempt, then book the sale or release it,
    in one transaction. ``cut_short``: its timeout was cut to the post's deadline (a timeout then is not held against
    the buyer's reject rate)."""
    sale, contract = reservation.sale, reservation.contract
    assert reservation.payload is not None
    with market_scope(), transaction.atomic():
        attempt = DeliveryAttempt(
            organization_id=contract.organization_id,
            sale=sale,
            contract_id=contract.id,
            url=str(contract.delivery.get("url", ""))[:500],
            request=redacted(reservation.payload, set(package.pii_fields)),
            status_code=result.status_code,
            response=result.response,
            outcome=result.outcome,
            reason=result.reason,
            latency_ms=result.latency_ms,
        )
        model_insert(attempt)
        if result.accepted:
            if _sale_capture(sale, lead):
                return SaleAttempt(sale)
            return SaleAttempt(None, "reservation_expired")
        sale_release(sale=sale, reason=f"post_rejected: {result.reason}")
    if not lead.test and not (cut_short and result.outcome == "timeout"):
        reject_watch(contract_id=contract.id, offer_id=lead.offer_id, now=timezone.now())
    return SaleAttempt(None, "post_rejected")


def sale_attempt(
    *,
    lead: Lead,
    contract: CompiledContract,
    price: Decimal,
    margin_percent: Decimal,
    bid: Bid | None,
    package: LeadPackage,
    offer_slug: str,
    secret: str,
    direct: bool = False,
    suppression: SuppressionMatch | None = None,
    payout_fixed: Decimal | None = None,
) -> SaleAttempt:
    """Sell the lead to one contract: reserve its caps, budget and funds and check dedup in one
    transaction, deliver, then book the sale (or release everything). Returns the sale, or the
    waterfall reason it did not buy.

    Never oversells a cap nor spends past a credit limit: each reservation is a conditional
    UPDATE. The buyer is called outside any transaction. Test leads reserve and book nothing.

    A consumer suppressed exchange-wide or on this buyer's own list is never delivered
    (``suppressed``): ``suppression`` is what the caller read of the opt-out lists in this request,
    else they are read here.
    """
    if suppression is None:
        suppression = suppression_match(consumer_hashes=[h for h in (lead.email_hash, lead.phone_hash) if h])
    reserved = _sale_reserve(
        lead=lead,
        contract=contract,
        price=price,
        margin_percent=margin_percent,
        bid=bid,
        package=package,
        offer_slug=offer_slug,
        direct=direct,
        suppression=suppression,
        payout_fixed=payout_fixed,
    )
    if isinstance(reserved, str):
        return SaleAttempt(None, reserved)
    if reserved.payload is None:
        return SaleAttempt(reserved.sale)
    result = delivery_send(config=contract.delivery, payload=reserved.payload, secret=secret)
    return _sale_settle(reserved, lead=lead, package=package, result=result)


def _deliver_all(
    reservations: list[_Reservation], *, secrets: Mapping[int, str], deadline: float
) -> list[tuple[DeliveryResult, bool]]:
    """Deliver every reserved sale at once (libcurl multi: one thread, every request in flight
    together), each within its contract's timeout cut to the post's ``deadline``; each answer
    judged by its contract's rule, with whether its timeout was cut short."""
    remaining = max(deadline - time.perf_counter(), 0.001)
    requests = []
    cut: list[bool] = []
    for reservation in reservations:
        assert reservation.payload is not None
        request = delivery_request(
            config=reservation.contract.delivery,
            payload=reservation.payload,
            secret=secrets.get(reservation.contract.organization_id, ""),
        )
        cut.append(request.timeout_s > remaining)
        request.timeout_s = min(request.timeout_s, remaining)
        requests.append(request)
    responses = http_send_all(requests)
    return [
        (delivery_judge(config=reservation.contract.delivery, response=response), short)
        for reservation, response, short in zip(reservations, responses, cut, strict=True)
    ]


def _reservation_refusal(
    contract: CompiledContract, *, hashes: list[str], keys: Mapping[str, str], price: Decimal, now: dt.datetime
) -> str | None:
    """Reserve the contract's caps, budget and funds for one lead at ``price``, after the dedup
    check under the buyer's consumer locks; or the waterfall reason it cannot buy (the caller
    then rolls the transaction back). Call inside a transaction."""
    _dedup_lock(contract.organization_id, hashes)
    if _bought_recently(contract, hashes, now):
        return "duplicate"
    try:
        cap_reserve(
            contract_id=contract.id,
            organization_id=contract.organization_id,
            keys=keys,
            caps=contract.caps,
            budgets=contract.budgets,
            price=price,
        )
        funds_hold(organization_id=contract.organization_id, amount=price)
    except CapRefused as exc:
        return exc.reason
    except FundsRefused:
        return "insufficient_balance"
    return None


def _sale_capture(sale: Sale, lead: Lead) -> bool:
    """Book a reserved sale (its hold becomes a ledger transaction); False if it was released
    meanwhile (the stale-reservation sweeper got there first)."""
    sold_at = timezone.now()
    if not sql_rows(
        *sale_moved(sale.pk, before=Sale.Status.RESERVED, after=Sale.Status.SOLD, changes={"sold_at": sold_at})
    ):
        return False
    sale.status, sale.sold_at = Sale.Status.SOLD, sold_at
    if not sale.test:
        sale_book(
            sale_public_id=sale.public_id,
            buyer=Organization(pk=sale.organization_id),
            seller=Organization(pk=sale.seller_id),
            price=sale.price,
            payout=sale.payout,
            memo=f"Sale {sale.public_id} of lead {lead.public_id}",
        )
    return True


def sale_release(*, sale: Sale, reason: str) -> bool:
    """Hand a reserved sale's cap, budget and funds back; False if it was no longer reserved.
    Inside a caller's transaction it is part of it (no savepoint)."""
    with market_scope(), transaction.atomic(savepoint=False):
        moved = sale_moved(
            sale.pk, before=Sale.Status.RESERVED, after=Sale.Status.RELEASED, changes={"release_reason": reason[:64]}
        )
        if not sql_rows(*moved):
            return False
        if not sale.test:
            cap_release(contract_id=sale.contract_id, keys=list(sale.cap_keys), price=sale.price)
            funds_release(organization_id=sale.organization_id, amount=sale.price)
    sale.status = Sale.Status.RELEASED
    return True


@dataclass
class RouteOutcome:
    sales: list[Sale]
    tried: list[tuple[int, str]]  # (contract id, reason) of bids that did not buy
    out_of_time: bool = False


def lead_route(
    *,
    lead: Lead,
    offer: OfferBook,
    margin_percent: Decimal,
    bids: list[Bid],
    package: LeadPackage,
    secrets: Mapping[int, str],
    deadline: float,
    suppression: SuppressionMatch | None = None,
    direct_contract_id: int | None = None,
    payout_fixed: Decimal | None = None,
) -> RouteOutcome:
    """Sell the lead to as many buyers as the auction had winners, every winner's delivery at once.

    Each round reserves a sale for each open slot (the best bids in rank order, one per buyer
    organization; a bid that cannot buy hands its slot to the next at once), then delivers all
    of them in parallel and books or releases each on its own: a slow or rejecting buyer delays
    and blocks no other. Slots the buyers turned down go to the next bids in the next round,
    again in parallel, until ``deadline`` (a perf_counter time). A buyer organization buys a lead
    once; while one of its contracts' deliveries is in flight its other bids wait their turn.
    The opt-out lists are read once for the route (``suppression``, when the caller has not just
    read them): a buyer that listed the consumer is passed over. ``direct_contract_id``: the
    ping's direct route won, and that contract's sale is marked direct."""
    if suppression is None:
        suppression = suppression_match(consumer_hashes=[h for h in (lead.email_hash, lead.phone_hash) if h])
    winners = sum(1 for b in bids if b.status == Bid.Status.WON)
    outcome = RouteOutcome([], [])
    bought: set[int] = set()  # buyer organizations with a sale
    queue = sorted(bids, key=lambda b: b.rank)
    while len(outcome.sales) < winners and queue:
        flying: list[_Reservation] = []
        busy: set[int] = set()
        waiting: list[Bid] = []
        for position, bid in enumerate(queue):
            if len(outcome.sales) + len(flying) >= winners or bid.organization_id in busy:
                waiting.append(bid)
                continue
            if time.perf_counter() >= deadline:
                outcome.out_of_time = True
                waiting.extend(queue[position:])
                break
            contract = offer.contracts_by_id.get(bid.contract_id)
            if contract is None or bid.organization_id in bought:
                continue
            if not lead_may_buy(contract, lead, package, offer):
                continue  # the post's signals or consent rule it out: the next bid takes its place
            reserved = _sale_reserve(
                lead=lead,
                contract=contract,
                price=bid.price,
                margin_percent=margin_percent,
                bid=bid,
                package=package,
                offer_slug=offer.slug,
                direct=contract.id == direct_contract_id,
                suppression=suppression,
                payout_fixed=payout_fixed,
            )
            if isinstance(reserved, str):
                outcome.tried.append((contract.id, reserved))
            elif reserved.payload is None:
                outcome.sales.append(reserved.sale)
                bought.add(bid.organization_id)
            else:
                flying.append(reserved)
                busy.add(bid.organization_id)
        queue = waiting
        if not flying:
            break
        for reservation, (result, cut_short) in zip(
            flying, _deliver_all(flying, secrets=secrets, deadline=deadline), strict=True
        ):
            attempt = _sale_settle(reservation, lead=lead, package=package, result=result, cut_short=cut_short)
            if attempt.sale is not None:
                outcome.sales.append(attempt.sale)
                bought.add(reservation.contract.organization_id)
            else:
                outcome.tried.append((reservation.contract.id, attempt.reason))
        if outcome.out_of_time:
            break
    if queue and len(outcome.sales) < winners and time.perf_counter() >= deadline:
        outcome.out_of_time = True
    return outcome


def lead_may_buy(contract: CompiledContract, lead: Lead, package: LeadPackage, offer: OfferBook) -> bool:
    """Whether the contract may buy this posted lead: its score (ping and post signals) reaches the
    contract's minimum and, for a one-to-one offer, the lead's consent names the buyer."""
    named = named_buyers_of(offer, package.consent)
    return lead_refusal(contract, score=lead.quality_score, named_buyers=named) is None


LEAD_REAUCTION_TASK = "exchange.lead_reauction"


def lead_reauction_enqueue(*, lead_id: int, cycle: int, countdown: float | None = None) -> None:
    """Queue the lead's next re-auction cycle (the task ``exchange.tasks.lead_reauction``, by its
    name: the tasks module imports the services, not the other way round)."""
    signature(LEAD_REAUCTION_TASK, kwargs={"lead_id": lead_id, "cycle": cycle}).apply_async(countdown=countdown)


def _lead_event(lead: Lead, sold: list[Sale]) -> None:
    event_emit(
        organization_id=lead.organization_id,
        type="lead.sold" if lead.status == Lead.Status.SOLD else "lead.unsold",
        data={
            "lead_id": lead.public_id,
            "status": lead.status,
            "reason": lead.reason or None,
            "payout": money_str(lead.payout),
            "test": lead.test,
            "reauction_cycles": lead.reauction_cycle,
            "sales": [{"sale_id": sale.public_id, "payout": money_str(sale.payout)} for sale in sold],
        },
    )


# Why a lead no cycle would sell: the seller's own campaign or offer is paused, its score is under
# the offer's minimum (the score does not change), or the consumer opted out exchange-wide.
FINAL_UNSOLD_REASONS = frozenset({"suppressed", "campaign_paused", "offer_paused", "below_min_score"})


def reauction_delay_s(offer: OfferBook) -> float:
    """Seconds between a lead's re-auction cycles: the offer's ``reauction_delay_seconds``, unless
    the exchange-wide ``GAVEL_REAUCTION_DELAY_S`` overrides it (the demo, tests)."""
    override = settings.GAVEL_REAUCTION_DELAY_S
    return float(offer.reauction_delay_seconds if override is None else override)


def lead_finish(lead: Lead, outcome: RouteOutcome, *, offer: OfferBook, unsold_reason: str = "no_buyers") -> None:
    """Record where the lead stands: sold, unsold, or pending while background re-auctions run.

    A lead nobody bought — no bid at all, every bid rejected it or could not buy, or time ran
    out — stays pending while the offer's ``reauction_cycles`` allow another cycle, unless no
    cycle could sell it (``FINAL_UNSOLD_REASONS``); then it is unsold. Final states reach the
    seller as events.
    """
    sold = [s for s in outcome.sales if s.status == Sale.Status.SOLD]
    if sold:
        status, reason = Lead.Status.SOLD, ""
    elif unsold_reason not in FINAL_UNSOLD_REASONS and lead.reauction_cycle < offer.reauction_cycles:
        status, reason = Lead.Status.PENDING, ""
    else:
        status, reason = Lead.Status.UNSOLD, unsold_reason
    with market_scope(), transaction.atomic():
        lead_outcome_set(lead=lead, status=status, reason=reason, payout=sum((s.payout for s in sold), ZERO))
        if lead.status == Lead.Status.PENDING:
            cycle = lead.reauction_cycle + 1
            delay = reauction_delay_s(offer)
            # robust: with the broker down the lead stays pending (committed) and the sweep queues the
            # cycle once the broker is back; the seller still gets its answer (docs/reliability.md).
            transaction.on_commit(
                lambda: lead_reauction_enqueue(lead_id=lead.pk, cycle=cycle, countdown=delay), robust=True
            )
        else:
            _lead_event(lead, sold)


@dataclass(frozen=True)
class LeadAnswer:
    """What a seller is told of its post or full lead (rendered by
    ``exchange.api.serializers.LeadOutput``). ``reauction``: the cycles run, the offer's limit,
    and when the next one runs (pending leads only)."""

    lead_id: str
    ping_id: str | None
    status: str
    reason: str | None
    payout: Decimal
    test: bool
    reauction: dict[str, Any]
    redirect_url: str | None = None

    @classmethod
    def of(cls, lead: Lead, ping: Ping | None, *, offer: OfferBook) -> LeadAnswer:
        next_at = None
        if lead.status == Lead.Status.PENDING:
            next_at = lead.updated_at + timedelta(seconds=reauction_delay_s(offer))
        return cls(
            lead_id=lead.public_id,
            ping_id=ping.public_id if ping else None,
            status=lead.status,
            reason=lead.reason or None,
            payout=lead.payout,
            test=lead.test,
            reauction={"cycle": lead.reauction_cycle, "cycles": offer.reauction_cycles, "next_at": next_at},
        )
