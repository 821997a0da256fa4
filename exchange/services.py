"""The market's writes: receive a ping, a post or a full lead; reserve, sell or release.

Each public service owns its transactions and runs the cross-tenant parts under
:func:`accounts.tenancy.market_scope`. Answers are cut to what the seller may see.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import market_scope
from billing.money import ZERO, money_str, payout_for
from billing.services import FundsRefused, funds_hold, funds_release, sale_book
from contracts.services import CapRefused, cap_release, cap_reserve
from exchange.auction.book import Book, CompiledCampaign, CompiledContract, OfferBook, book_current
from exchange.auction.engine import LIVE_SALE_STATUSES, AuctionResult, PingInput, auction_run, cap_keys
from exchange.delivery import delivery_send, redacted
from exchange.errors import Invalid, NotFound, PingAlreadyPosted, PingExpired, PingMismatch
from exchange.models import Bid, DeliveryAttempt, Ping, Sale
from exchange.schema import LeadInvalid, lead_validate
from leads.crypto import pii_decrypt
from leads.models import Lead
from leads.pii import email_hash as hash_email
from leads.pii import phone_hash as hash_phone
from leads.scoring import quality_score
from leads.services import json_value, lead_store


@dataclass(frozen=True)
class PingRequest:
    campaign: str
    lead: dict[str, Any]
    test: bool = False
    consumer: dict[str, str | None] = field(default_factory=dict)
    tracking: dict[str, Any] = field(default_factory=dict)
    consent: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PostRequest:
    ping_id: str
    lead: dict[str, Any]
    consent: dict[str, Any]


@dataclass(frozen=True)
class LeadRequest:
    campaign: str
    lead: dict[str, Any]
    consent: dict[str, Any]
    test: bool = False
    tracking: dict[str, Any] = field(default_factory=dict)


STANDBY_BIDS = 5


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- shared steps --------------------------------------------------------------------------------


def _campaign_of(book: Book, seller: Organization, public_id: str) -> tuple[CompiledCampaign, OfferBook]:
    """The seller's campaign; another seller's campaign is answered like a missing one."""
    found = book.campaigns.get(public_id)
    if found is None or found[0].organization_id != seller.pk:
        raise Invalid("The request is not valid.", fields={"campaign": ["No such campaign."]})
    campaign, offer_id = found
    return campaign, book.offers[offer_id]


def _validated(data: object, offer: OfferBook, stage: str) -> dict[str, object]:
    try:
        return lead_validate(data, offer.fields, stage=stage)
    except LeadInvalid as exc:
        raise Invalid("The lead is not valid.", fields={f"lead.{k}": v for k, v in exc.errors.items()}) from exc


def _ping_fields(values: Mapping[str, object], offer: OfferBook) -> dict[str, object]:
    return {k: v for k, v in values.items() if offer.fields[k].ping != "no"}


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _ping_answer(ping: Ping, result: AuctionResult | None, bids: list[Bid]) -> dict[str, Any]:
    return {
        "ping_id": ping.public_id,
        "status": ping.status,
        "reason": ping.reason or None,
        "payout": money_str(ping.payout),
        "bids": [{"bid_id": b.public_id, "payout": money_str(b.payout)} for b in bids if b.status == Bid.Status.WON],
        "expires_at": ping.expires_at.isoformat().replace("+00:00", "Z"),
        "test": ping.test,
    }


def _auction(
    *,
    seller: Organization,
    campaign: CompiledCampaign,
    offer: OfferBook,
    ping_values: dict[str, object],
    email_hash: str,
    phone_hash: str,
    tracking: dict[str, Any],
    consent: dict[str, Any],
    test: bool,
    fingerprint: str,
    source: str,
    signing_secrets: Mapping[int, str],
    exclude_contract_ids: frozenset[int] = frozenset(),
) -> tuple[Ping, list[Bid], AuctionResult | None]:
    """Run the auction for a ping (or a full lead's ping part) and store it with its bids."""
    now = timezone.now()
    ping = Ping(
        organization_id=seller.pk,
        campaign_id=campaign.id,
        offer_id=offer.id,
        source=source,
        lead={k: json_value(v) for k, v in ping_values.items()},
        email_hash=email_hash,
        phone_hash=phone_hash,
        tracking=tracking,
        consent=consent,
        test=test,
        fingerprint=fingerprint,
        expires_at=now + timedelta(seconds=offer.bid_ttl_seconds),
        created_at=now,
    )
    from exchange.ids import public_id_new

    ping.public_id = public_id_new("png_")
    ping.quality_score = quality_score(
        lead=ping_values,
        fields=offer.fields,
        consumer={"email_sha256": email_hash or None, "phone_sha256": phone_hash or None},
        consent=consent,
        tracking=tracking,
    )
    result: AuctionResult | None = None
    started = timezone.now()
    with market_scope():
        if not campaign.active or not offer.active:
            ping.status, ping.reason = (
                Ping.Status.REJECTED,
                "campaign_paused" if not campaign.active else "offer_paused",
            )
        elif ping.quality_score < offer.min_score:
            ping.status, ping.reason = Ping.Status.REJECTED, "below_min_score"
        else:
            result = auction_run(
                PingInput(
                    seed=ping.public_id,
                    offer=offer,
                    campaign=campaign,
                    lead=ping_values,
                    email_hash=email_hash,
                    phone_hash=phone_hash,
                    quality_score=ping.quality_score,
                    test=test,
                    now=now,
                    offer_slug=offer.slug,
                    source_token=campaign.source_token,
                    signing_secrets=signing_secrets,
                    exclude_contract_ids=exclude_contract_ids,
                )
            )
            ping.status, ping.reason = result.status, result.reason or ""
            ping.waterfall = [step.as_json() for step in result.waterfall]
        bids = []
        if result is not None:
            # The winners and a few stand-ins for post-reject re-routing; the waterfall keeps all.
            for ranked in result.ranked[: len(result.winners) + STANDBY_BIDS]:
                bids.append(
                    Bid(
                        public_id=public_id_new("bid_"),
                        organization_id=ranked.contract.organization_id,
                        contract_id=ranked.contract.id,
                        rank=ranked.rank,
                        bid_price=ranked.bid_price,
                        price=ranked.price,
                        payout=result.payout_of(ranked),
                        status=Bid.Status.WON if ranked.won else Bid.Status.OUTBID,
                        ref=ranked.ref,
                        created_at=now,
                    )
                )
        ping.payout = sum((b.payout for b in bids if b.status == Bid.Status.WON), ZERO)
        ping.latency_ms = (timezone.now() - started).total_seconds() * 1000
        ping.response = _ping_answer(ping, result, bids)
        with transaction.atomic():
            ping.save(force_insert=True)
            for bid in bids:
                bid.ping = ping
            Bid.objects.bulk_create(bids)
    return ping, bids, result


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
) -> Sale | str:
    """Sell the lead to one contract: reserve its caps, budget and funds and check dedup in one
    transaction, deliver, then book the sale (or release everything). Returns the sale, or the
    waterfall reason it did not buy.

    Never oversells a cap nor spends past a credit limit: each reservation is a conditional
    UPDATE. The buyer is called outside any transaction. Test leads reserve and book nothing.
    """
    now = timezone.now()
    hashes = [h for h in (lead.email_hash, lead.phone_hash) if h]
    keys = cap_keys(contract, now)
    payout = payout_for(price, margin_percent)
    with market_scope():
        try:
            with transaction.atomic():
                if not lead.test:
                    _dedup_lock(contract.organization_id, hashes)
                    if _bought_recently(contract, hashes, now):
                        raise _Refused("duplicate")
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
                        raise _Refused(exc.reason) from exc
                    except FundsRefused as exc:
                        raise _Refused("insufficient_balance") from exc
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
                    return sale
        except _Refused as refused:
            return refused.reason
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
                return sale
            return "reservation_expired"
    sale_release(sale=sale, reason=f"post_rejected: {result.reason}")
    return "post_rejected"


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
    winners: int,
    package: LeadPackage,
    secrets: Mapping[int, str],
    deadline: float,
) -> RouteOutcome:
    """Sell the lead to the winning bids; a winner that rejects or cannot buy hands over to the
    next bid in rank order (post-reject optimization) until ``deadline`` (a perf_counter time).
    A buyer organization buys a lead once."""
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
        result = sale_attempt(
            lead=lead,
            contract=contract,
            price=bid.price,
            margin_percent=margin_percent,
            bid=bid,
            package=package,
            offer_slug=offer.slug,
            secret=secrets.get(contract.organization_id, ""),
        )
        if isinstance(result, Sale):
            outcome.sales.append(result)
            buyers.add(bid.organization_id)
        else:
            outcome.tried.append((contract.id, result))
    return outcome


