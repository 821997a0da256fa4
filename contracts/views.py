"""Portal pages for buyers' contracts and sellers' campaigns."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.portal import portal_page, role_allows
from contracts.delivery_preview import delivery_preview
from contracts.posting import ENDPOINTS, posting_guide
from contracts.selectors import campaign_get, campaigns_of, contract_get, contracts_of


@portal_page(side="buyer")
def contract_list(request: HttpRequest) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    return render(request, "contracts/contract_list.html", {"contracts": contracts_of(organization=organization)})


@portal_page(side="buyer")
def contract_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    contract = contract_get(organization=request.organization, public_id=public_id)  # type: ignore[attr-defined]
    context = {"contract": contract, "delivery_preview": delivery_preview(contract)}
    return render(request, "contracts/contract_detail.html", context)


@portal_page(side="seller")
def campaign_list(request: HttpRequest) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    return render(request, "contracts/campaign_list.html", {"campaigns": campaigns_of(organization=organization)})


@portal_page(side="seller")
def campaign_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    """The campaign's posting instructions (endpoints, fields, examples generated from the offer's
    schema), its test console and its floor and blocked buyers (both served by the exchange)."""
    campaign = campaign_get(organization=request.organization, public_id=public_id)  # type: ignore[attr-defined]
    guide = posting_guide(campaign=campaign)
    base_url = request.build_absolute_uri("/").rstrip("/")
    examples = [
        {
            "kind": kind,
            "title": title,
            "what": what,
            "endpoint": f"{base_url}{ENDPOINTS[kind]}",
            "json": guide.json(kind),
            "curl": guide.curl(kind, base_url=base_url),
        }
        for kind, title, what in (
            ("ping", "Ping", "Offer the lead without contact details; the answer says what buyers pay."),
            ("post", "Post", "Sell the pinged lead: the whole lead and the consumer's consent, with the ping's id."),
            ("lead", "Full lead", "Ping and post in one call, if you do not ping first."),
        )
    ]
    context = {
        "campaign": campaign,
        "guide": guide,
        "examples": examples,
        "base_url": base_url,
        "can_test": role_allows(request.membership, "manager"),  # type: ignore[attr-defined]
    }
    return render(request, "contracts/campaign_detail.html", context)
