"""The contract book: every offer's campaigns and contracts, compiled once per process.

A ping never re-reads contracts from the database: filters, modifiers and schedules are compiled
into closures when the book is built, and the book is rebuilt only when the market changes.
Writers call :func:`book_invalidate`, which bumps a version number where every process can read
it, so every web process rebuilds on its next ping: in the cache when it is shared (Redis), else
in the database (``MarketVersion``), which each process reads again at most every
``DATABASE_VERSION_TTL_S`` (decision 36).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.db import connections, transaction
from django.db.models import F, TextField
from django.db.models.functions import Cast

from accounts.models import Organization
from accounts.tenancy import market_scope
from contracts.models import PERIODS, BuyerContract, Campaign
from contracts.rules import (
    IndexTerm,
    Predicate,
    PriceFunction,
    RuleError,
    modifiers_compile,
    pseudo_fields_used,
    rule_compile,
    rule_compile_indexed,
)
from contracts.schedules import Schedule, ScheduleError, schedule_compile
from core.cache import cache_get
from core.schema import FieldSpec
from exchange.models import MarketVersion, Offer
from leads.scoring import SourceRates

VERSION_KEY = "gavel:book-version"
# Without a shared cache: how long a process goes by the database's market version it last read.
# A change reaches every process's book within this (and a rebuild); each process pays one small
# read per this much time, and only while it serves pings.
DATABASE_VERSION_TTL_S = 0.25

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompiledContract:
    id: int
    public_id: str
    organization_id: int
    organization_active: bool
    tz: ZoneInfo
    # The buyer's slug and public name, lower-cased: how a one-to-one consent names it.
    organization_names: frozenset[str]
    buyer_active: bool  # the buyer's status
    hold: str | None  # the exchange's: operator, breaker, or none
    price: Decimal | None
    price_modifiers: PriceFunction
    rtb_url: str
    rtb_timeout_ms: int
    max_price: Decimal | None
    ceiling: Decimal  # the most it ever bids: its max price, and never above the offer's max bid
    predicate: Predicate
    schedule: Schedule
    caps: dict[str, int]
    budgets: dict[str, Decimal]
    periods: tuple[str, ...]  # every period limited by count or by money
    dedup_days: int
    min_score: int
    priority: int
    weight: int
    blocked_seller_ids: frozenset[int]
    delivery: dict[str, Any]
    return_window_hours: int
    breaker_retry_at: datetime | None  # held by the circuit breaker: when a ping may ask again
    breaker_trips: int
    # The ping's own fields its filters or modifiers test ($hour...): their values are added to the
    # lead's for it (AuctionPing.values_for), and only for it.
    pseudo_fields: frozenset[str] = frozenset()
    # Why its stored terms do not compile (saved before today's rules, or around them): it then
    # stays out of every auction, with that reason, until they are saved again.
    terms_error: str = ""
    # A condition of its filters the offer's index files it under (None: tested on every ping).
    index_term: IndexTerm | None = None

    @property
    def active(self) -> bool:
        """It bids: active by its buyer and held by no one."""
        return self.buyer_active and self.hold is None

    def retry_due(self, now: datetime) -> bool:
        """Held by the RTB circuit breaker (and active by its buyer) and past its cool-down
        (half-open): the next ping may ask the buyer once, and its answer decides
        (``breaker_record``)."""
        retry_at = self.breaker_retry_at
        return (
            self.buyer_active
            and self.hold == BuyerContract.Hold.BREAKER
            and self.price is None
            and retry_at is not None
            and retry_at <= now
        )


@dataclass(frozen=True)
class CompiledCampaign:
    id: int
    public_id: str
    organization_id: int
    active: bool
    margin_percent: Decimal
    floor: Decimal
    blocked_buyer_ids: frozenset[int]
    source_token: str
    direct_contract_id: int | None
    direct_price: Decimal | None
    direct_share_percent: int
    rates: SourceRates = SourceRates()  # its recent return and reject rates (the quality score)
    # A fixed payout per sale instead of the margin share (None: the share).
    payout_fixed: Decimal | None = None

    @property
    def payout_floor(self) -> Decimal:
        """What a bid must pay the seller: the fixed payout, else the campaign's floor."""
        return self.payout_fixed if self.payout_fixed is not None else self.floor