def _lead_event(lead: Lead, sold: list[Sale]) -> None:
    from exchange.webhooks import event_emit  # the exchange's outbox

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


def _lead_finish(
    lead: Lead, outcome: RouteOutcome, *, offer: OfferBook, unsold_reason: str = "no_buyers", reauctioning: bool = False
) -> None:
    """Record where the lead stands: sold, unsold, or pending while background re-auctions run.

    A lead goes pending when a bid it had could not take it (rejected, capped, broke, or out of
    time) and the offer allows re-auctions; once re-auctioning, it stays pending until the last
    cycle. Final states reach the seller as events.
    """
    sold = [s for s in outcome.sales if s.status == Sale.Status.SOLD]
    lead.payout = sum((s.payout for s in sold), ZERO)
    if sold:
        lead.status, lead.reason = Lead.Status.SOLD, ""
    elif (reauctioning or outcome.tried or outcome.out_of_time) and lead.reauction_cycle < offer.reauction_cycles:
        lead.status, lead.reason = Lead.Status.PENDING, ""
    else:
        lead.status, lead.reason = Lead.Status.UNSOLD, unsold_reason
    with market_scope(), transaction.atomic():
        Lead.objects.filter(pk=lead.pk).update(
            status=lead.status, reason=lead.reason, payout=lead.payout, updated_at=timezone.now()
        )
        if lead.status == Lead.Status.PENDING:
            from exchange.tasks import lead_reauction

            cycle = lead.reauction_cycle + 1
            transaction.on_commit(
                lambda: lead_reauction.apply_async(
                    kwargs={"lead_id": lead.pk, "cycle": cycle}, countdown=settings.GAVEL_REAUCTION_DELAY_S
                )
            )
        else:
            _lead_event(lead, sold)


