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

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render

from accounts.exports import csv_stream
from accounts.models import Organization
from accounts.portal import portal_page
from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from contracts.selectors import contracts_of
from core.errors import ExchangeError, NotFound
from core.money import currency_code
from exchange.auction.book import book_current
from exchange.models import Bid, DeliveryAttempt, Ping, Sale
from exchange.portal_filters import PurchaseFilter, ReturnFilter
from exchange.returns.models import Return
from exchange.returns.selectors import returnability, returns_of
from exchange.returns.services import return_request
from exchange.selectors import lead_auctions_for_seller, lead_sales_for_seller
from exchange.services.selling import LeadAnswer
from leads.crypto import PiiKeyError, pii_decrypt
from leads.models import ConsentRecord
from leads.reasons import reason_words
from leads.selectors import lead_get
from leads.views import ordered_fields

PAGE_SIZE = 50
# How many of the exchange's latest pings (on the buyer's offers) the evaluations table reads.
RECENT_PINGS = 500
# A sale whose lead the buyer holds: it may read the PII.
BOUGHT = (Sale.Status.SOLD, Sale.Status.RETURNED)


def reason_label(reason: str) -> str:
    """A waterfall reason in words (``filtered:state`` → "Filtered out on state"): ``leads.reasons``."""
    return reason_words(reason, "bid")


# --- selectors ---------------------------------------------------------------------------------


def purchases_of(*, buyer: Organization) -> QuerySet[Sale]:
    """The buyer's sales, newest first (``PurchaseFilter`` narrows them)."""
    return (
        Sale.objects.filter(organization=buyer)
        .select_related("lead", "contract", "offer")
        .order_by("-created_at", "-pk")
    )


def purchase_filter(request: HttpRequest, buyer: Organization) -> PurchaseFilter:
    """The purchase list's filters from the query string; the page and its CSV use this one."""
    return PurchaseFilter(request.GET, purchases_of(buyer=buyer), organization=buyer)


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


@portal_page(side="buyer")
def purchase_list(request: HttpRequest) -> HttpResponse:
    buyer = request.organization  # type: ignore[attr-defined]
    purchases = purchase_filter(request, buyer)
    valid = purchases.is_valid()
    page = Paginator(purchases.qs if valid else purchases_of(buyer=buyer).none(), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "exchange/purchase_list.html",
        # Read only by the empty state (a lazy query): whether to offer "set up a contract".
        {"page": page, "filter": purchases, "contracts": contracts_of(organization=buyer)},
        status=200 if valid else 400,
    )


def purchase_columns(buyer: Organization) -> list[str]:
    """The lead-data columns of the buyer's CSV: the fields of the offers it has contracts on
    (contact details included), in the offers' order."""
    names: list[str] = []
    for contract in contracts_of(organization=buyer):
        for field in contract.offer.fields:
            if isinstance(field, dict) and field.get("name") not in names:
                names.append(str(field.get("name")))
    return names


CONSENT_COLUMNS = ["consent_captured_at", "consent_ip", "consent_page_url", "trusted_form_cert_url", "jornaya_leadid"]