@dataclass(frozen=True)
class ContractIndex:
    """An offer's contracts filed by the values their filters require, so that a ping reaches only
    the contracts its lead could satisfy: a contract whose filters demand ``state in (CA, OR)`` is
    filed under CA and OR of ``state``, and a lead from Texas never looks at it.

    A contract is filed when it bids (active, its buyer active, its terms valid) and its filters
    limit an offer field to a set of values (:class:`~contracts.rules.IndexTerm`); every other
    contract — paused, held by the circuit breaker, or filtering only by ranges and patterns —
    is checked on every ping as before. Positions are into the offer's ``contracts``, so the
    candidates keep the book's order."""

    always: tuple[int, ...] = ()
    filed: Mapping[str, Mapping[Any, tuple[int, ...]]] = field(default_factory=dict)  # field -> value -> positions
    sizes: Mapping[str, int] = field(default_factory=dict)  # field -> how many contracts are filed under it

    @classmethod
    def of(cls, contracts: tuple[CompiledContract, ...]) -> ContractIndex:
        always: list[int] = []
        filed: dict[str, dict[Any, list[int]]] = {}
        sizes: dict[str, int] = {}
        for position, contract in enumerate(contracts):
            term = contract.index_term
            if term is None or not (contract.active and contract.organization_active) or contract.terms_error:
                always.append(position)
                continue
            sizes[term.field] = sizes.get(term.field, 0) + 1
            by_value = filed.setdefault(term.field, {})
            for value in term.values:
                by_value.setdefault(value, []).append(position)
        return cls(
            tuple(always),
            {
                name: {value: tuple(positions) for value, positions in by_value.items()}
                for name, by_value in filed.items()
            },
            sizes,
        )

    def candidates(self, lead: Mapping[str, object]) -> tuple[list[int], dict[str, int]]:
        """The positions of the contracts the lead could satisfy, in the book's order, and how many
        were left out by each field's value (``{"filtered:state": 2850}``)."""
        positions = list(self.always)
        left_out: dict[str, int] = {}
        for name, by_value in self.filed.items():
            value = lead.get(name)
            try:
                hits = by_value.get(value, ()) if value is not None else ()
            except TypeError:  # a value that cannot be hashed is in no set
                hits = ()
            positions.extend(hits)
            if missed := self.sizes[name] - len(hits):
                left_out[f"filtered:{name}"] = missed
        if len(self.filed) > 1 or self.always:
            positions.sort()
        return positions, left_out


@dataclass(frozen=True)
class OfferBook:
    id: int
    slug: str
    active: bool
    distribution: str
    pricing: str
    multisell_max: int
    hybrid_floor: Decimal | None
    margin_percent: Decimal
    floor: Decimal
    max_bid: Decimal
    min_score: int
    bid_ttl_seconds: int
    ping_timeout_ms: int
    reauction_cycles: int
    reauction_delay_seconds: int
    post_timeout_ms: int
    fields: dict[str, FieldSpec]
    contracts: tuple[CompiledContract, ...]
    contracts_by_id: dict[int, CompiledContract] = field(repr=False)
    one_to_one_consent: bool = False
    index: ContractIndex = field(default_factory=ContractIndex, repr=False)


@dataclass(frozen=True)
class Book:
    version: tuple[int, int]  # the cache's version, and the database's (0 with a shared cache)
    offers: dict[int, OfferBook]
    campaigns: dict[str, tuple[CompiledCampaign, int]]  # public id -> (campaign, offer id)
    signing_secrets: dict[int, str]  # organization id -> its Standard Webhooks secret
    campaigns_by_id: dict[int, CompiledCampaign] = field(default_factory=dict)
    postback_sellers: frozenset[int] = frozenset()  # sellers with a campaign that has a postback URL

    @property
    def size(self) -> int:
        """How many contracts it holds."""
        return sum(len(offer.contracts) for offer in self.offers.values())


