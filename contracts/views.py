"""Portal pages for buyers' contracts and sellers' campaigns."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from contracts.selectors import campaign_get, campaigns_of, contract_get, contracts_of


def _organization(request: HttpRequest):  # type: ignore[no-untyped-def]
    organization = getattr(request, "organization", None)
    if organization is None:
        raise Http404("No organization.")
    return organization


@login_required
def contract_list(request: HttpRequest) -> HttpResponse:
    organization = _organization(request)
    return render(request, "contracts/contract_list.html", {"contracts": contracts_of(organization=organization)})


@login_required
def contract_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    contract = contract_get(organization=_organization(request), public_id=public_id)
    return render(request, "contracts/contract_detail.html", {"contract": contract})


@login_required
def campaign_list(request: HttpRequest) -> HttpResponse:
    organization = _organization(request)
    return render(request, "contracts/campaign_list.html", {"campaigns": campaigns_of(organization=organization)})


@login_required
def campaign_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    campaign = campaign_get(organization=_organization(request), public_id=public_id)
    return render(request, "contracts/campaign_detail.html", {"campaign": campaign})
