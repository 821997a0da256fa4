"""Portal pages for buyers' contracts and sellers' campaigns."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.portal import portal_page
from contracts.selectors import campaign_get, campaigns_of, contract_get, contracts_of


@portal_page(side="buyer")
def contract_list(request: HttpRequest) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    return render(request, "contracts/contract_list.html", {"contracts": contracts_of(organization=organization)})


@portal_page(side="buyer")
def contract_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    contract = contract_get(organization=request.organization, public_id=public_id)  # type: ignore[attr-defined]
    return render(request, "contracts/contract_detail.html", {"contract": contract})


@portal_page(side="seller")
def campaign_list(request: HttpRequest) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    return render(request, "contracts/campaign_list.html", {"campaigns": campaigns_of(organization=organization)})


@portal_page(side="seller")
def campaign_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    campaign = campaign_get(organization=request.organization, public_id=public_id)  # type: ignore[attr-defined]
    return render(request, "contracts/campaign_detail.html", {"campaign": campaign})