@portal_page(side="buyer")
def purchase_export(request: HttpRequest) -> HttpResponseBase:
    """The filtered purchases as CSV, streamed: every matching row, not one page. A lead the buyer
    bought and kept comes with its contact details and consent, as on its page; a reserved,
    released or returned one with its other fields only."""
    buyer = request.organization  # type: ignore[attr-defined]
    purchases = purchase_filter(request, buyer)
    if not purchases.is_valid():
        return purchase_list(request)
    tz = buyer.tz
    columns = purchase_columns(buyer)

    def local(value: datetime | None) -> str:
        return value.astimezone(tz).isoformat(timespec="seconds") if value else ""

    def rows() -> Iterator[list[Any]]:
        for sale in purchases.qs.select_related("lead__consent").iterator(chunk_size=500):
            data: dict[str, Any] = dict(sale.lead.data)
            consent = None
            if sale.contact_details_shown:
                try:
                    data.update(pii_decrypt(sale.lead.pii_encrypted))
                except PiiKeyError:
                    data["email"] = data["phone"] = "(cannot be decrypted right now)"
                consent = getattr(sale.lead, "consent", None)
            yield [
                sale.public_id,
                sale.lead.public_id,
                local(sale.created_at),
                local(sale.sold_at),
                sale.contract.name,
                sale.contract.public_id,
                sale.offer.slug,
                sale.get_status_display(),
                sale.price,
                reason_words(sale.release_reason, "release") if sale.release_reason else "",
                "yes" if sale.test else "no",
                *[data.get(name) for name in columns],
                *(
                    [local(consent.captured_at), consent.ip, consent.page_url]
                    + [consent.trusted_form_cert_url, consent.jornaya_leadid]
                    if consent is not None
                    else [""] * len(CONSENT_COLUMNS)
                ),
            ]

    return csv_stream(
        organization=buyer,
        filename=f"purchases-{buyer.slug}.csv",
        header=[
            "sale_id",
            "lead_id",
            f"bought ({tz})",
            f"sold ({tz})",
            "contract",
            "contract_id",
            "offer",
            "status",
            f"price ({currency_code()})",
            "release_reason",
            "test",
            *columns,
            *CONSENT_COLUMNS,
        ],
        rows=rows,
    )


@portal_page(side="buyer")
def return_list(request: HttpRequest) -> HttpResponse:
    """The buyer's returns: status, reason, when asked and decided, the purchase; filter by status."""
    buyer = request.organization  # type: ignore[attr-defined]
    found = ReturnFilter(request.GET, returns_of(buyer=buyer).select_related("sale__contract"), organization=buyer)
    valid = found.is_valid()
    page = Paginator(found.qs if valid else returns_of(buyer=buyer).none(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "exchange/return_list.html", {"page": page, "filter": found}, status=200 if valid else 400)


@portal_page(side="buyer")
def purchase_detail(request: HttpRequest, public_id: str) -> HttpResponseBase:
    """The purchase, its lead and consent; POST asks to return it (owners and managers only)."""
    if request.method == "POST":
        return _purchase_return(request, public_id)
    return _purchase_page(request, public_id)


@portal_page(side="buyer", role="manager")
def _purchase_return(request: HttpRequest, public_id: str) -> HttpResponse:
    return _purchase_page(request, public_id)


def _purchase_page(request: HttpRequest, public_id: str) -> HttpResponse:
    buyer = request.organization  # type: ignore[attr-defined]
    sale = purchase_get(buyer=buyer, public_id=public_id)
    return_error, status = "", 200
    if request.method == "POST":
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
    if lead.erased_at is not None:
        pii_note = "The consumer had their personal data deleted (a privacy request): the contact details were erased."
    elif sale.contact_details_shown:
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


@portal_page(side="buyer")
def bid_list(request: HttpRequest) -> HttpResponse:
    buyer = request.organization  # type: ignore[attr-defined]
    page = Paginator(bids_of(buyer=buyer), PAGE_SIZE).get_page(request.GET.get("page"))
    evaluations = evaluations_of(buyer=buyer)
    passed = [e for e in evaluations if e.reason not in ("won", "outbid")]
    return render(
        request,
        "exchange/bid_list.html",
        {"page": page, "passed": passed[:PAGE_SIZE], "passed_count": len(passed), "recent_pings": RECENT_PINGS},
    )


@portal_page(side="seller")
def lead_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    """A seller's lead with its sales (the exchange's) and consent: no buyer named, no PII."""
    seller = request.organization  # type: ignore[attr-defined]
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
            "auctions": lead_auctions_for_seller(seller=seller, lead=lead),
            "answer": LeadAnswer.of(lead, lead.ping, offer=book_current().offers[lead.offer_id]),
            "consent": consent,
        },
    )
