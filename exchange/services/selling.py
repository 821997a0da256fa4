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
from django.db.models import Q
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import market_scope
from billing.services import FundsRefused, funds_hold, funds_release, sale_book
from contracts.services import CapRefused, cap_release, cap_reserve
from core.hooks import event_emit
from core.money import ZERO, money_str, payout_for
from exchange.auction.book import CompiledContract, OfferBook
from exchange.auction.engine import LIVE_SALE_STATUSES, cap_keys, lead_refusal, named_buyers_of
from exchange.delivery import delivery_send, redacted
from exchange.models import Bid, DeliveryAttempt, Ping, Sale
from exchange.services.rejects import reject_watch
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
    keys = sorted(
        int.from_bytes(hashlib.sha256(f"{buyer_id}:{h}".encode()).digest()[:8], "big", signed=True) for h in hashes
    )
    with connection.cursor() as cursor:
        for key in keys:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _bought_recently(contract: CompiledContract, hashes: list[str], now: dt.datetime) -> bool:
    if contract.dedup_days <= 0 or not hashes:
        return False
    match = Q(email_hash__in=hashes) | Q(phone_hash__in=hashes)
    return Sale.objects.filter(
        match,
        organization_id=contract.organization_id,
        status__in=LIVE_SALE_STATUSES,
        test=False,
        created_at__gte=now - timedelta(days=contract.dedup_days),
    ).exists()


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
    now = timezone.now()
    hashes = [h for h in (lead.email_hash, lead.phone_hash) if h]
    if suppression is None:
        suppression = suppression_match(consumer_hashes=hashes)
    if suppression.refuses(contract.organization_id):
        return SaleAttempt(None, "suppressed")
    keys = cap_keys(contract, now)
    payout = payout_for(price, margin_percent, fixed=payout_fixed)
    if payout > price:
        return SaleAttempt(None, "below_floor")  # a fixed payout this price cannot pay (terms changed since)
    with market_scope(), transaction.atomic():
        if not lead.test:
            refusal = _reservation_refusal(contract, hashes=hashes, keys=keys, price=price, now=now)
            if refusal is not None:
                transaction.set_rollback(True)  # nothing reserved, nothing written
                return SaleAttempt(None, refusal)
        sale = Sale.objects.create(
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
        if contract.delivery.get("method", "none") == "none":
            # The buyer takes its leads from the portal and API: accepted at once.
            _sale_capture(sale, lead)
            return SaleAttempt(sale)
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
    result = delivery_send(config=contract.delivery, payload=payload, secret=secret)
    with market_scope(), transaction.atomic():
        DeliveryAttempt.objects.create(
            organization_id=contract.organization_id,
            sale=sale,
            contract_id=contract.id,
            url=str(contract.delivery.get("url", ""))[:500],
            request=redacted(payload, set(package.pii_fields)),
            status_code=result.status_code,
            response=result.response,
            outcome=result.outcome,
            reason=result.reason,
            latency_ms=result.latency_ms,
        )
        if result.accepted:
            if _sale_capture(sale, lead):
                return SaleAttempt(sale)
            return SaleAttempt(None, "reservation_expired")
    sale_release(sale=sale, reason=f"post_rejected: {result.reason}")
    if not lead.test:
        reject_watch(contract_id=contract.id, offer_id=lead.offer_id, now=timezone.now())
    return SaleAttempt(None, "post_rejected")


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
    updated = Sale.objects.filter(pk=sale.pk, status=Sale.Status.RESERVED).update(
        status=Sale.Status.SOLD, sold_at=timezone.now()
    )
    if updated != 1:
        return False
    sale.status = Sale.Status.SOLD
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
    """Hand a reserved sale's cap, budget and funds back; False if it was no longer reserved."""
    with market_scope(), transaction.atomic():
        updated = Sale.objects.filter(pk=sale.pk, status=Sale.Status.RESERVED).update(
            status=Sale.Status.RELEASED, release_reason=reason[:64]
        )
        if updated != 1:
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
    payout_fixed: Decimal | None = None,
) -> RouteOutcome:
    """Sell the lead to as many buyers as the auction had winners; a winner that rejects or cannot
    buy hands over to the next bid in rank order (post-reject optimization) until ``deadline`` (a
    perf_counter time). A buyer organization buys a lead once. The opt-out lists are read once
    for the route (``suppression``, when the caller has not just read them): a buyer that listed
    the consumer is passed over for the next bid."""
    if suppression is None:
        suppression = suppression_match(consumer_hashes=[h for h in (lead.email_hash, lead.phone_hash) if h])
    winners = sum(1 for b in bids if b.status == Bid.Status.WON)
    outcome = RouteOutcome([], [])
    buyers: set[int] = set()
    for bid in sorted(bids, key=lambda b: b.rank):
        if len(outcome.sales) >= winners:
            break
        if time.perf_counter() >= deadline:
            outcome.out_of_time = True
            break
        contract = offer.contracts_by_id.get(bid.contract_id)
        if contract is None or bid.organization_id in buyers:
            continue
        if not lead_may_buy(contract, lead, package, offer):
            continue  # the post's signals or consent rule it out: the next bid takes its place
        result = sale_attempt(
            lead=lead,
            contract=contract,
            price=bid.price,
            margin_percent=margin_percent,
            bid=bid,
            package=package,
            offer_slug=offer.slug,
            secret=secrets.get(contract.organization_id, ""),
            suppression=suppression,
            payout_fixed=payout_fixed,
        )
        if result.sale is not None:
            outcome.sales.append(result.sale)
            buyers.add(bid.organization_id)
        else:
            outcome.tried.append((contract.id, result.reason))
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
            "sales": [{"sale_id": sale.public_id, "payout": money_str(sale.payout)} for sale in sold],
        },
    )


