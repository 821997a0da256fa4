"""Portal pages for buyers: their purchases (with the leads they bought) and their bids.

Pages run in the buyer's tenant scope (``accounts.middleware``) and every read below filters by
the buyer explicitly as well. Two reads cross tenants, each on purpose and cut to the buyer:

* a purchase's lead and consent belong to the seller; they are reached only through the buyer's
  own ``Sale`` row (a join, not a query of the seller's tables), and the PII is decrypted only
  for a sale that was sold (or sold, then returned);
* the evaluations of the buyer's contracts live in each ping's ``waterfall``, which names every
  buyer's contracts; :func:`evaluations_of` reads recent pings under ``market_scope`` and keeps
  only the buyer's own entries, copied field by field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.models import Organization
from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from contracts.rules import PSEUDO_FIELDS
from contracts.selectors import contracts_of
from core.errors import ExchangeError, NotFound
from exchange.models import Bid, DeliveryAttempt, Ping, Sale
from exchange.returns.models import Return
from exchange.returns.selectors import returnability
from exchange.returns.services import return_request
from exchange.selectors import lead_sales_for_seller
from leads.crypto import PiiKeyError, pii_decrypt
from leads.models import ConsentRecord
from leads.selectors import lead_get
from leads.views import ordered_fields, seller_of

PAGE_SIZE = 50
# How many of the exchange's latest pings (on the buyer's offers) the evaluations table reads.
RECENT_PINGS = 500
# A sale whose lead the buyer holds: it may read the PII.
BOUGHT = (Sale.Status.SOLD, Sale.Status.RETURNED)

REASONS = {
    "won": "Won",
    "outbid": "Outbid",
    "paused": "Contract or account paused",
    "seller_blocked": "You block this seller",
    "buyer_blocked": "The seller's campaign blocks you",
    "below_min_score": "Quality score under your minimum",
    "schedule_closed": "Outside your schedule",
    "budget_reached": "Budget reached",
    "insufficient_balance": "Insufficient balance",
    "duplicate": "You bought this consumer recently",
    "below_floor": "Price under the floor",
    "rtb_timeout": "Your RTB endpoint timed out",
    "rtb_error": "Your RTB endpoint failed",
    "rtb_invalid": "Your RTB answer was invalid",
    "rtb_no_bid": "Your RTB endpoint passed",
    "pricing_error": "Your price could not be computed",
    "invalid_terms": "Your contract's saved terms are no longer valid: save them again",
}


PSEUDO_LABELS = {p.name: p.label for p in PSEUDO_FIELDS}


def reason_label(reason: str) -> str:
    """A waterfall reason in words (``filtered:state`` → "Filtered out on state")."""
    if reason.startswith("filtered:"):
        field = reason.split(":", 1)[1]
        pseudo = PSEUDO_LABELS.get(field)
        return f"Filtered out on {field if pseudo is None else f'{pseudo.lower()} ({field})'}"
    if reason.startswith("cap_reached:"):
        return f"Cap reached ({reason.split(':', 1)[1]})"
    return REASONS.get(reason, reason or "—")


def _buyer(request: HttpRequest) -> Organization:
    """The current organization if it buys; anything else is answered as a missing page."""
    organization: Organization | None = getattr(request, "organization", None)
    if organization is None or not organization.is_buyer:
        raise Http404("No such page.")
    return organization


# --- selectors ---------------------------------------------------------------------------------


def purchases_of(*, buyer: Organization, status: str = "", contract: BuyerContract | None = None) -> QuerySet[Sale]:
    """The buyer's sales, newest first, optionally of one status and one of its contracts."""
    sales = (
        Sale.objects.filter(organization=buyer)
        .select_related("lead", "contract", "offer")
        .order_by("-created_at", "-pk")
    )
    if status:
        sales = sales.filter(status=status)
    if contract is not None:
        sales = sales.filter(contract=contract)
    return sales


def purchase_get(*, buyer: Organization, public_id: str) -> Sale:
    """The buyer's sale with its lead and consent, or Http404 — another buyer's is a missing one."""
    sale = (
        Sale.objects.filter(organization=buyer, public_id=public_id)
        .select_related("lead", "lead__consent", "contract", "offer", "campaign")
        .first()
    )
    if sale is None:
        raise Http404("No such purchase.")
    return sale


def bids_of(*, buyer: Organization) -> QuerySet[Bid]:
    """The buyer's bids (its contracts' priced offers), newest first."""
    return (
        Bid.objects.filter(organization=buyer)
        .select_related("ping", "contract")
        .order_by("-created_at", "-ping_id", "rank")
    )


@dataclass(frozen=True)
class Evaluation:
    """One of the buyer's own contracts in one ping's waterfall; nothing about other buyers."""

    ping_id: str
    created_at: datetime
    test: bool
    contract_id: str
    contract_name: str
    reason: str
    price: str | None
    latency_ms: float | None

    @property
    def reason_label(self) -> str:
        return reason_label(self.reason)