def lead_answer(lead: Lead, ping: Ping | None) -> dict[str, Any]:
    return {
        "lead_id": lead.public_id,
        "ping_id": ping.public_id if ping else None,
        "status": lead.status,
        "reason": lead.reason or None,
        "payout": money_str(lead.payout),
        "redirect_url": None,
        "test": lead.test,
    }


# --- the three entry points ----------------------------------------------------------------------


def ping_receive(*, seller: Organization, request: PingRequest) -> dict[str, Any]:
    """Answer a ping: validate it, run the auction, store the ping, its bids and its waterfall.

    A ping repeated with an identical body before its bids expire gets the first answer again.
    """
    book = book_current()
    campaign, offer = _campaign_of(book, seller, request.campaign)
    fingerprint = _fingerprint(
        request.campaign, request.lead, request.consumer, request.tracking, request.consent, request.test
    )
    repeat_key = f"gavel:ping-answer:{seller.pk}:{fingerprint}"
    repeat = cache.get(repeat_key)
    if repeat is not None:
        return dict(repeat)
    values = _validated(request.lead, offer, "ping")
    consumer = request.consumer
    ping, _, _ = _auction(
        seller=seller,
        campaign=campaign,
        offer=offer,
        ping_values=values,
        email_hash=consumer.get("email_sha256") or "",
        phone_hash=consumer.get("phone_sha256") or "",
        tracking=request.tracking,
        consent=request.consent,
        test=request.test,
        fingerprint=fingerprint,
        source=Ping.Source.PING,
        signing_secrets=book.signing_secrets,
    )
    # A repeat of this exact ping before its bids expire gets this answer again, not a new auction.
    cache.set(repeat_key, ping.response, timeout=offer.bid_ttl_seconds)
    return dict(ping.response)