def lead_finish(
    lead: Lead, outcome: RouteOutcome, *, offer: OfferBook, unsold_reason: str = "no_buyers", reauctioning: bool = False
) -> None:
    """Record where the lead stands: sold, unsold, or pending while background re-auctions run.

    A lead goes pending when a bid it had could not take it (rejected, capped, broke, or out of
    time) and the offer allows re-auctions; once re-auctioning, it stays pending until the last
    cycle. Final states reach the seller as events.
    """
    sold = [s for s in outcome.sales if s.status == Sale.Status.SOLD]
    if sold:
        status, reason = Lead.Status.SOLD, ""
    elif (reauctioning or _retryable(outcome) or outcome.out_of_time) and lead.reauction_cycle < offer.reauction_cycles:
        status, reason = Lead.Status.PENDING, ""
    else:
        status, reason = Lead.Status.UNSOLD, unsold_reason
    with market_scope(), transaction.atomic():
        lead_outcome_set(lead=lead, status=status, reason=reason, payout=sum((s.payout for s in sold), ZERO))
        if lead.status == Lead.Status.PENDING:
            cycle = lead.reauction_cycle + 1
            transaction.on_commit(
                lambda: lead_reauction_enqueue(lead_id=lead.pk, cycle=cycle, countdown=settings.GAVEL_REAUCTION_DELAY_S)
            )
        else:
            _lead_event(lead, sold)


def _retryable(outcome: RouteOutcome) -> bool:
    """A bid that could not take the lead for a reason that may pass (a buyer that listed the
    consumer as do-not-contact will not change its mind in a re-auction)."""
    return any(reason != "suppressed" for _, reason in outcome.tried)


@dataclass(frozen=True)
class LeadAnswer:
    """What a seller is told of its post or full lead (rendered by
    ``exchange.api.serializers.LeadOutput``)."""

    lead_id: str
    ping_id: str | None
    status: str
    reason: str | None
    payout: Decimal
    test: bool
    redirect_url: str | None = None

    @classmethod
    def of(cls, lead: Lead, ping: Ping | None) -> LeadAnswer:
        return cls(
            lead_id=lead.public_id,
            ping_id=ping.public_id if ping else None,
            status=lead.status,
            reason=lead.reason or None,
            payout=lead.payout,
            test=lead.test,
        )
