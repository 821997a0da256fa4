"""The filters of a buyer's portal lists (purchases, returns): ``leads.filters.ListFilter`` with
the buyer's own contracts and statuses. The page and its CSV export read the same FilterSet."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet

from accounts.models import Organization
from contracts.models import BuyerContract
from exchange.models import Sale
from exchange.returns.models import Return
from leads.filters import ListFilter, Search, SearchableListFilter


class PurchaseFilter(SearchableListFilter):
    """A buyer's purchases: the day of the sale (``created_at``, when the lead was bought), status,
    one of its contracts, and ``q`` (lead id, sale id, or the consumer's email or phone by hash)."""

    status = django_filters.ChoiceFilter(choices=Sale.Status.choices, empty_label="All statuses")
    contract = django_filters.ModelChoiceFilter(
        queryset=BuyerContract.objects.none(),
        to_field_name="public_id",
        empty_label="All contracts",
        error_messages={"invalid_choice": "No such contract of yours."},
    )

    def __init__(self, data: Any = None, queryset: QuerySet[Any] | None = None, *, organization: Organization) -> None:
        super().__init__(data, queryset, organization=organization)
        self.filters["contract"].queryset = BuyerContract.objects.filter(organization=organization).order_by("name")

    def search(self, queryset: QuerySet[Sale], name: str, value: Search | None) -> QuerySet[Sale]:
        if value is None:
            return queryset
        if value.kind == "lead_id":
            return queryset.filter(lead__public_id=value.value)
        if value.kind == "sale_id":
            return queryset.filter(public_id=value.value)
        # The sale keeps the lead's hashes: the buyer's own rows, no read of the seller's lead.
        return queryset.filter(**{value.kind: value.value})


class ReturnFilter(ListFilter):
    """A buyer's returns: the day asked, and status."""

    status = django_filters.ChoiceFilter(choices=Return.Status.choices, empty_label="All statuses")