def _pii_mismatches(values: Mapping[str, object], ping: Ping) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    email, phone = values.get("email"), values.get("phone")
    if ping.email_hash and (not isinstance(email, str) or hash_email(email) != ping.email_hash):
        problems["lead.email"] = ["Does not match the ping's consumer.email_sha256."]
    if ping.phone_hash and (not isinstance(phone, str) or hash_phone(phone) != ping.phone_hash):
        problems["lead.phone"] = ["Does not match the ping's consumer.phone_sha256."]
    return problems


def post_receive(*, seller: Organization, request: PostRequest) -> dict[str, Any]:
    """Sell a pinged lead: check the post against its ping, store it, route it to the bids.

    Every check runs before anything is written; the ping is claimed by a compare-and-set, so
    one ping is posted once even when two posts race.
    """
    started = time.perf_counter()
    ping = Ping.objects.filter(organization=seller, public_id=request.ping_id).select_related("campaign").first()
    if ping is None:
        raise NotFound("No such ping.")
    if ping.posted_at is not None:
        raise PingAlreadyPosted("This ping has already been posted.")
    now = timezone.now()
    if now >= ping.expires_at:
        raise PingExpired("The bids of this ping have expired; ping again.")
    book = book_current()
    offer = book.offers[ping.offer_id]
    values = _validated(request.lead, offer, "post")
    mismatches = {
        f"lead.{name}": ["Differs from the ping."]
        for name, spec in offer.fields.items()
        if spec.ping != "no" and json_value(values.get(name)) != ping.lead.get(name)
    }
    mismatches.update(_pii_mismatches(values, ping))
    if mismatches:
        raise PingMismatch("The post does not match its ping.", fields=mismatches)
    campaign = book.campaigns[ping.campaign.public_id][0]
    with transaction.atomic():
        if Ping.objects.filter(pk=ping.pk, posted_at__isnull=True).update(posted_at=now) != 1:
            raise PingAlreadyPosted("This ping has already been posted.")
        lead = lead_store(
            seller_id=seller.pk,
            campaign_id=campaign.id,
            offer_id=offer.id,
            ping_id=ping.pk,
            values=values,
            fields=offer.fields,
            consent=request.consent,
            tracking=ping.tracking,
            email_hash=ping.email_hash,
            phone_hash=ping.phone_hash,
            quality_score=ping.quality_score,
            test=ping.test,
            keep_pii=ping.reason != "suppressed",
        )
    package = LeadPackage.of(values, request.consent, offer)
    return _lead_sell(
        lead=lead,
        ping=ping,
        book=book,
        offer=offer,
        campaign=campaign,
        package=package,
        started=started,
        direct_route=False,
    )


