"""The query filters of the buyers' list endpoints, as django-filter FilterSets.

A filter the API does not know is refused (422 naming it) rather than ignored, so a typo such as
``?form=`` is not a silent no-op; a bad value is refused the same way. The error format is the
API's one (``exchange.api.errors``): the backend raises DRF's ``ValidationError`` from the
FilterSet's errors.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.forms.utils import ErrorDict, ErrorList
from rest_framework.request import Request

from contracts.models import BuyerContract
from exchange.models import Offer, Sale

PURCHASE_STATUSES = ["sold", "returned"]
# The cursor pagination's own parameters: known to the endpoint, not filters.
PAGINATION = frozenset({"cursor", "limit"})
# ISO dates only: Django's default input formats would also take "11/22/2026".
DATE_FORMATS = ["%Y-%m-%d"]


def _contracts_of_buyer(request: Request | None) -> QuerySet[BuyerContract]:
    if request is None:  # the schema generator builds the FilterSet without a request
        return BuyerContract.objects.none()
    return BuyerContract.objects.filter(organization=request.auth.organization)  # type: ignore[union-attr]


class StrictFilterSet(django_filters.FilterSet):
    """A FilterSet that refuses the parameters it does not know (pagination's aside)."""

    def unknown_parameters(self) -> list[str]:
        return sorted(set(self.data) - set(self.filters) - PAGINATION)

    def is_valid(self) -> bool:
        return not self.unknown_parameters() and super().is_valid()

    @property
    def errors(self) -> ErrorDict:
        unknown = self.unknown_parameters()
        if unknown:
            # Named alone: the values of a query with a misspelt parameter are not worth judging.
            return ErrorDict({key: ErrorList(["Unknown filter."]) for key in unknown})
        return self.form.errors  # type: ignore[no-any-return]


class PurchaseFilterForm(forms.Form):
    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        assert cleaned is not None
        start, end = cleaned.get("from"), cleaned.get("to")
        if start and end and start > end:
            self.add_error("to", "Must be on or after 'from'.")
        return cleaned


class PurchaseFilter(StrictFilterSet):
    """The query of ``GET /purchases``. ``from`` and ``to`` are days in the buyer's time zone, both
    included, on the sale's ``sold_at``; an offer or contract the buyer cannot name (another
    buyer's contract included) is refused."""

    offer = django_filters.ModelChoiceFilter(
        queryset=Offer.objects.all(),
        to_field_name="slug",
        error_messages={"invalid_choice": "No such offer."},
        help_text="An offer's slug.",
    )
    contract = django_filters.ModelChoiceFilter(
        queryset=_contracts_of_buyer,
        to_field_name="public_id",
        error_messages={"invalid_choice": "No such contract of yours."},
        help_text="One of your contracts, `ctr_…`.",
    )
    status = django_filters.ChoiceFilter(choices=[(s, s) for s in PURCHASE_STATUSES])

    class Meta:
        form = PurchaseFilterForm

    @classmethod
    def get_filters(cls) -> dict[str, django_filters.Filter]:
        filters: dict[str, django_filters.Filter] = super().get_filters()
        # "from" is a Python keyword: it cannot be a class attribute.
        filters["from"] = django_filters.DateFilter(
            method="sold_from", input_formats=DATE_FORMATS, help_text="Sold on or after this day (your time zone)."
        )
        filters["to"] = django_filters.DateFilter(
            method="sold_to", input_formats=DATE_FORMATS, help_text="Sold on or before this day (your time zone)."
        )
        return filters

    def _day_start(self, day: date) -> datetime:
        tz = self.request.auth.organization.tz
        return datetime.combine(day, time.min, tzinfo=tz)

    def sold_from(self, queryset: QuerySet[Sale], name: str, value: date) -> QuerySet[Sale]:
        return queryset.filter(sold_at__gte=self._day_start(value))

    def sold_to(self, queryset: QuerySet[Sale], name: str, value: date) -> QuerySet[Sale]:
        return queryset.filter(sold_at__lt=self._day_start(value + timedelta(days=1)))