_lock = threading.Lock()
_book: Book | None = None
# A book of more contracts than this is rebuilt by one thread in the background while pings go on
# with the book they have, so a change reaches pings a rebuild later (about 0.3 s of CPU at 30 000
# contracts, tests/bench/bigbook.py); a smaller one is rebuilt by the first ping that needs it,
# which waits for it (a few milliseconds) and so sees every change made before it.
BACKGROUND_REBUILD_CONTRACTS = 5000
_rebuilding = threading.Event()  # set while a background rebuild runs
# The database's market version as this process last read it, and when that read began
# (time.perf_counter()); None: read it at the next ping.
_database_seen: tuple[int, float] | None = None


def _compile_contract(
    contract: BuyerContract,
    organization: Organization,
    fields: dict[str, FieldSpec],
    max_bid: Decimal,
    blocked_seller_ids: frozenset[int],
) -> CompiledContract:
    caps = {p: c for p in PERIODS if (c := contract.cap(p)) is not None}
    budgets = {p: b for p in PERIODS if (b := contract.budget(p)) is not None}
    terms_error = ""
    try:
        predicate, index_term = rule_compile_indexed(contract.filters or None, fields=fields)
        price_modifiers = modifiers_compile(contract.modifiers or [], fields=fields)
        schedule = schedule_compile(contract.schedule or None)
    except (RuleError, ScheduleError) as exc:
        # One contract's stored terms must not take the whole book, and every ping, down.
        logger.warning("contract %s is left out of the auctions: %s", contract.public_id, exc)
        terms_error = str(exc)
        predicate, price_modifiers = rule_compile(None, fields={}), modifiers_compile([], fields={})
        index_term = None
        schedule = schedule_compile(None)
    ceiling = max_bid if contract.max_price is None else min(contract.max_price, max_bid)
    return CompiledContract(
        id=contract.pk,
        public_id=contract.public_id,
        organization_id=contract.organization_id,
        organization_active=organization.status == Organization.Status.ACTIVE,
        tz=organization.tz,
        organization_names=frozenset({organization.slug.lower(), organization.name.strip().lower()}),
        buyer_active=contract.status == BuyerContract.Status.ACTIVE,
        hold=contract.hold,
        price=contract.price,
        price_modifiers=price_modifiers,
        rtb_url=contract.rtb_url,
        rtb_timeout_ms=contract.rtb_timeout_ms,
        max_price=contract.max_price,
        ceiling=ceiling,
        predicate=predicate,
        schedule=schedule,
        caps=caps,
        budgets=budgets,
        periods=tuple(p for p in PERIODS if p in caps or p in budgets),
        dedup_days=contract.dedup_days,
        min_score=contract.min_score,
        priority=contract.priority,
        weight=contract.weight,
        blocked_seller_ids=blocked_seller_ids,
        delivery=dict(contract.delivery or {}),
        return_window_hours=contract.return_window_hours,
        breaker_retry_at=contract.breaker_retry_at,
        breaker_trips=contract.breaker_trips,
        pseudo_fields=frozenset() if terms_error else pseudo_fields_used(contract.filters, contract.modifiers),
        terms_error=terms_error,
        index_term=index_term,
    )


# What each contract was last compiled from, and what it compiled to: a rebuild compiles again only
# the contracts whose row or surroundings changed (_contracts_compiled).
_compiled: dict[int, tuple[tuple[Any, ...], CompiledContract]] = {}


