""" "Test my contracts": a buyer fills an offer's ping fields (or picks a recent ping) and sees, for
each of its contracts on that offer, whether it would bid, at what price, or why not.

The answer is the auction's own (:func:`exchange.auction.engine.auction_dry_run` over the contract
book): the same filters, modifiers, schedule, caps, budget, funds and floor. Nothing is stored or
charged — no ping, no bid, no cap, no money — and an RTB endpoint is not called.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.models import Organization
from accounts.portal import portal_page
from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from contracts.rules import PSEUDO_FIELDS, WEEKDAYS
from contracts.selectors import contracts_of
from core.money import ZERO, money_label
from core.schema import US_STATE_CODES, FieldSpec, LeadInvalid, lead_validate
from exchange.auction.book import CompiledCampaign, CompiledContract, OfferBook, book_current
from exchange.auction.engine import AuctionPing, WaterfallStep, auction_dry_run
from exchange.models import Ping
from exchange.portal import reason_label
from leads.scoring import quality_score

RECENT = 10  # recent pings offered to prefill the form
WEEKDAY_NAMES = dict(
    zip(WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"), strict=True)
)


@dataclass(frozen=True)
class InputField:
    """One input of the form: an offer field, as the page draws it."""

    name: str
    label: str
    kind: str  # text, number, date, select
    value: str
    choices: tuple[tuple[str, str], ...] = ()
    required: bool = False
    errors: tuple[str, ...] = ()
    step: str = ""


@dataclass(frozen=True)
class Verdict:
    """One of the buyer's contracts on the tested lead."""

    public_id: str
    name: str
    bids: bool
    rtb: bool
    price: Decimal | None
    words: str
    reason: str


def _input_of(spec: FieldSpec, value: str, errors: list[str]) -> InputField:
    label = spec.name.replace("_", " ").capitalize()
    common: dict[str, Any] = {
        "name": spec.name,
        "label": label,
        "value": value,
        "required": spec.ping == "required",
        "errors": tuple(errors),
    }
    if spec.type == "choice":
        return InputField(kind="select", choices=tuple((c, c) for c in spec.choices), **common)
    if spec.type == "boolean":
        return InputField(kind="select", choices=(("true", "Yes"), ("false", "No")), **common)
    if spec.type == "state":
        return InputField(kind="select", choices=tuple((s, s) for s in sorted(US_STATE_CODES)), **common)
    if spec.type in ("integer", "decimal"):
        return InputField(kind="number", step="1" if spec.type == "integer" else "0.01", **common)
    if spec.type == "date":
        return InputField(kind="date", **common)
    return InputField(kind="text", **common)


def _instant(now: datetime, tz: Any, weekday: str, hour: str) -> datetime:
    """``now``, moved back to the latest ``weekday`` (this week's, or today) and to ``hour`` of
    that day, in the buyer's time zone; unchanged where nothing is asked."""
    local = now.astimezone(tz)
    if weekday in WEEKDAYS:
        local -= timedelta(days=(local.weekday() - WEEKDAYS.index(weekday)) % 7)
    if hour.isdigit() and 0 <= int(hour) <= 23:
        local = local.replace(hour=int(hour))
    return local.astimezone(UTC)  # a zoneinfo wall time: its offset is that day's


def _campaign_for(
    offer: OfferBook, source: str, campaigns: dict[str, tuple[CompiledCampaign, int]]
) -> CompiledCampaign:
    """The campaign whose source token is ``source`` on this offer (its blocks and floor apply),
    else a neutral one: no blocks, the offer's margin, no payout floor."""
    for campaign, offer_id in campaigns.values():
        if offer_id == offer.id and source and campaign.source_token == source:
            return campaign
    return CompiledCampaign(
        id=0,
        public_id="",
        organization_id=0,
        active=True,
        margin_percent=offer.margin_percent,
        floor=ZERO,
        blocked_buyer_ids=frozenset(),
        source_token=source,
        direct_contract_id=None,
        direct_price=None,
        direct_share_percent=0,
    )


def _words(step: WaterfallStep, row: BuyerContract | None, floor_note: str) -> str:
    contract: CompiledContract = step.contract
    if not step.reason:
        return f"Would bid {money_label(step.price)}"
    if step.reason == "rtb_would_ask":
        ceiling = money_label(contract.ceiling)
        return f"Would ask your RTB endpoint for a bid (at most {ceiling}); it is not called in a test"
    if step.reason == "paused":
        if not contract.organization_active:
            return "Your organization is suspended: ask the exchange"
        if not contract.buyer_active:
            return "Paused by you"
        if contract.hold is not None:
            who = (
                "the circuit breaker (your RTB endpoint kept failing)" if contract.hold == "breaker" else "the exchange"
            )
            reason = f": {row.hold_reason}" if row is not None and row.hold_reason else ""
            return f"Held by {who}{reason}"
    if step.reason == "below_floor":
        return f"Price under the floor{floor_note}"
    if step.reason == "suppressed":
        return "The consumer opted out"
    return reason_label(step.reason)


