"""The exchange's URLs plus the benchmark's two baselines, outside ``/api/`` (the API's catch-all
answers every unknown ``/api/v1/`` path with a JSON 404):

``POST /bench/hello``
    A DRF hello-world: the same server, middleware and framework as the ping, with no
    authentication and no business logic, so the ping's figures can be read against it.

``POST /bench/ping-tree``
    The sequential baseline of the RTB fan-out: a classic ping tree. It takes a ping's body and
    evaluates the contracts of the ping's offer one after another, in the order a ping tree walks
    them (priority, then the market's order): an internally priced contract by its filters,
    schedule and price (the exchange's compiled contract book and pricing); an RTB contract by a
    blocking POST to the buyer — the exchange's own bid request body, signed, through its
    outbound client one request at a time (``http_send``), under the contract's
    ``rtb_timeout_ms`` — waiting for the answer
    before going on. It answers with the best bid. It stores nothing and does no more than that;
    see README.md for exactly what it leaves out.
"""

from __future__ import annotations

import json
import secrets
import time
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from django.urls import path
from django.utils import timezone
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.outbound import TIMEOUT, OutboundRequest, http_send
from core.schema import LeadInvalid, lead_validate
from exchange.auction.book import CompiledCampaign, CompiledContract, OfferBook, book_current
from exchange.auction.pricing import cap_at_max, contract_price, effective_floor
from exchange.auction.rtb import rtb_body
from exchange.signing import signed_headers
from exchange.urls import handler404, handler500
from exchange.urls import urlpatterns as exchange_urlpatterns
from leads.services import json_value

__all__ = ["handler404", "handler500", "urlpatterns"]

CENT = Decimal("0.01")


class HelloView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        return Response({"hello": "world"})


def _rtb_ask(
    contract: CompiledContract,
    *,
    ping_id: str,
    offer: OfferBook,
    campaign: CompiledCampaign,
    lead: dict[str, Any],
    secret: str,
) -> tuple[str, Decimal | None]:
    """One buyer asked, and waited for: (reason, bid) — reason ``""`` for a bid (DESIGN.md §7)."""
    body = rtb_body(
        ping_id=ping_id,
        offer=offer.slug,
        contract=contract,
        lead=lead,
        quality_score=0,
        source=campaign.source_token,
        tmax_ms=contract.rtb_timeout_ms,
        test=False,
    )
    headers = signed_headers(secret=secret, body=body)
    response = http_send(OutboundRequest(contract.rtb_url, body, headers, contract.rtb_timeout_ms / 1000))
    if response.status is None:  # timed out, refused (SSRF guard), broken answer
        return ("rtb_timeout" if response.error == TIMEOUT else "rtb_error"), None
    if response.status == 204:
        return "rtb_no_bid", None
    if not 200 <= response.status < 300:
        return "rtb_error", None
    try:
        raw = json.loads(response.body)["bid"]
        bid = None if raw is None else Decimal(str(raw))
    except (ValueError, KeyError, TypeError, InvalidOperation):
        return "rtb_invalid", None
    if bid is None:
        return "rtb_no_bid", None
    if not bid.is_finite() or bid < 0:
        return "rtb_invalid", None
    return "", cap_at_max(contract, bid.quantize(CENT, rounding=ROUND_DOWN))


class PingTreeView(APIView):
    """The sequential ping tree (see the module's docstring)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        book = book_current()
        data = request.data if isinstance(request.data, dict) else {}
        entry = book.campaigns.get(str(data.get("campaign", "")))
        if entry is None:
            return Response({"status": "rejected", "reason": "unknown_campaign"}, status=404)
        campaign, offer_id = entry
        offer = book.offers[offer_id]
        try:
            lead = lead_validate(data.get("lead"), offer.fields, stage="ping")
        except LeadInvalid as exc:
            return Response({"status": "invalid", "errors": exc.errors}, status=400)
        lead_json = {k: json_value(v) for k, v in lead.items()}
        ping_id = f"tree_{secrets.token_hex(10)}"
        now = timezone.now()
        floor = effective_floor(
            offer_floor=offer.floor, payout_floor=campaign.floor, margin_percent=campaign.margin_percent
        )
        started = time.perf_counter()
        best: tuple[Decimal, CompiledContract] | None = None
        rtb_calls, rtb_reasons, rtb_ms = 0, [], 0.0
        waterfall: list[tuple[str, str, str | None]] = []
        for contract in sorted(offer.contracts, key=lambda c: -c.priority):  # stable: the market's order
            price: Decimal | None = None
            if not contract.active or not contract.organization_active:
                reason = "paused"
            elif (failed := contract.predicate(lead)) is not None:
                reason = f"filtered:{failed}"
            elif not contract.schedule.is_open(now, contract.tz):
                reason = "schedule_closed"
            elif contract.price is not None:
                reason, price = "", contract_price(contract, lead)
            else:
                asked = time.perf_counter()
                reason, price = _rtb_ask(
                    contract,
                    ping_id=ping_id,
                    offer=offer,
                    campaign=campaign,
                    lead=lead_json,
                    secret=book.signing_secrets[contract.organization_id],
                )
                rtb_ms += (time.perf_counter() - asked) * 1000
                rtb_calls += 1
                rtb_reasons.append(reason or "bid")
            if price is not None and (floor is None or price < floor):
                reason, price = "below_floor", None
            if price is not None and (best is None or price > best[0]):
                best = (price, contract)
            waterfall.append((contract.public_id, reason or "bid", None if price is None else f"{price:.2f}"))
        answer: dict[str, Any] = {
            "status": "accepted" if best else "rejected",
            "winner": best and {"contract": best[1].public_id, "price": f"{best[0]:.2f}", "rtb": best[1].price is None},
            "contracts": len(waterfall),
            "rtb_calls": rtb_calls,
            "rtb_reasons": rtb_reasons,
            "rtb_ms": round(rtb_ms, 1),
            "tree_ms": round((time.perf_counter() - started) * 1000, 1),
            "waterfall": waterfall,
        }
        return Response(answer)


urlpatterns = [
    path("bench/hello", HelloView.as_view(), name="bench-hello"),
    path("bench/ping-tree", PingTreeView.as_view(), name="bench-ping-tree"),
    *exchange_urlpatterns,
]
