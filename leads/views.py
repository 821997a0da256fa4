"""Portal pages for sellers: their leads, and one lead with its sales and consent.

Pages run in the seller's tenant scope (``accounts.middleware``) and every read below filters by
the seller explicitly as well. A seller sees its own lead data without the PII, what each sale
paid it, and never which buyer bought.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render

from accounts.exports import csv_stream
from accounts.models import Organization
from accounts.portal import portal_page
from contracts.models import Campaign
from contracts.selectors import campaigns_of
from core.money import currency_code
from leads.filters import LeadFilter
from leads.models import Lead
from leads.reasons import reason_words

PAGE_SIZE = 50


def leads_of(*, seller: Organization) -> QuerySet[Lead]:
    """The seller's leads, newest first (``LeadFilter`` narrows them)."""
    return Lead.objects.filter(organization=seller).select_related("campaign").order_by("-created_at", "-pk")


def lead_filter(request: HttpRequest, seller: Organization) -> LeadFilter:
    """The list's filters read from the query string; the page and its CSV use this one."""
    return LeadFilter(request.GET, leads_of(seller=seller), organization=seller)


def lead_data_columns(campaigns: list[Campaign]) -> list[str]:
    """The lead-data columns of the seller's CSV: its offers' fields that are not PII (the PII went
    to the buyer; the lead's page does not show it either), in the offers' order."""
    names: list[str] = []
    for campaign in campaigns:
        for field in campaign.offer.fields:
            if isinstance(field, dict) and not field.get("pii") and field.get("name") not in names:
                names.append(str(field.get("name")))
    return names


def ordered_fields(data: dict[str, Any], fields: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """``data`` as (name, value) pairs in the offer's field order, unknown names last."""
    order = [f.get("name") for f in fields if isinstance(f, dict)]
    known = [(name, data[name]) for name in order if name in data]
    return known + sorted((k, v) for k, v in data.items() if k not in order)


@portal_page(side="seller")
def lead_list(request: HttpRequest) -> HttpResponse:
    seller = request.organization  # type: ignore[attr-defined]
    leads = lead_filter(request, seller)
    valid = leads.is_valid()
    page = Paginator(leads.qs if valid else leads_of(seller=seller).none(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "leads/lead_list.html",
        # The campaigns are read only by the empty state (a lazy query): where to post leads.
        {"page": page, "filter": leads, "campaigns": campaigns_of(organization=seller)},
        status=200 if valid else 400,
    )


@portal_page(side="seller")
def lead_export(request: HttpRequest) -> HttpResponseBase:
    """The filtered list as CSV, streamed: the page's filters, every matching lead (not one page)."""
    seller = request.organization  # type: ignore[attr-defined]
    leads = lead_filter(request, seller)
    if not leads.is_valid():
        return lead_list(request)
    tz = seller.tz
    columns = lead_data_columns(list(campaigns_of(organization=seller)))

    def rows() -> Iterator[list[Any]]:
        for lead in leads.qs.iterator(chunk_size=500):
            yield [
                lead.public_id,
                lead.created_at.astimezone(tz).isoformat(timespec="seconds"),
                lead.campaign.name,
                lead.campaign.public_id,
                lead.get_status_display(),
                reason_words(lead.reason, "lead") if lead.reason else "",
                lead.payout,
                lead.quality_score,
                "yes" if lead.test else "no",
                *[lead.data.get(name) for name in columns],
            ]

    return csv_stream(
        organization=seller,
        filename=f"leads-{seller.slug}.csv",
        header=[
            "lead_id",
            f"received ({tz})",
            "campaign",
            "campaign_id",
            "status",
            "reason",
            f"payout ({currency_code()})",
            "quality_score",
            "test",
            *columns,
        ],
        rows=rows,
    )