def _contracts_compiled(
    organizations: dict[int, Organization], fields: dict[int, dict[str, FieldSpec]], max_bids: dict[int, Decimal]
) -> dict[int, list[CompiledContract]]:
    """Every contract compiled, by offer, in id order.

    The rows are first read as text (every column cast in the database: nothing decoded) and
    compared with what each contract was last compiled from — its row, its buyer's name, status
    and time zone, its blocked sellers, its offer's fields and max bid. Only the contracts that
    differ are read as models and compiled again, so a change to one contract of 30 000 rebuilds
    the book in about the time it takes to read the rows (``tests/bench/bigbook.py``)."""
    blocked: dict[int, set[int]] = {}
    through = BuyerContract.blocked_sellers.through
    for contract_id, seller_id in through.objects.values_list("buyercontract_id", "organization_id"):
        blocked.setdefault(contract_id, set()).add(seller_id)
    columns = [f.attname for f in BuyerContract._meta.concrete_fields if f.attname != "id"]
    texts = {f"t_{name}": Cast(name, TextField()) for name in columns}
    rows = (
        BuyerContract.objects.annotate(**texts).order_by("pk").values_list("pk", "organization_id", "offer_id", *texts)
    )
    names = {o.pk: (o.status, o.tz, o.slug, o.name) for o in organizations.values()}
    sources: dict[int, tuple[Any, ...]] = {}
    offer_of: dict[int, int] = {}
    stale: list[int] = []
    for pk, organization_id, offer_id, *text in rows:
        source = (
            tuple(text),
            names[organization_id],
            frozenset(blocked.get(pk, ())),
            fields[offer_id],
            max_bids[offer_id],
        )
        sources[pk], offer_of[pk] = source, offer_id
        previous = _compiled.get(pk)
        if previous is None or previous[0] != source:
            stale.append(pk)
    changed = (
        BuyerContract.objects.all() if len(stale) > len(sources) // 2 else BuyerContract.objects.filter(pk__in=stale)
    )
    fresh = {
        contract.pk: _compile_contract(
            contract,
            organizations[contract.organization_id],
            fields[contract.offer_id],
            max_bids[contract.offer_id],
            frozenset(blocked.get(contract.pk, ())),
        )
        for contract in changed
        if contract.pk in sources
    }
    compiled: dict[int, list[CompiledContract]] = {offer_id: [] for offer_id in fields}
    kept: dict[int, tuple[tuple[Any, ...], CompiledContract]] = {}
    for pk, source in sources.items():
        contract = fresh.get(pk) or (_compiled[pk][1] if pk in _compiled else None)
        if contract is None:  # deleted between the two reads
            continue
        kept[pk] = (source, contract)
        compiled[offer_of[pk]].append(contract)
    _compiled.clear()
    _compiled.update(kept)
    return compiled


def _build(version: tuple[int, int]) -> Book:
    with market_scope():
        offers = list(Offer.objects.all())
        organizations = {o.pk: o for o in Organization.objects.all()}
        fields = {o.pk: o.field_specs for o in offers}
        max_bids = {o.pk: o.max_bid for o in offers}
        by_offer = _contracts_compiled(organizations, fields, max_bids)
        campaigns = list(Campaign.objects.prefetch_related("blocked_buyers").order_by("pk"))
    books = {
        o.pk: OfferBook(
            id=o.pk,
            slug=o.slug,
            active=o.status == Offer.Status.ACTIVE,
            distribution=o.distribution,
            pricing=o.pricing,
            multisell_max=o.multisell_max,
            hybrid_floor=o.hybrid_floor,
            margin_percent=o.margin_percent,
            floor=o.floor,
            max_bid=o.max_bid,
            min_score=o.min_score,
            bid_ttl_seconds=o.bid_ttl_seconds,
            ping_timeout_ms=o.ping_timeout_ms,
            reauction_cycles=o.reauction_cycles,
            reauction_delay_seconds=o.reauction_delay_seconds,
            post_timeout_ms=o.post_timeout_ms,
            fields=fields[o.pk],
            contracts=tuple(by_offer[o.pk]),
            contracts_by_id={c.id: c for c in by_offer[o.pk]},
            one_to_one_consent=o.one_to_one_consent,
            index=ContractIndex.of(tuple(by_offer[o.pk])),
        )
        for o in offers
    }
    compiled_campaigns = {
        c.public_id: (
            CompiledCampaign(
                id=c.pk,
                public_id=c.public_id,
                organization_id=c.organization_id,
                active=c.status == Campaign.Status.ACTIVE
                and organizations[c.organization_id].status == Organization.Status.ACTIVE,
                margin_percent=c.margin_percent if c.margin_percent is not None else books[c.offer_id].margin_percent,
                floor=c.floor,
                blocked_buyer_ids=frozenset(b.pk for b in c.blocked_buyers.all()),
                source_token=c.source_token,
                direct_contract_id=c.direct_contract_id,
                direct_price=c.direct_price,
                direct_share_percent=c.direct_share_percent,
                rates=SourceRates(c.return_rate, c.rate_sales, c.reject_rate, c.rate_deliveries),
                payout_fixed=c.payout_fixed,
            ),
            c.offer_id,
        )
        for c in campaigns
    }
    secrets = {o.pk: o.signing_secret for o in organizations.values()}
    return Book(
        version=version,
        offers=books,
        campaigns=compiled_campaigns,
        signing_secrets=secrets,
        campaigns_by_id={c.id: c for c, _ in compiled_campaigns.values()},
        postback_sellers=frozenset(c.organization_id for c in campaigns if c.postback_url),
    )


