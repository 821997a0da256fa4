"""Posts, full leads, background re-auctions and the sweeper: a lead from arrival to sold or unsold."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import market_scope
from core.errors import NotFound
from core.pii import email_hash as hash_email
from core.pii import phone_hash as hash_phone
from core.schema import lead_validate
from core.sql import model_read, sql_rows
from exchange.auction.book import Book, CompiledCampaign, OfferBook, book_current
from exchange.consent_verify import certificate_verify
from exchange.errors import PingAlreadyPosted, PingExpired, PingMismatch
from exchange.models import Bid, Ping, Sale
from exchange.services.pings import (
    LeadRequest,
    PostRequest,
    auction_after_direct,
    auction_store,
    campaign_of,
    fingerprint_of,
    lead_validated,
    ping_fields_of,
)
from exchange.services.selling import (
    LeadAnswer,
    LeadPackage,
    RouteOutcome,
    lead_finish,
    lead_reauction_enqueue,
    lead_route,
    sale_release,
)
from exchange.sql import ping_claimed
from leads.crypto import pii_decrypt
from leads.models import Lead
from leads.scoring import post_signals, score_of
from leads.selectors import SuppressionMatch, suppression_match
from leads.services import json_value, lead_outcome_set, lead_reauction_claim, lead_store


def _pii_mismatches(values: Mapping[str, object], ping: Ping) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    email, phone = values.get("email"), values.get("phone")
    if ping.email_hash and (not isinstance(email, str) or hash_email(email) != ping.email_hash):
        problems["lead.email"] = ["Does not match the ping's consumer.email_sha256."]
    if ping.phone_hash and (not isinstance(phone, str) or hash_phone(phone) != ping.phone_hash):
        problems["lead.phone"] = ["Does not match the ping's consumer.phone_sha256."]
    return problems


def _consumer_hashes(values: Mapping[str, object], ping: Ping) -> tuple[str, str]:
    """The consumer's email and phone hashes: the ping's, else those of the lead's own email and
    phone (a ping may leave one out), normalized as the ping's (core.pii)."""
    email, phone = values.get("email"), values.get("phone")
    return (
        ping.email_hash or (hash_email(email) if isinstance(email, str) else ""),
        ping.phone_hash or (hash_phone(phone) if isinstance(phone, str) else ""),
    )


def lead_signals(
    ping: Ping, offer: OfferBook, values: Mapping[str, object], consent: Mapping[str, Any]
) -> dict[str, int]:
    """The lead's quality signals: the ping's, and the post's (phone, email, name, certificate)."""
    posted = post_signals(values=values, fields=offer.fields, certificate=certificate_verify(consent))
    return {**(ping.quality_signals or {}), **posted}


def _lead_store(
    *, ping: Ping, offer: OfferBook, values: dict[str, object], consent: dict[str, Any], suppressed: bool = False
) -> Lead:
    """Store the lead a ping announced (its tracking, consumer hashes and test flag), scored by
    the ping's signals and the post's; a suppressed consumer's PII is not kept."""
    email_hash, phone_hash = _consumer_hashes(values, ping)
    signals = lead_signals(ping, offer, values, consent)
    lead = lead_store(
        quality_signals=signals,
        seller_id=ping.organization_id,
        campaign_id=ping.campaign_id,
        offer_id=offer.id,
        ping_id=ping.pk,
        values=values,
        fields=offer.fields,
        consent=consent,
        tracking=ping.tracking,
        email_hash=email_hash,
        phone_hash=phone_hash,
        quality_score=score_of(signals),
        test=ping.test,
        keep_pii=not suppressed and ping.reason != "suppressed",
    )
    lead.ping = ping  # its deliveries name the ping: not read back
    return lead