def evaluations_of(*, buyer: Organization, limit: int = RECENT_PINGS) -> list[Evaluation]:
    """The buyer's contracts' entries in the waterfalls of the exchange's ``limit`` latest pings
    on the offers it has contracts on, newest first.

    Cost: one indexed query for the buyer's contracts, then one query reading up to ``limit``
    pings (``created_at`` index) with their waterfall JSON, cut in Python — every other buyer's
    entries are decoded and dropped. That is about ``limit`` × (contracts per offer) small dicts
    per page view; fine for a portal page, and bounded by ``limit`` however busy the exchange.
    When it is not: filter in the database (PostgreSQL ``waterfall @> '[{"organization": id}]'``
    with a GIN index) or write the buyer's evaluations to their own table at ping time.
    """
    own = {c.public_id: c for c in BuyerContract.objects.filter(organization=buyer).only("public_id", "name", "offer")}
    if not own:
        return []
    offer_ids = {c.offer_id for c in own.values()}
    with market_scope():
        pings = list(
            Ping.objects.filter(offer_id__in=offer_ids)
            .order_by("-created_at", "-pk")
            .values_list("public_id", "created_at", "test", "waterfall")[:limit]
        )
    evaluations = []
    for public_id, created_at, test, waterfall in pings:
        for step in waterfall or []:
            if not isinstance(step, dict) or step.get("organization") != buyer.pk:
                continue
            contract = own.get(str(step.get("contract")))
            if contract is None:
                continue
            latency = step.get("latency_ms")
            evaluations.append(
                Evaluation(
                    ping_id=public_id,
                    created_at=created_at,
                    test=test,
                    contract_id=contract.public_id,
                    contract_name=contract.name,
                    reason=str(step.get("reason") or ""),
                    price=None if step.get("price") is None else str(step["price"]),
                    latency_ms=float(latency) if isinstance(latency, int | float) else None,
                )
            )
    return evaluations


# --- pages -------------------------------------------------------------------------------------


@login_required
def purchase_list(request: HttpRequest) -> HttpResponse:
    buyer = _buyer(request)
    contracts = list(contracts_of(organization=buyer))
    status = request.GET.get("status", "")
    if status not in Sale.Status.values:
        status = ""
    contract = next((c for c in contracts if c.public_id == request.GET.get("contract")), None)
    page = Paginator(purchases_of(buyer=buyer, status=status, contract=contract), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "exchange/purchase_list.html",
        {"page": page, "contracts": contracts, "statuses": Sale.Status.choices, "status": status, "contract": contract},
    )


@login_required
def purchase_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    """The purchase, its lead and consent; POST asks to return it (owners and managers only)."""
    buyer = _buyer(request)
    sale = purchase_get(buyer=buyer, public_id=public_id)
    return_error, status = "", 200
    if request.method == "POST":
        if not request.membership.can_manage:  # type: ignore[attr-defined]
            raise PermissionDenied("Only owners and managers return leads.")
        try:
            ret = return_request(
                buyer=buyer,
                sale_public_id=sale.public_id,
                reason=request.POST.get("reason", ""),
                note=request.POST.get("note", ""),
                user=request.user,  # type: ignore[arg-type]
            )
        except ExchangeError as exc:
            details = [message for messages_ in (exc.fields or {}).values() for message in messages_]
            return_error, status = " ".join([exc.message, *details]), exc.status
        else:
            messages.success(request, f"Return {ret.public_id}: {ret.get_status_display().lower()}.")
            return redirect("exchange:purchase_detail", public_id=sale.public_id)
    lead = sale.lead
    data: dict[str, Any] = dict(lead.data)
    pii_note = ""
    if sale.contact_details_shown:
        try:
            data.update(pii_decrypt(lead.pii_encrypted))
        except PiiKeyError:
            pii_note = "The contact details cannot be decrypted right now; the operator has been told."
    elif sale.status == Sale.Status.RESERVED:
        pii_note = "Contact details are shown once the lead is delivered to you."
    elif sale.status == Sale.Status.RETURNED:
        pii_note = "You returned this lead: its contact details are no longer shown."
    else:
        pii_note = "This sale was released (the lead was not bought): contact details are not shown."
    consent = getattr(lead, "consent", None) if sale.contact_details_shown else None
    return render(
        request,
        "exchange/purchase_detail.html",
        {
            "sale": sale,
            "lead": lead,
            "fields": ordered_fields(data, sale.offer.fields),
            "pii_note": pii_note,
            "consent": consent,
            "returns": returnability(buyer=buyer, sale=sale),
            "return_reasons": Return.Reason.choices,
            "return_error": return_error,
            "can_manage": request.membership.can_manage,  # type: ignore[attr-defined]
            "attempts": DeliveryAttempt.objects.filter(organization=buyer, sale=sale).order_by("created_at"),
        },
        status=status,
    )


@login_required
def bid_list(request: HttpRequest) -> HttpResponse:
    buyer = _buyer(request)
    page = Paginator(bids_of(buyer=buyer), PAGE_SIZE).get_page(request.GET.get("page"))
    evaluations = evaluations_of(buyer=buyer)
    passed = [e for e in evaluations if e.reason not in ("won", "outbid")]
    return render(
        request,
        "exchange/bid_list.html",
        {"page": page, "passed": passed[:PAGE_SIZE], "passed_count": len(passed), "recent_pings": RECENT_PINGS},
    )


@login_required
def lead_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    seller = seller_of(request)
    try:
        lead = lead_get(seller=seller, public_id=public_id)
    except NotFound as exc:
        raise Http404("No such lead.") from exc
    consent = ConsentRecord.objects.filter(organization=seller, lead=lead).first()
    return render(
        request,
        "leads/lead_detail.html",
        {
            "lead": lead,
            "fields": ordered_fields(lead.data, lead.offer.fields),
            "sales": lead_sales_for_seller(seller=seller, lead=lead),
            "consent": consent,
        },
    )
