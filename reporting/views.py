"""Portal pages of reporting: a purchase's conversions (buyers) and the postbacks (sellers).

The purchase page (``exchange.portal.purchase_detail``) and the campaign page
(``contracts.views.campaign_detail``) belong to apps below reporting, which may not import it: they
load these fragments with htmx from their URLs (docs/decisions.md), as the campaign page already
loads the exchange's parts. Each view also answers a plain request with a whole page, so nothing
needs JavaScript.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.portal import portal_page, role_allows, role_refused_page
from contracts.selectors import campaign_get
from contracts.services import campaign_update
from core.errors import ExchangeError
from core.money import money_label
from exchange.portal import purchase_get
from reporting.selectors import conversions_of, postbacks_of
from reporting.services import conversion_record

BAD_TIME = "Give a date and time such as 2026-12-07 14:30, or leave it empty for now."


def _local_time(text: str, request: HttpRequest) -> datetime | None:
    """A time typed in the organization's time zone (``2026-12-07T14:30`` from the browser's
    picker, or with a space), or None when empty; ValueError when it is not a time."""
    text = text.strip()
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=request.organization.tz)  # type: ignore[attr-defined]
    return moment


@require_http_methods(["GET", "POST"])
@portal_page(side="buyer")
def purchase_conversions(request: HttpRequest, public_id: str) -> HttpResponse:
    """The purchase's conversions: read by every member; recorded by a manager or owner."""
    buyer = request.organization  # type: ignore[attr-defined]
    sale = purchase_get(buyer=buyer, public_id=public_id)
    can_record = role_allows(request.membership, "manager")  # type: ignore[attr-defined]
    typed = {"event": "sale", "value": "", "occurred_at": ""}
    errors: dict[str, list[str]] = {}
    notice = ""
    status = 200
    if request.method == "POST":
        if not can_record:
            return role_refused_page(request, "manager")
        typed = {name: request.POST.get(name, "").strip() for name in typed}
        try:
            occurred_at = _local_time(typed["occurred_at"], request)
        except ValueError:
            errors["occurred_at"] = [BAD_TIME]
            occurred_at = None
        if not errors:
            try:
                recorded = conversion_record(
                    buyer=buyer,
                    sale_public_id=sale.public_id,
                    event=typed["event"],
                    value=typed["value"],
                    occurred_at=occurred_at,
                    actor=request.membership,  # type: ignore[attr-defined]
                )
            except ExchangeError as exc:
                errors = dict(exc.fields or {"event": [exc.message]})
            else:
                conversion = recorded.conversion
                notice = (
                    f"Conversion {conversion.public_id} recorded: {conversion.event}, {money_label(conversion.value)}."
                    if recorded.created
                    else f"This purchase already has a '{conversion.event}' conversion ({conversion.public_id}, "
                    f"{money_label(conversion.value)}): it is recorded once, so nothing changed."
                )
                if not request.htmx:  # type: ignore[attr-defined]
                    messages.success(request, notice)
                    return redirect("exchange:purchase_detail", public_id=sale.public_id)
                typed = {"event": "sale", "value": "", "occurred_at": ""}
        if errors:
            status = 422 if not request.htmx else 200  # type: ignore[attr-defined]
    context: dict[str, Any] = {
        "sale": sale,
        "conversions": conversions_of(buyer=buyer, sale=sale),
        "can_record": can_record,
        "bought": sale.status in ("sold", "returned"),
        "typed": typed,
        "errors": errors,
        "notice": notice,
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "reporting/purchase_conversions.html", context)
    return render(request, "reporting/purchase_conversions_page.html", context, status=status)


@portal_page(side="seller")
def postback_list(request: HttpRequest) -> HttpResponse:
    """Every postback of the seller's campaigns, newest first, with each attempt."""
    seller = request.organization  # type: ignore[attr-defined]
    return render(request, "reporting/postback_list.html", {"postbacks": postbacks_of(seller=seller)})


@require_http_methods(["GET", "POST"])
@portal_page(side="seller")
def campaign_postbacks(request: HttpRequest, public_id: str) -> HttpResponse:
    """A campaign's postback URL (changed by a manager or owner, through the campaign terms' one
    write path) and its latest postbacks."""
    seller = request.organization  # type: ignore[attr-defined]
    campaign = campaign_get(organization=seller, public_id=public_id)
    can_change = role_allows(request.membership, "manager")  # type: ignore[attr-defined]
    typed = campaign.postback_url
    errors: list[str] = []
    saved = False
    if request.method == "POST":
        if not can_change:
            return role_refused_page(request, "manager")
        typed = request.POST.get("postback_url", "").strip()
        try:
            campaign = campaign_update(campaign=campaign, terms={"postback_url": typed})
        except ValidationError as exc:
            errors = [m for ms in exc.message_dict.values() for m in ms]
        else:
            saved, typed = True, campaign.postback_url
    context = {
        "campaign": campaign,
        "postback_url": typed,
        "errors": errors,
        "saved": saved,
        "can_change": can_change,
        "postbacks": postbacks_of(seller=seller, campaign=campaign, limit=20),
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "reporting/campaign_postbacks.html", context)
    return render(request, "reporting/campaign_postbacks_page.html", context, status=422 if errors else 200)