def post_receive(*, seller: Organization, request: PostRequest) -> LeadAnswer:
    """Sell a pinged lead: check the post against its ping, store it, route it to the bids.

    Every check runs before anything is written; the ping is claimed by a compare-and-set, so
    one ping is posted once even when two posts race.
    """
    started = time.perf_counter() if request.arrived is None else request.arrived
    ping = next(iter(model_read(Ping, "organization_id = %s AND public_id = %s", [seller.pk, request.ping_id])), None)
    if ping is None:
        raise NotFound("No such ping.")
    if ping.posted_at is not None:
        raise PingAlreadyPosted("This ping has already been posted.")
    now = timezone.now()
    if now >= ping.expires_at:
        raise PingExpired("The bids of this ping have expired; ping again.")
    book = book_current()
    offer = book.offers[ping.offer_id]
    values = lead_validated(request.lead, offer, "post")
    mismatches = {
        f"lead.{name}": ["Differs from the ping."]
        for name, spec in offer.fields.items()
        if spec.ping != "no" and json_value(values.get(name)) != ping.lead.get(name)
    }
    mismatches.update(_pii_mismatches(values, ping))
    if mismatches:
        raise PingMismatch("The post does not match its ping.", fields=mismatches)
    campaign = book.campaigns_by_id[ping.campaign_id]
    # The opt-out lists again: a consumer may have opted out since the ping, and the post may
    # carry a contact the ping did not hash.
    suppression = suppression_match(consumer_hashes=_consumer_hashes(values, ping))
    with transaction.atomic():
        if not sql_rows(*ping_claimed(ping.pk, now)):
            raise PingAlreadyPosted("This ping has already been posted.")
        lead = _lead_store(
            ping=ping, offer=offer, values=values, consent=request.consent, suppressed=suppression.exchange
        )
    package = LeadPackage.of(values, request.consent, offer)
    bids = model_read(Bid, "ping_id = %s ORDER BY rank", [ping.pk])
    return _lead_sell(
        lead=lead,
        ping=ping,
        bids=bids,
        book=book,
        offer=offer,
        campaign=campaign,
        package=package,
        started=started,
        suppression=suppression,
    )


def _lead_sell(
    *,
    lead: Lead,
    ping: Ping,
    bids: list[Bid],
    book: Book,
    offer: OfferBook,
    campaign: CompiledCampaign,
    package: LeadPackage,
    started: float,
    suppression: SuppressionMatch,
) -> LeadAnswer:
    """The common end of a post and a full lead: reject a duplicate or suppressed consumer, else
    route the lead through the ping's bids until the deadline. When the ping's direct route won
    (its only bid) and its contract cannot take the lead after all, the auction it skipped runs
    now, without that contract, and the lead goes to its bids. ``suppression``: the opt-out lists
    as read in this request (a buyer that listed the consumer is never delivered to)."""
    reject = "suppressed" if suppression.exchange else ping.reason
    if reject in ("duplicate", "suppressed"):
        with market_scope():
            lead_outcome_set(lead=lead, status=Lead.Status.REJECTED, reason=reject)
        return LeadAnswer.of(lead, ping, offer=offer)
    if lead.quality_score < offer.min_score:
        # The post's signals (a disposable email, a test name...) took the lead under the offer's minimum.
        with market_scope():
            lead_outcome_set(lead=lead, status=Lead.Status.REJECTED, reason="below_min_score")
        return LeadAnswer.of(lead, ping, offer=offer)
    deadline = started + offer.post_timeout_ms / 1000
    direct_id = _direct_winner(ping, offer)
    route = functools.partial(
        lead_route,
        lead=lead,
        offer=offer,
        margin_percent=campaign.margin_percent,
        package=package,
        secrets=book.signing_secrets,
        deadline=deadline,
        suppression=suppression,
        payout_fixed=campaign.payout_fixed,
    )
    outcome = route(bids=bids, direct_contract_id=direct_id)
    if direct_id is not None and not outcome.sales and time.perf_counter() < deadline:
        reason = next((r for c, r in outcome.tried if c == direct_id), "post_rejected")
        fallback = auction_after_direct(
            ping=ping,
            campaign=campaign,
            offer=offer,
            direct_contract_id=direct_id,
            direct_reason=reason,
            signing_secrets=book.signing_secrets,
            started=time.perf_counter(),
        )
        more = route(bids=fallback)
        outcome = RouteOutcome(more.sales, [*outcome.tried, *more.tried], more.out_of_time)
    lead_finish(lead, outcome, offer=offer, unsold_reason=ping.reason or "no_buyers")
    return LeadAnswer.of(lead, ping, offer=offer)


def _direct_winner(ping: Ping, offer: OfferBook) -> int | None:
    """The contract of the ping's direct route, when it won (the waterfall's first step)."""
    first = ping.waterfall[0] if ping.waterfall else None
    if not isinstance(first, dict) or first.get("step") != "direct" or first.get("reason") != "won":
        return None
    return next((c.id for c in offer.contracts if c.public_id == first.get("contract")), None)


