"""The filters of the portal's lists (a seller's leads here; a buyer's purchases and returns build
on :class:`ListFilter` in ``exchange.portal_filters``), as django-filter FilterSets: the page and
its CSV export read the same FilterSet, so they always show the same rows.

``from`` and ``to`` are days in the organization's time zone, both included. ``q`` finds a lead
id (``led_…``), a sale id (``sal_…``), an email or a phone number; an email or phone is matched by
the hash of its normalized form (``core.pii``), never by its text, so `` John@Example.COM ``
finds john@example.com. A value that cannot be read is a form error shown on the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from accounts.models import Organization
from contracts.models import Campaign
from core.pii import PiiInvalid, email_hash, phone_hash
from leads.models import Lead

# ISO dates: what <input type="date"> sends (and no guessing between 11/12 and 12/11).
DATE_FORMATS = ["%Y-%m-%d"]
SEARCH_HELP = "A lead id (led_…), a sale id (sal_…), an email address or a phone number."


@dataclass(frozen=True)
class Search:
    """What ``q`` asked for: ``kind`` is lead_id, sale_id, email_hash or phone_hash."""

    kind: str
    value: str


class SearchField(forms.CharField):
    def clean(self, value: Any) -> Search | None:  # type: ignore[override]
        text = (super().clean(value) or "").strip()
        if not text:
            return None
        lowered = text.lower()
        if lowered.startswith("led_"):
            return Search("lead_id", lowered)
        if lowered.startswith("sal_"):
            return Search("sale_id", lowered)
        try:
            if "@" in text:
                return Search("email_hash", email_hash(text))
            return Search("phone_hash", phone_hash(text))
        except PiiInvalid as exc:
            raise forms.ValidationError(f"{exc} Search for {SEARCH_HELP[0].lower()}{SEARCH_HELP[1:]}") from exc


class SearchFilter(django_filters.Filter):
    field_class = SearchField


class ListFilterForm(forms.Form):
    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        assert cleaned is not None
        start, end = cleaned.get("from"), cleaned.get("to")
        if start and end and start > end:
            self.add_error("to", "The end date must be on or after the start date.")
        return cleaned


class ListFilter(django_filters.FilterSet):
    """A portal list's FilterSet: the organization's own rows, a date range on ``date_field`` in
    its time zone, and whatever the subclass adds. Build it with ``organization=``."""

    date_field = "created_at"

    class Meta:
        form = ListFilterForm

    def __init__(self, data: Any = None, queryset: QuerySet[Any] | None = None, *, organization: Organization) -> None:
        self.organization = organization
        super().__init__(data, queryset)

    @classmethod
    def get_filters(cls) -> dict[str, django_filters.Filter]:
        filters: dict[str, django_filters.Filter] = super().get_filters()
        # "from" is a Python keyword: it cannot be a class attribute.
        for name, method, label in (("from", "on_or_after", "From"), ("to", "on_or_before", "To")):
            filters[name] = django_filters.DateFilter(
                method=method,
                input_formats=DATE_FORMATS,
                label=label,
                widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
            )
        return dict(sorted(filters.items(), key=lambda item: item[0] not in ("from", "to")))

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=self.organization.tz)

    def on_or_after(self, queryset: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
        return queryset.filter(**{f"{self.date_field}__gte": self._midnight(value)})

    def on_or_before(self, queryset: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
        return queryset.filter(**{f"{self.date_field}__lt": self._midnight(value + timedelta(days=1))})

    @property
    def active(self) -> bool:
        """Whether any filter is set (the empty state then says so and offers to clear them)."""
        return any(self.data.get(name) for name in self.filters)


class SearchableListFilter(ListFilter):
    """A list with ``q``: a lead id, a sale id, or a consumer's email or phone (matched by hash);
    the subclass says what each finds in its rows (:meth:`search`)."""

    q = SearchFilter(
        method="search",
        label="Search",
        help_text=SEARCH_HELP,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "led_…, sal_…, email or phone", "size": 28}),
    )

    def search(self, queryset: QuerySet[Any], name: str, value: Search | None) -> QuerySet[Any]:
        raise NotImplementedError


class LeadFilter(SearchableListFilter):
    """A seller's leads: date received, status, one of its campaigns, and ``q``."""

    status = django_filters.ChoiceFilter(choices=Lead.Status.choices, empty_label="All statuses")
    campaign = django_filters.ModelChoiceFilter(
        queryset=Campaign.objects.none(),
        to_field_name="public_id",
        empty_label="All campaigns",
        error_messages={"invalid_choice": "No such campaign of yours."},
    )

    def __init__(self, data: Any = None, queryset: QuerySet[Any] | None = None, *, organization: Organization) -> None:
        super().__init__(data, queryset, organization=organization)
        self.filters["campaign"].queryset = Campaign.objects.filter(organization=organization).order_by("name")

    def search(self, queryset: QuerySet[Lead], name: str, value: Search | None) -> QuerySet[Lead]:
        if value is None:
            return queryset
        if value.kind == "lead_id":
            return queryset.filter(public_id=value.value)
        if value.kind == "sale_id":
            # A sale id the seller saw on its lead's page; the sale row is the buyer's, the filter
            # still runs on the seller's own leads only.
            return queryset.filter(sales__public_id=value.value)
        return queryset.filter(Q(**{value.kind: value.value}))