def _lead_sell(
    *,
    lead: Lead,
    ping: Ping,
    book: Book,
    offer: OfferBook,
    campaign: CompiledCampaign,
    package: LeadPackage,
    started: float,
    direct_route: bool,
) -> dict[str, Any]:
    """The common end of a post and a full lead: reject a duplicate or suppressed consumer, else
    try the direct route (full leads), then the ping's bids in rank order until the deadline."""
    if ping.reason in ("duplicate", "suppressed"):
        with market_scope():
            Lead.objects.filter(pk=lead.pk).update(status=Lead.Status.REJECTED, reason=ping.reason)
        lead.status, lead.reason = Lead.Status.REJECTED, ping.reason
        return lead_answer(lead, ping)
    secrets = book.signing_secrets
    if direct_route and _direct_share_hit(lead, campaign):
        contract = offer.contracts_by_id.get(campaign.direct_contract_id or 0)
        if contract is not None and contract.active and contract.organization_active:
            assert campaign.direct_price is not None
            sale = sale_attempt(
                lead=lead,
                contract=contract,
                price=campaign.direct_price,
                margin_percent=campaign.margin_percent,
                bid=None,
                package=package,
                offer_slug=offer.slug,
                secret=secrets.get(contract.organization_id, ""),
                direct=True,
            )
            if isinstance(sale, Sale):
                _lead_finish(lead, RouteOutcome([sale], []), offer=offer)
                return lead_answer(lead, ping)
    with market_scope():
        bids = list(Bid.objects.filter(ping=ping).order_by("rank"))
    winners = sum(1 for b in bids if b.status == Bid.Status.WON)
    outcome = lead_route(
        lead=lead,
        offer=offer,
        margin_percent=campaign.margin_percent,
        bids=bids,
        winners=winners,
        package=package,
        secrets=secrets,
        deadline=started + offer.post_timeout_ms / 1000,
    )
    _lead_finish(lead, outcome, offer=offer, unsold_reason=ping.reason or "no_buyers")
    return lead_answer(lead, ping)


def _direct_share_hit(lead: Lead, campaign: CompiledCampaign) -> bool:
    if campaign.direct_contract_id is None or campaign.direct_price is None or campaign.direct_share_percent <= 0:
        return False
    draw = int.from_bytes(hashlib.sha256(lead.public_id.encode()).digest()[:4], "big") % 100
    return draw < campaign.direct_share_percent


def lead_receive(*, seller: Organization, request: LeadRequest) -> dict[str, Any]:
    """Sell a full lead in one call: the ping and the post together, or the campaign's direct
    route (a share of its leads to one contract at a fixed price) when the draw says so."""
    started = time.perf_counter()
    book = book_current()
    campaign, offer = _campaign_of(book, seller, request.campaign)
    values = _validated(request.lead, offer, "post")
    email, phone = values.get("email"), values.get("phone")
    email_hash = hash_email(email) if isinstance(email, str) else ""
    phone_hash = hash_phone(phone) if isinstance(phone, str) else ""
    ping, _, _ = _auction(
        seller=seller,
        campaign=campaign,
        offer=offer,
        ping_values=_ping_fields(values, offer),
        email_hash=email_hash,
        phone_hash=phone_hash,
        tracking=request.tracking,
        consent={k: json_value(v) for k, v in request.consent.items()},
        test=request.test,
        fingerprint=_fingerprint(request.campaign, request.lead, request.test, timezone.now()),
        source=Ping.Source.LEAD,
        signing_secrets=book.signing_secrets,
    )
    with transaction.atomic():
        Ping.objects.filter(pk=ping.pk).update(posted_at=timezone.now())
        lead = lead_store(
            seller_id=seller.pk,
            campaign_id=campaign.id,
            offer_id=offer.id,
            ping_id=ping.pk,
            values=values,
            fields=offer.fields,
            consent=request.consent,
            tracking=request.tracking,
            email_hash=email_hash,
            phone_hash=phone_hash,
            quality_score=ping.quality_score,
            test=request.test,
            keep_pii=ping.reason != "suppressed",
        )
    package = LeadPackage.of(values, request.consent, offer)
    return _lead_sell(
        lead=lead,
        ping=ping,
        book=book,
        offer=offer,
        campaign=campaign,
        package=package,
        started=started,
        direct_route=True,
    )


