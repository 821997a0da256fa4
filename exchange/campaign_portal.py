"""The parts of a seller's campaign page that need the market: the test console and the floor and
blocked buyers (the page itself is ``contracts.views.campaign_detail``, which loads these with htmx).

* The **test console** sends a test ping and then its post through the same code as the API
  (:func:`exchange.api.views.ping_answer`, :func:`~exchange.api.views.post_answer`), as the
  seller's organization, and shows both answers as the API gives them, errors included. It always
  runs in test mode: nothing is charged, capped or counted.
* **Floor and blocked buyers** go through the campaign terms' one write path
  (``contracts.services.campaign_update``). Buyers stay anonymous: the seller sees each buyer that
  bid on or bought its leads as an opaque token (``contracts.terms.buyer_token``) and blocks by it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import Organization
from accounts.portal import portal_page, role_allows
from accounts.tenancy import market_scope
from contracts.models import Campaign
from contracts.posting import PING_ID
from contracts.selectors import campaign_get
from contracts.services import campaign_update
from contracts.terms import buyer_token
from core.api.parsers import JsonObjectParser, MalformedBody
from exchange.api.errors import exception_handler
from exchange.api.views import ping_answer, post_answer
from exchange.models import Bid, Sale

# How far back the buyers a seller can block are looked for.
BUYERS_SEEN_DAYS = 90


# --- the test console ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleAnswer:
    """One call of the console, as the API would have answered it."""

    sent: str  # the JSON body sent
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def body_json(self) -> str:
        return json.dumps(self.body, indent=2)


def _body(text: str) -> Any:
    """The console's text read as the API reads a request body (same parser, same refusals)."""
    if not text.strip():
        raise MalformedBody("The request body is empty: send a JSON object.")
    return JsonObjectParser().parse(io.BytesIO(text.encode()))


def _call(sent: str, run: Callable[[], dict[str, Any]]) -> ConsoleAnswer:
    try:
        return ConsoleAnswer(sent, 200, run())
    except Exception as exc:
        response = exception_handler(exc, {})
        if response is None:
            raise
        return ConsoleAnswer(sent, response.status_code, dict(response.data))


def console_run(*, seller: Organization, ping_text: str, post_text: str) -> tuple[ConsoleAnswer, ConsoleAnswer | None]:
    """A test ping from ``ping_text`` and, when it is answered, the post from ``post_text`` for that
    ping: both answers. ``test`` is forced on, and the post carries the ping's id."""

    def ping() -> dict[str, Any]:
        data = _body(ping_text)
        data["test"] = True
        return ping_answer(seller=seller, data=data)

    ping_sent = ping_text
    first = _call(ping_sent, ping)
    ping_id = first.body.get("ping_id") if first.ok else None
    if ping_id is None:
        return first, None

    def post() -> dict[str, Any]:
        data = _body(post_text)
        data["ping_id"] = ping_id
        return post_answer(seller=seller, data=data)

    return first, _call(post_text.replace(PING_ID, ping_id), post)


@require_POST
@portal_page(side="seller", role="manager")
def campaign_console(request: HttpRequest, public_id: str) -> HttpResponse:
    campaign = campaign_get(organization=request.organization, public_id=public_id)  # type: ignore[attr-defined]
    ping, post = console_run(
        seller=request.organization,  # type: ignore[attr-defined]
        ping_text=request.POST.get("ping", ""),
        post_text=request.POST.get("post", ""),
    )
    context = {"campaign": campaign, "steps": [("Ping", ping), ("Post", post)]}
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "exchange/campaign_console_answers.html", context)
    return render(request, "exchange/campaign_console_page.html", context)


# --- floor and blocked buyers --------------------------------------------------------------------


@dataclass(frozen=True)
class BuyerSeen:
    """A buyer as a seller sees it: a token, what it did with the seller's leads, and the block."""

    token: str
    bids: int
    purchases: int
    blocked: bool


def campaign_buyers(*, organization: Organization, campaign: Campaign) -> list[BuyerSeen]:
    """The buyers that bid on or bought ``organization``'s leads (any of its campaigns, the last
    :data:`BUYERS_SEEN_DAYS` days), and those ``campaign`` blocks, by token; never their names.

    Bids and sales are the buyers' rows: they are read under the market scope, cut to counts."""
    since = timezone.now() - timedelta(days=BUYERS_SEEN_DAYS)
    with market_scope():
        bids = dict(
            Bid.objects.filter(ping__organization=organization, created_at__gte=since)
            .values_list("organization_id")
            .annotate(n=Count("id"))
            .values_list("organization_id", "n")
        )
        purchases = dict(
            Sale.objects.filter(
                seller=organization, created_at__gte=since, status__in=(Sale.Status.SOLD, Sale.Status.RETURNED)
            )
            .values_list("organization_id")
            .annotate(n=Count("id"))
            .values_list("organization_id", "n")
        )
    blocked = set(campaign.blocked_buyers.values_list("pk", flat=True))
    seen = [
        BuyerSeen(
            token=buyer_token(seller_id=organization.pk, buyer_id=buyer_id),
            bids=bids.get(buyer_id, 0),
            purchases=purchases.get(buyer_id, 0),
            blocked=buyer_id in blocked,
        )
        for buyer_id in set(bids) | set(purchases) | blocked
    ]
    return sorted(seen, key=lambda b: (-b.purchases, -b.bids, b.token))


@require_http_methods(["GET", "POST"])
@portal_page(side="seller")
def campaign_terms(request: HttpRequest, public_id: str) -> HttpResponse:
    """The campaign's floor and blocked buyers: read by every member, changed by a manager or owner."""
    organization = request.organization  # type: ignore[attr-defined]
    campaign = campaign_get(organization=organization, public_id=public_id)
    can_change = role_allows(request.membership, "manager")  # type: ignore[attr-defined]
    errors: dict[str, list[str]] = {}
    saved = False
    typed: dict[str, Any] = {}
    if request.method == "POST":
        if not can_change:
            return render(
                request,
                "accounts/forbidden.html",
                {"needed": "manager", "needs": "change terms", "role": request.membership.role},  # type: ignore[attr-defined]
                status=403,
            )
        floor = request.POST.get("floor", "").strip()
        typed = {"floor": floor, "blocked_buyers": request.POST.getlist("blocked_buyers")}
        terms = {"floor": floor or None, "blocked_buyers": typed["blocked_buyers"]}
        try:
            campaign = campaign_update(campaign=campaign, terms=terms)
        except ValidationError as exc:
            errors = exc.message_dict
        else:
            saved, typed = True, {}
    buyers = campaign_buyers(organization=organization, campaign=campaign)
    if typed:  # an error: show what was typed, not what is stored
        chosen = set(typed["blocked_buyers"])
        buyers = [BuyerSeen(b.token, b.bids, b.purchases, b.token in chosen) for b in buyers]
    context = {
        "campaign": campaign,
        "buyers": buyers,
        "floor": typed.get("floor", f"{campaign.floor:.2f}"),
        "errors": errors,
        "saved": saved,
        "can_change": can_change,
        "days": BUYERS_SEEN_DAYS,
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "exchange/campaign_terms.html", context)
    return render(request, "exchange/campaign_terms_page.html", context)
