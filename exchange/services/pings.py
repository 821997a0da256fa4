"""Pings: validate, run the auction, store the ping with its bids and waterfall, answer."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import market_scope
from core.errors import Invalid
from core.ids import public_id_new
from core.money import ZERO
from core.schema import LeadInvalid, lead_validate
from core.sql import bound_cursor
from exchange.auction.book import VERSION_KEY as BOOK_VERSION_KEY
from exchange.auction.book import Book, CompiledCampaign, OfferBook, book_current
from exchange.auction.engine import (
    AuctionPing,
    AuctionResult,
    RepeatProbe,
    auction_run,
    direct_route_draw,
    named_buyers_of,
    repeat_read,
)
from exchange.models import Bid, Ping
from exchange.velocity import consumer_keys, other_sellers_seen
from leads.scoring import ping_signals, score_of
from leads.services import json_value


@dataclass(frozen=True)
class PingRequest:
    campaign: str
    lead: dict[str, Any]
    test: bool = False
    consumer: dict[str, str | None] = field(default_factory=dict)
    tracking: dict[str, Any] = field(default_factory=dict)
    consent: dict[str, Any] = field(default_factory=dict)
    # The request's fingerprint (ping_fingerprint): an exact repeat of an earlier ping from the same
    # API key, its bids unexpired, gets that ping's answer. "": none (nothing is a repeat).
    fingerprint: str = ""
    # time.perf_counter() when the request arrived (exchange.arrival): the ping's deadline counts
    # from there. None: from now.
    arrived: float | None = None


@dataclass(frozen=True)
class PostRequest:
    ping_id: str
    lead: dict[str, Any]
    consent: dict[str, Any]
    arrived: float | None = None  # as PingRequest's: the post's deadline counts from there


@dataclass(frozen=True)
class LeadRequest:
    campaign: str
    lead: dict[str, Any]
    consent: dict[str, Any]
    test: bool = False
    tracking: dict[str, Any] = field(default_factory=dict)
    arrived: float | None = None  # as PingRequest's: the lead's deadlines count from there


@dataclass(frozen=True)
class BidOffer:
    bid_id: str
    payout: Decimal


@dataclass(frozen=True)
class PingAnswer:
    """What a seller is told of its ping (rendered by ``exchange.api.serializers.PingOutput``)."""

    ping_id: str
    status: str
    reason: str | None
    payout: Decimal
    bids: tuple[BidOffer, ...]
    expires_at: datetime
    test: bool

    @classmethod
    def of(cls, ping: Ping, bids: list[Bid]) -> PingAnswer:
        return cls(
            ping_id=ping.public_id,
            status=ping.status,
            reason=ping.reason or None,
            payout=ping.payout,
            bids=tuple(BidOffer(b.public_id, b.payout) for b in bids if b.status == Bid.Status.WON),
            expires_at=ping.expires_at,
            test=ping.test,
        )


@dataclass(frozen=True)
class StoredAuction:
    """A ping as stored with its bids, and its auction; or, for an exact repeat, the earlier ping
    it repeats (``repeated``), with nothing auctioned nor stored."""

    ping: Ping
    bids: list[Bid]
    result: AuctionResult | None
    repeated: bool = False


STANDBY_BIDS = 5

# --- shared steps --------------------------------------------------------------------------------


def campaign_of(book: Book, seller: Organization, public_id: str) -> tuple[CompiledCampaign, OfferBook]:
    """The seller's campaign; another seller's campaign is answered like a missing one."""
    found = book.campaigns.get(public_id)
    if found is None or found[0].organization_id != seller.pk:
        raise Invalid("The request is not valid.", fields={"campaign": ["No such campaign."]})
    campaign, offer_id = found
    return campaign, book.offers[offer_id]


def lead_validated(data: object, offer: OfferBook, stage: str) -> dict[str, object]:
    try:
        return lead_validate(data, offer.fields, stage=stage)
    except LeadInvalid as exc:
        raise Invalid("The lead is not valid.", fields={f"lead.{k}": v for k, v in exc.errors.items()}) from exc


def ping_fields_of(values: Mapping[str, object], offer: OfferBook) -> dict[str, object]:
    return {k: v for k, v in values.items() if offer.fields[k].ping != "no"}


def fingerprint_of(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def auction_store(
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
    started: float,
    excluded: Mapping[int, str] | None = None,
    posted: bool = False,
    repeats: bool = False,
    signals: Mapping[str, int] | None = None,
) -> StoredAuction:
    """Run the auction for a ping (or a full lead's ping part) and store it with its bids;
    ``posted`` when its lead comes with it (a full lead), so it can never be posted again.
    ``repeats``: an earlier ping of this seller with this fingerprint, its bids unexpired, is
    handed back instead (``StoredAuction.repeated``), with nothing auctioned or stored. The
    auction's deadline (the offer's ``ping_timeout_ms``) counts from ``started``
    (``time.perf_counter()``). ``excluded``: contracts that may not buy it (a re-auction's), with
    their waterfall reason. ``signals``: the quality signals to score it by (a re-auction's lead:
    the ping's and the post's), instead of the ping's worked out now.

    A ping or full lead (not a re-auction) draws the campaign's direct route first, on its id
    (:func:`~exchange.auction.engine.direct_route_draw`): the engine gives the lead to it when its
    contract can take it, with no auction run."""
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
        posted_at=now if posted else None,
        created_at=now,
    )
    ping.public_id = public_id_new("png_")
    if signals is not None:
        ping.quality_signals = dict(signals)
    else:
        ip = consent.get("ip")
        others = other_sellers_seen(
            consumer_keys(email_hash=email_hash, phone_hash=phone_hash, ip=ip if isinstance(ip, str) else ""),
            seller_id=seller.pk,
            record=not test,
        )
        ping.quality_signals = ping_signals(
            lead=ping_values, fields=offer.fields, consent=consent, rates=campaign.rates, other_sellers=others
        )
    ping.quality_score = score_of(ping.quality_signals)
    result: AuctionResult | None = None
    began = timezone.now()
    repeat = RepeatProbe(seller.pk, fingerprint, now) if repeats else None
    rejection = _rejection(campaign, offer, ping.quality_score)
    with market_scope():
        if rejection is not None:
            # No auction to ask for a repeat with the rest: ask on its own.
            earlier = repeat_read(repeat) if repeat is not None else None
            if earlier is not None:
                return _stored_repeat(earlier)
            ping.status, ping.reason = Ping.Status.REJECTED, rejection
        else:
            result = auction_run(
                AuctionPing(
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
                    started=started,
                    excluded=excluded or {},
                    direct=None if source == Ping.Source.REAUCTION else direct_route_draw(campaign, ping.public_id),
                    repeat=repeat,
                    named_buyers=named_buyers_of(offer, consent),
                )
            )
            if result.repeat_of is not None:
                return _stored_repeat(result.repeat_of)
            ping.status, ping.reason = result.status, result.reason or ""
            ping.waterfall = result.waterfall_json()
        bids = [] if result is None else _bids_of(result, now)
        ping.payout = sum((b.payout for b in bids if b.status == Bid.Status.WON), ZERO)
        ping.latency_ms = (timezone.now() - began).total_seconds() * 1000
        ping_store(ping, bids)
    return StoredAuction(ping, bids, result)


def _bids_of(result: AuctionResult, now: datetime) -> list[Bid]:
    """The winners and a few stand-ins for post-reject re-routing; the waterfall keeps all."""
    return [
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
        for ranked in result.ranked[: len(result.winners) + STANDBY_BIDS]
    ]


def auction_after_direct(
    *,
    ping: Ping,
    campaign: CompiledCampaign,
    offer: OfferBook,
    direct_contract_id: int,
    direct_reason: str,
    signing_secrets: Mapping[int, str],
    started: float,
) -> list[Bid]:
    """The auction a ping's direct route skipped, run now that its contract could not take the
    lead after all (the buyer turned it down, or its caps, funds or dedup changed since the ping):
    every other contract priced afresh, the direct contract left out with ``direct_reason``. The
    ping's waterfall keeps the direct step first, then the auction's; its new bids are stored."""
    values = lead_validate(
        {k: v for k, v in ping.lead.items() if k in offer.fields and offer.fields[k].ping != "no"},
        offer.fields,
        stage="ping",
    )
    now = timezone.now()
    with market_scope():
        result = auction_run(
            AuctionPing(
                seed=ping.public_id,
                offer=offer,
                campaign=campaign,
                lead=values,
                email_hash=ping.email_hash,
                phone_hash=ping.phone_hash,
                quality_score=ping.quality_score,
                test=ping.test,
                now=now,
                offer_slug=offer.slug,
                source_token=campaign.source_token,
                signing_secrets=signing_secrets,
                started=started,
                excluded={direct_contract_id: direct_reason},
            )
        )
        direct_steps = [step for step in ping.waterfall if isinstance(step, dict) and step.get("step") == "direct"]
        for step in direct_steps:
            step["reason"] = direct_reason
        bids = _bids_of(result, now)
        for bid in bids:
            bid.ping = ping
        with transaction.atomic():
            Bid.objects.bulk_create(bids)
            ping.waterfall = [*direct_steps, *result.waterfall_json()]
            Ping.objects.filter(pk=ping.pk).update(waterfall=ping.waterfall)
    return bids


def _stored_repeat(ping_id: int) -> StoredAuction:
    """The earlier ping an exact repeat repeats, with its bids: its answer is answered again."""
    ping = Ping.objects.get(pk=ping_id)
    return StoredAuction(ping, list(Bid.objects.filter(ping=ping).order_by("rank")), None, repeated=True)


def _rejection(campaign: CompiledCampaign, offer: OfferBook, score: int) -> str | None:
    """Why a ping is rejected before any auction, if it is."""
    if not campaign.active:
        return "campaign_paused"
    if not offer.active:
        return "offer_paused"
    if score < offer.min_score:
        return "below_min_score"
    return None


@dataclass(frozen=True)
class _Insert:
    """A model's insert columns, worked out once per process."""

    fields: tuple[Field[Any, Any], ...]
    columns: tuple[str, ...]  # quoted
    attributes: tuple[tuple[str, str], ...]  # (column, attribute)

    def row(self, instance: Ping | Bid) -> dict[str, Any]:
        """The instance's values for a JSON document: ``jsonb_to_record`` casts them to the columns' types."""
        return {column: getattr(instance, attribute) for column, attribute in self.attributes}

    def record(self, alias: str) -> str:
        """``alias(column type, ...)``: what ``jsonb_to_record(set)`` makes of its JSON."""
        types = (f.db_type(connection) for f in self.fields)
        return f"{alias}({', '.join(f'{c} {t}' for c, t in zip(self.columns, types, strict=True))})"


@functools.cache
def _insert_of(model: type[Ping] | type[Bid], skip: str = "") -> _Insert:
    fields = tuple(f for f in model._meta.concrete_fields if not f.primary_key and f.attname != skip)
    return _Insert(
        fields,
        tuple(connection.ops.quote_name(str(f.column)) for f in fields),
        tuple((str(f.column), f.attname) for f in fields),
    )


@functools.cache
def _ping_insert_sql(*, wait_for_disk: bool) -> str:
    """The ping and all its bids in one statement whatever their number, from one JSON document
    (``{"ping": {...}, "bids": [...]}``), so the text never changes, the driver prepares it once per
    connection and dumps one string in C where a parameter per column cost a Python adapter each.

    Unless ``wait_for_disk``, the statement, a transaction of its own, commits without waiting for
    its WAL to reach the disk (``synchronous_commit`` off for it alone): see :func:`ping_store`."""
    ping, bid = _insert_of(Ping), _insert_of(Bid, "ping_id")
    ping_fk = connection.ops.quote_name(Bid._meta.get_field("ping").column)
    unflushed = "" if wait_for_disk else ", set_config('synchronous_commit', 'off', true) AS unflushed"
    return (
        f"WITH d AS (SELECT %s::jsonb AS doc{unflushed}), "  # nosec B608  # names and placeholders only
        f"p AS (INSERT INTO {Ping._meta.db_table} ({', '.join(ping.columns)}) "
        f"SELECT {', '.join(f'v.{c}' for c in ping.columns)} FROM d, jsonb_to_record(d.doc -> 'ping') "
        f"AS {ping.record('v')} RETURNING id), "
        f"b AS (INSERT INTO {Bid._meta.db_table} ({ping_fk}, {', '.join(bid.columns)}) "
        f"SELECT p.id, {', '.join(f'v.{c}' for c in bid.columns)} FROM p, d, jsonb_to_recordset(d.doc -> 'bids') "
        f"AS {bid.record('v')} RETURNING id, rank) "
        "SELECT id, -1 FROM p UNION ALL SELECT id, rank FROM b"
    )


def _json_scalar(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_doc(data: object) -> str:
    """``data`` as JSON: by orjson (the ping's document, waterfall included, in a ninth of the
    standard library's time), or by the standard library for what orjson refuses (an integer
    beyond 64 bits in a lead)."""
    try:
        return orjson.dumps(data, default=_json_scalar).decode()
    except orjson.JSONEncodeError:
        return json.dumps(data, separators=(",", ":"), default=_json_scalar)


def ping_store(ping: Ping, bids: list[Bid]) -> None:
    """Write the ping and its bids. On PostgreSQL one statement (a data-modifying CTE: atomic by
    itself), so the answer waits for one round trip instead of four; elsewhere a transaction.

    On its own (not inside a transaction), the statement does not wait for the disk (decision 28):
    a ping holds no money and no lead, and whatever later commits with the default, waiting
    ``synchronous_commit`` — the post that claims it, a sale — flushes the write-ahead log up to
    itself, this ping included. Only a database crash in the next fraction of a second loses a
    ping, and then its post answers 404 and the seller pings again."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            ping.save(force_insert=True)
            for bid in bids:
                bid.ping = ping
            Bid.objects.bulk_create(bids)
        return
    bid_insert = _insert_of(Bid, "ping_id")
    doc = _json_doc({"ping": _insert_of(Ping).row(ping), "bids": [bid_insert.row(bid) for bid in bids]})
    with bound_cursor() as cursor:
        cursor.execute(_ping_insert_sql(wait_for_disk=connection.in_atomic_block), [doc])
        ids = {rank: pk for pk, rank in cursor.fetchall()}
    ping.pk = ids[-1]
    ping._state.adding = False
    for bid in bids:
        bid.ping, bid.pk = ping, ids[bid.rank]
        bid._state.adding = False


# --- the three entry points ----------------------------------------------------------------------


def ping_fingerprint(*, sender: str, body: bytes) -> str:
    """A ping's identity for exact repeats: the same body, byte for byte, from the same API key
    (``sender``: the key's digest)."""
    return hashlib.sha256(f"{sender}:".encode() + body).hexdigest()


def ping_cache_keys() -> list[str]:
    """What :func:`ping_receive` reads from the cache, for a request to fetch at once."""
    return [BOOK_VERSION_KEY]


def ping_receive(*, seller: Organization, request: PingRequest) -> PingAnswer:
    """Answer a ping: validate it, run the auction, store the ping, its bids and its waterfall.

    A ping repeated exactly (``request.fingerprint``) before its bids expire gets the first answer
    again: the auction's database read finds it, before any buyer is asked.
    """
    book = book_current()
    campaign, offer = campaign_of(book, seller, request.campaign)
    values = lead_validated(request.lead, offer, "ping")
    consumer = request.consumer
    stored = auction_store(
        seller=seller,
        campaign=campaign,
        offer=offer,
        ping_values=values,
        email_hash=consumer.get("email_sha256") or "",
        phone_hash=consumer.get("phone_sha256") or "",
        tracking=request.tracking,
        consent=request.consent,
        test=request.test,
        fingerprint=request.fingerprint
        or fingerprint_of(
            request.campaign, request.lead, request.consumer, request.tracking, request.consent, request.test
        ),
        source=Ping.Source.PING,
        signing_secrets=book.signing_secrets,
        started=time.perf_counter() if request.arrived is None else request.arrived,
        repeats=bool(request.fingerprint),
    )
    return PingAnswer.of(stored.ping, stored.bids)