def lead_reauction_run(*, lead_id: int, cycle: int) -> str:
    """One background re-auction of a pending lead: fresh bids (contracts that rejected it left
    out), routed like a post. Then sold, or another cycle, or unsold after the offer's limit.

    Idempotent: a cycle is claimed by a compare-and-set on the lead, so a task delivered twice
    runs once. If a worker dies mid-cycle, :func:`market_sweep` starts the next cycle.
    """
    with market_scope():
        lead = Lead.objects.select_related("ping", "campaign").filter(pk=lead_id).first()
        if lead is None or lead.status != Lead.Status.PENDING:
            return "skipped"
        claimed = Lead.objects.filter(pk=lead.pk, status=Lead.Status.PENDING, reauction_cycle__lt=cycle).update(
            reauction_cycle=cycle, updated_at=timezone.now()
        )
        if not claimed:
            return "skipped"
        lead.reauction_cycle = cycle
        sold = list(Sale.objects.filter(lead=lead, status=Sale.Status.SOLD))
        if sold:
            _lead_finish(lead, RouteOutcome(sold, []), offer=book_current().offers[lead.offer_id])
            return lead.status
        excluded = frozenset(
            Sale.objects.filter(lead=lead).exclude(status=Sale.Status.RESERVED).values_list("contract_id", flat=True)
        )
        consent = dict(lead.consent.raw)
    book = book_current()
    offer = book.offers[lead.offer_id]
    campaign = book.campaigns[lead.campaign.public_id][0]
    ping_values = lead_validate(
        {k: v for k, v in lead.data.items() if k in offer.fields and offer.fields[k].ping != "no"},
        offer.fields,
        stage="ping",
    )
    started = time.perf_counter()
    ping, bids, _ = _auction(
        seller=Organization(pk=lead.organization_id),
        campaign=campaign,
        offer=offer,
        ping_values=ping_values,
        email_hash=lead.email_hash,
        phone_hash=lead.phone_hash,
        tracking=dict(lead.tracking),
        consent={k: consent[k] for k in ("trusted_form_cert_url", "jornaya_leadid") if consent.get(k)},
        test=lead.test,
        fingerprint=_fingerprint("reauction", lead.public_id, cycle),
        source=Ping.Source.REAUCTION,
        signing_secrets=book.signing_secrets,
        exclude_contract_ids=excluded,
    )
    package = LeadPackage.of({**lead.data, **pii_decrypt(lead.pii_encrypted)}, consent, offer)
    winners = sum(1 for b in bids if b.status == Bid.Status.WON)
    outcome = lead_route(
        lead=lead,
        offer=offer,
        margin_percent=campaign.margin_percent,
        bids=bids,
        winners=winners,
        package=package,
        secrets=book.signing_secrets,
        deadline=started + offer.post_timeout_ms / 1000,
    )
    _lead_finish(lead, outcome, offer=offer, unsold_reason="no_buyers", reauctioning=True)
    return lead.status


def market_sweep(*, stale_after: timedelta = timedelta(minutes=10)) -> dict[str, int]:
    """Finish what a dead process left: release reservations older than ``stale_after`` (their
    delivery never came back) and move on leads left pending (next re-auction cycle, or unsold).
    Safe to run concurrently with live traffic: every step is a compare-and-set."""
    cutoff = timezone.now() - stale_after
    released = 0
    with market_scope():
        for sale in Sale.objects.filter(status=Sale.Status.RESERVED, created_at__lt=cutoff):
            released += sale_release(sale=sale, reason="stale reservation")
        stale = list(Lead.objects.filter(status=Lead.Status.PENDING, updated_at__lt=cutoff))
    book = book_current()
    requeued = finished = 0
    for lead in stale:
        offer = book.offers[lead.offer_id]
        if lead.reauction_cycle < offer.reauction_cycles:
            from exchange.tasks import lead_reauction

            lead_reauction.apply_async(kwargs={"lead_id": lead.pk, "cycle": lead.reauction_cycle + 1})
            requeued += 1
        else:
            with market_scope():
                sold = list(Sale.objects.filter(lead=lead, status=Sale.Status.SOLD))
            _lead_finish(lead, RouteOutcome(sold, []), offer=offer)
            finished += 1
    return {"released": released, "requeued": requeued, "finished": finished}
