"""Portal pages for sellers: their leads, and one lead with its sales and consent.

Pages run in the seller's tenant scope (``accounts.middleware``) and every read below filters by
the seller explicitly as well. A seller sees its own lead data without the PII, what each sale
paid it, and never which buyer bought.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import Organization
from contracts.models import Campaign
from contracts.selectors import campaigns_of
from leads.models import Lead

PAGE_SIZE = 50


def seller_of(request: HttpRequest) -> Organization:
    """The current organization if it sells; anything else is answered as a missing page."""
    organization: Organization | None = getattr(request, "organization", None)
    if organization is None or not organization.is_seller:
        raise Http404("No such page.")
    return organization


def leads_of(*, seller: Organization, status: str = "", campaign: Campaign | None = None) -> QuerySet[Lead]:
    """The seller's leads, newest first, optionally of one status and one of its campaigns."""
    leads = Lead.objects.filter(organization=seller).select_related("campaign").order_by("-created_at", "-pk")
    if status:
        leads = leads.filter(status=status)
    if campaign is not None:
        leads = leads.filter(campaign=campaign)
    return leads


def ordered_fields(data: dict[str, Any], fields: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """``data`` as (name, value) pairs in the offer's field order, unknown names last."""
    order = [f.get("name") for f in fields if isinstance(f, dict)]
    known = [(name, data[name]) for name in order if name in data]
    return known + sorted((k, v) for k, v in data.items() if k not in order)


@login_required
def lead_list(request: HttpRequest) -> HttpResponse:
    seller = seller_of(request)
    campaigns = list(campaigns_of(organization=seller))
    status = request.GET.get("status", "")
    if status not in Lead.Status.values:
        status = ""
    campaign = next((c for c in campaigns if c.public_id == request.GET.get("campaign")), None)
    page = Paginator(leads_of(seller=seller, status=status, campaign=campaign), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "leads/lead_list.html",
        {
            "page": page,
            "campaigns": campaigns,
            "statuses": Lead.Status.choices,
            "status": status,
            "campaign": campaign,
        },
    )