def _recent_pings(offer: OfferBook) -> list[dict[str, Any]]:
    """The latest pings on the offer, PII-free as every ping is, with their source token."""
    with market_scope():
        pings = (
            Ping.objects.filter(offer_id=offer.id)
            .order_by("-created_at", "-pk")
            .values("public_id", "created_at", "lead", "quality_score", "campaign__source_token", "test")[:RECENT]
        )
        return [dict(p) for p in pings]


@portal_page(side="buyer")
def contract_test(request: HttpRequest) -> HttpResponse:
    buyer: Organization = request.organization  # type: ignore[attr-defined]
    rows = {c.public_id: c for c in contracts_of(organization=buyer)}
    book = book_current()
    offers = [o for o in book.offers.values() if any(c.organization_id == buyer.pk for c in o.contracts)]
    offers.sort(key=lambda o: o.slug)
    context: dict[str, Any] = {"offers": offers, "offer": None, "tz": buyer.timezone}
    if not offers:
        return render(request, "exchange/contract_test.html", context)
    params = request.GET
    offer = next((o for o in offers if o.slug == params.get("offer")), offers[0])
    recent = _recent_pings(offer)
    picked = next((p for p in recent if p["public_id"] == params.get("ping")), None)
    values: dict[str, str] = {}
    source, hour, weekday, score = (
        params.get("source", "").strip(),
        params.get("hour", ""),
        params.get("weekday", ""),
        params.get("score", "").strip(),
    )
    if picked is not None:
        values = {
            k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in picked["lead"].items()
        }
        local = picked["created_at"].astimezone(buyer.tz)
        source, hour, weekday = picked["campaign__source_token"] or "", str(local.hour), WEEKDAYS[local.weekday()]
        score = str(picked["quality_score"])
    else:
        values = {name: params.get(f"f_{name}", "").strip() for name in offer.fields}
    ping_specs = [s for s in offer.fields.values() if s.ping != "no" and not s.pii]
    errors: dict[str, list[str]] = {}
    verdicts: list[Verdict] = []
    score_error = ""
    run = params.get("run") == "1" or picked is not None
    if run:
        lead: dict[str, object] = {}
        try:
            lead = lead_validate(
                {k: v for k, v in values.items() if v != "" and k in offer.fields}, offer.fields, stage="ping"
            )
        except LeadInvalid as exc:
            errors = exc.errors
        quality = 0
        if score:
            if score.isdigit() and 0 <= int(score) <= 100:
                quality = int(score)
            else:
                score_error = "A score from 0 to 100, or leave it empty."
        elif not errors:
            quality = quality_score(lead=lead, fields=offer.fields, consumer={}, consent=None, tracking=None)
        if not errors and not score_error:
            verdicts = _evaluate(buyer, offer, book.campaigns, rows, lead, source, hour, weekday, quality)
            context["score_used"] = quality
            context["instant"] = _instant(timezone.now(), buyer.tz, weekday, hour)
    context.update(
        {
            "offer": offer,
            "recent": recent,
            "picked": picked,
            "inputs": [_input_of(s, values.get(s.name, ""), errors.get(s.name, [])) for s in ping_specs],
            "other_errors": [f"{k}: {' '.join(v)}" for k, v in errors.items() if k not in {s.name for s in ping_specs}],
            "source": source,
            "hour": hour,
            "weekday": weekday,
            "score": score,
            "score_error": score_error,
            "hours": [(str(h), f"{h:02d}:00–{h:02d}:59") for h in range(24)],
            "weekdays": list(WEEKDAY_NAMES.items()),
            "pseudo_fields": PSEUDO_FIELDS,
            "verdicts": verdicts,
            "run": run and not errors and not score_error,
        }
    )
    return render(request, "exchange/contract_test.html", context, status=422 if errors or score_error else 200)


def _evaluate(
    buyer: Organization,
    offer: OfferBook,
    campaigns: dict[str, tuple[CompiledCampaign, int]],
    rows: dict[str, BuyerContract],
    lead: dict[str, object],
    source: str,
    hour: str,
    weekday: str,
    quality: int,
) -> list[Verdict]:
    campaign = _campaign_for(offer, source, campaigns)
    now = _instant(timezone.now(), buyer.tz, weekday, hour)
    ping = AuctionPing(
        seed="test",
        offer=offer,
        campaign=campaign,
        lead=lead,
        email_hash="",
        phone_hash="",
        quality_score=quality,
        test=True,
        now=now,
        offer_slug=offer.slug,
        source_token=source,
    )
    mine = [c for c in offer.contracts if c.organization_id == buyer.pk]
    with market_scope():
        steps = auction_dry_run(ping, mine)
    floor = max(offer.floor, ZERO)
    floor_note = f" (the offer's floor is {money_label(floor)}" + (
        f"; this source's payout floor is {money_label(campaign.floor)})" if campaign.floor > ZERO else ")"
    )
    verdicts = [
        Verdict(
            public_id=step.contract.public_id,
            name=rows[step.contract.public_id].name if step.contract.public_id in rows else step.contract.public_id,
            bids=not step.reason,
            rtb=step.contract.price is None,
            price=step.price,
            words=_words(step, rows.get(step.contract.public_id), floor_note),
            reason=step.reason,
        )
        for step in steps
    ]
    verdicts.sort(key=lambda v: (not (v.bids or v.reason == "rtb_would_ask"), -(v.price or ZERO), v.name))
    return verdicts