def lead_receive(*, seller: Organization, request: LeadRequest) -> LeadAnswer:
    """Sell a full lead in one call: the ping and the post together. The campaign's direct route
    (a share of its leads to one contract at a fixed price) is drawn first, inside the auction
    (:func:`auction_store`); a lead it sells runs no auction."""
    started = time.perf_counter() if request.arrived is None else request.arrived
    book = book_current()
    campaign, offer = campaign_of(book, seller, request.campaign)
    values = lead_validated(request.lead, offer, "post")
    email, phone = values.get("email"), values.get("phone")
    email_hash = hash_email(email) if isinstance(email, str) else ""
    phone_hash = hash_phone(phone) if isinstance(phone, str) else ""
    stored = auction_store(
        seller=seller,
        campaign=campaign,
        offer=offer,
        ping_values=ping_fields_of(values, offer),
        email_hash=email_hash,
        phone_hash=phone_hash,
        tracking=request.tracking,
        consent={k: json_value(v) for k, v in request.consent.items()},
        test=request.test,
        fingerprint=fingerprint_of(request.campaign, request.lead, request.test, timezone.now()),
        source=Ping.Source.LEAD,
        signing_secrets=book.signing_secrets,
        started=started,
        posted=True,
    )
    ping, bids = stored.ping, stored.bids
    lead = _lead_store(ping=ping, offer=offer, values=values, consent=request.consent)
    package = LeadPackage.of(values, request.consent, offer)
    # The auction just read the opt-out lists for these very hashes, in this request: an
    # exchange-wide one rejected the ping, a buyer's own list kept that buyer from bidding (the
    # direct route's contract too: it is checked with the others).
    suppression = SuppressionMatch(ping.reason == "suppressed", frozenset())
    return _lead_sell(
        lead=lead,
        ping=ping,
        bids=bids,
        book=book,
        offer=offer,
        campaign=campaign,
        package=package,
        started=started,
        suppression=suppression,
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
        if not lead_reauction_claim(lead=lead, cycle=cycle):
            return "skipped"
        sold = list(Sale.objects.filter(lead=lead, status=Sale.Status.SOLD))
        if sold:
            lead_finish(lead, RouteOutcome(sold, []), offer=book_current().offers[lead.offer_id])
            return lead.status
        # The buyers that turned the lead down (its delivery rejected, failed or timed out) do not
        # see it again, by any of their contracts; a sale released for the exchange's own reasons
        # (a stale reservation) does not count against its buyer.
        rejecters = set(
            Sale.objects.filter(lead=lead, status=Sale.Status.RELEASED, release_reason__startswith="post_rejected")
            .values_list("organization_id", flat=True)
            .distinct()
        )
        consent = dict(lead.consent.raw)
    book = book_current()
    offer = book.offers[lead.offer_id]
    excluded = {c.id: "rejected_before" for c in offer.contracts if c.organization_id in rejecters}
    campaign = book.campaigns[lead.campaign.public_id][0]
    ping_values = lead_validate(
        {k: v for k, v in lead.data.items() if k in offer.fields and offer.fields[k].ping != "no"},
        offer.fields,
        stage="ping",
    )
    started = time.perf_counter()
    stored = auction_store(
        seller=Organization(pk=lead.organization_id),
        campaign=campaign,
        offer=offer,
        ping_values=ping_values,
        email_hash=lead.email_hash,
        phone_hash=lead.phone_hash,
        tracking=dict(lead.tracking),
        consent={k: consent[k] for k in ("trusted_form_cert_url", "jornaya_leadid", "named_buyers") if consent.get(k)},
        test=lead.test,
        fingerprint=Ping.reauction_fingerprint(lead.public_id, cycle),
        source=Ping.Source.REAUCTION,
        signing_secrets=book.signing_secrets,
        started=started,
        excluded=excluded,
        signals=lead.quality_signals or None,
    )
    bids = stored.bids
    package = LeadPackage.of({**lead.data, **pii_decrypt(lead.pii_encrypted)}, consent, offer)
    outcome = lead_route(
        lead=lead,
        offer=offer,
        margin_percent=campaign.margin_percent,
        bids=bids,
        package=package,
        secrets=book.signing_secrets,
        deadline=started + offer.post_timeout_ms / 1000,
        payout_fixed=campaign.payout_fixed,
    )
    # A consumer who opted out since, or a campaign or offer paused since, ends the cycles.
    lead_finish(lead, outcome, offer=offer, unsold_reason=stored.ping.reason or "no_buyers")
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
            lead_reauction_enqueue(lead_id=lead.pk, cycle=lead.reauction_cycle + 1)
            requeued += 1
        else:
            with market_scope():
                sold = list(Sale.objects.filter(lead=lead, status=Sale.Status.SOLD))
            lead_finish(lead, RouteOutcome(sold, []), offer=offer)
            finished += 1
    return {"released": released, "requeued": requeued, "finished": finished}
