"""The admin's shared pieces: the market-changing admin, read-only history, filters and links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin
from django.db import models
from django.db.models import Model, QuerySet
from django.forms import BaseFormSet, ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.hooks import market_changed
from core.json_document import StrictJSONDecoder


class BookInvalidatingAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """An admin for something the contract book compiles (offers, campaigns, contracts,
    organizations): every write made here, inlines and many-to-many included, tells the book.

    ``save_related`` runs after ``save_model`` inside the same transaction and saves the inline
    formsets and the M2M fields, so invalidating there covers a whole change form.

    Its JSON fields (an offer's fields, a contract's filters, modifiers, schedule and delivery)
    are read by the strict reader: nesting deep enough to exhaust the stack is a form error.
    """

    formfield_overrides = {models.JSONField: {"decoder": StrictJSONDecoder}}

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        super().save_model(request, obj, form, change)
        market_changed()

    def save_related(self, request: HttpRequest, form: ModelForm, formsets: list[BaseFormSet], change: bool) -> None:  # type: ignore[type-arg]
        super().save_related(request, form, formsets, change)
        market_changed()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        market_changed()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().delete_queryset(request, queryset)
        market_changed()


class ReadOnlyAdminMixin:
    """History: shown, never added, changed nor deleted from the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class BuyerFilter(admin.RelatedFieldListFilter):
    """An organization filter that lists buyers only (not every tenant)."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: admin.ModelAdmin) -> Any:  # type: ignore[type-arg]
        return field.get_choices(include_blank=False, limit_choices_to={"is_buyer": True})


class SellerFilter(admin.RelatedFieldListFilter):
    """An organization filter that lists sellers only."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: admin.ModelAdmin) -> Any:  # type: ignore[type-arg]
        return field.get_choices(include_blank=False, limit_choices_to={"is_seller": True})


def when(value: datetime | None) -> str:
    """A compact timestamp for crowded change lists (the admin's time zone)."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def admin_link(obj: Model | None, text: object = None) -> SafeString | str:
    """A link to ``obj``'s admin change page (``—`` for nothing)."""
    if obj is None:
        return "—"
    meta = obj._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj if text is None else text)