def _cache_shared() -> bool:
    """Whether every process reads the same cache (Redis). The local-memory cache of a deployment
    without ``REDIS_URL`` is each process's own: a version kept there reaches no other worker."""
    return not isinstance(caches["default"], LocMemCache)


def _database_version() -> int:
    """The database's market version, read again once the last read is DATABASE_VERSION_TTL_S old."""
    global _database_seen
    seen = _database_seen
    began = time.perf_counter()
    if seen is not None and began - seen[1] < DATABASE_VERSION_TTL_S:
        return seen[0]
    version = MarketVersion.objects.filter(pk=MarketVersion.ROW_ID).values_list("version", flat=True).first() or 0
    seen = _database_seen
    if seen is None or seen[1] < began:  # a thread that read later keeps its answer
        _database_seen = (version, began)
    return version


def book_current() -> Book:
    """The current book, rebuilt first if the market changed since this process built it."""
    global _book
    cached = cache_get(VERSION_KEY)
    if cached is None:
        cache.add(VERSION_KEY, 1, timeout=None)
        cached = cache.get(VERSION_KEY, 1)
    # The database's version is read before the book: a book is never newer in name than in data.
    version = (cached, 0 if _cache_shared() else _database_version())
    book = _book
    if book is not None and book.version == version:
        return book
    if book is not None and book.size > BACKGROUND_REBUILD_CONTRACTS:
        _rebuild_behind(version)
        return book
    with _lock:
        if _book is None or _book.version != version:
            _book = _build(version)
        return _book


def book_held() -> Book:
    """The book this process holds, as the request or task in hand last had :func:`book_current`
    check it, without asking the cache again (built if there is none yet): for what a request
    looks up after it began with the current book."""
    book = _book
    return book if book is not None else book_current()


def _rebuild_behind(version: tuple[int, int]) -> None:
    """Rebuild the book at ``version`` in a thread of its own, unless one is at it already (the
    next ping after it finishes starts another if the market moved on meanwhile)."""
    if _rebuilding.is_set():
        return
    with _lock:
        if _rebuilding.is_set():
            return
        _rebuilding.set()

    def rebuild() -> None:
        global _book
        try:
            with _lock:
                if _book is None or _book.version != version:
                    _book = _build(version)
        except Exception:
            logger.exception("rebuilding the contract book failed; pings go on with the last one")
        finally:
            _rebuilding.clear()
            connections.close_all()  # this thread's own database connection

    threading.Thread(target=rebuild, name="book-rebuild", daemon=True).start()


def _bump() -> None:
    try:
        cache.incr(VERSION_KEY)
    except ValueError:
        cache.add(VERSION_KEY, 2, timeout=None)


def _database_bump() -> None:
    global _database_seen
    if not MarketVersion.objects.filter(pk=MarketVersion.ROW_ID).update(version=F("version") + 1):
        # No row yet (a new or flushed database). Should another process create it first, its
        # bump came after both changes were committed, so its version covers this one too.
        MarketVersion.objects.bulk_create([MarketVersion(pk=MarketVersion.ROW_ID, version=1)], ignore_conflicts=True)
    _database_seen = None  # this process's next book is built at the version it just wrote


def book_invalidate() -> None:
    """Tell every process that the market changed (offers, campaigns, contracts, organizations).

    Bumped in the cache now and again after the surrounding transaction commits, so no process
    can keep a book built from data that was not yet committed. Without a shared cache, the
    cache's version reaches only this process: the database's is bumped after the commit, and
    the other processes see it within ``DATABASE_VERSION_TTL_S``.
    """
    _bump()
    transaction.on_commit(_bump)
    if not _cache_shared():
        transaction.on_commit(_database_bump)
