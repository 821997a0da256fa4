from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import ManyToManyField, QuerySet
from django.http import HttpRequest

from accounts.models import Organization
from contracts.forms import BuyerContractForm
from contracts.models import BuyerContract, Campaign, CapCounter
from exchange.admin import BookInvalidatingAdmin


class CounterpartiesAdmin(BookInvalidatingAdmin):
    """A blocked-organization chooser lists only the organizations that side can be: sellers for
    a contract's blocked sellers, buyers for a campaign's blocked buyers."""

    def formfield_for_manytomany(self, db_field: ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any) -> Any:
        roles = {"blocked_sellers": {"is_seller": True}, "blocked_buyers": {"is_buyer": True}}
        if db_field.name in roles:
            kwargs["queryset"] = Organization.objects.filter(**roles[db_field.name]).order_by("name")
        return super().formfield_for_manytomany(db_field, request, **kwargs)


@admin.register(Campaign)
class CampaignAdmin(CounterpartiesAdmin):
    list_display = ["name", "public_id", "organization", "offer", "status", "margin_percent", "floor", "created_at"]
    list_filter = ["status", "offer", "organization"]
    search_fields = ["name", "slug", "public_id", "organization__name"]
    readonly_fields = ["public_id", "source_token", "created_at", "updated_at"]
    autocomplete_fields = ["organization", "direct_contract"]
    filter_horizontal = ["blocked_buyers"]
    fieldsets = (
        (None, {"fields": ("public_id", "name", "slug", "organization", "offer", "status")}),
        ("Payout", {"fields": ("margin_percent", "floor")}),
        ("Routing", {"fields": ("blocked_buyers", "direct_contract", "direct_price", "direct_share_percent")}),
        ("Integration", {"fields": ("webhook_url", "source_token", "created_at", "updated_at")}),
    )


class ContractsLockedOnSave:
    """A save reads the contracts it changes locked (a POST, inside the admin's transaction): a
    pause the circuit breaker makes meanwhile then waits for the save and sees it, instead of
    being overwritten by a copy read just before (``BuyerContractForm`` keeps it)."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[BuyerContract]:
        queryset: QuerySet[BuyerContract] = super().get_queryset(request)  # type: ignore[misc]
        if request.method == "POST" and transaction.get_connection().in_atomic_block:
            queryset = queryset.select_for_update(of=("self",))
        return queryset


@admin.register(BuyerContract)
class BuyerContractAdmin(ContractsLockedOnSave, CounterpartiesAdmin):
    form = BuyerContractForm
    list_display = ["name", "public_id", "organization", "offer", "status", "price", "rtb_url", "cap_day", "priority"]
    list_filter = ["status", "offer", "organization"]
    search_fields = ["name", "slug", "public_id", "organization__name"]
    readonly_fields = ["public_id", "breaker_retry_at", "breaker_trips", "created_at", "updated_at"]
    autocomplete_fields = ["organization"]
    filter_horizontal = ["blocked_sellers"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "public_id",
                    "name",
                    "slug",
                    "organization",
                    "offer",
                    "status",
                    "paused_reason",
                    "status_shown",
                    "paused_reason_shown",
                )
            },
        ),
        (
            "Circuit breaker",
            {
                "fields": ("breaker_retry_at", "breaker_trips"),
                "description": "Set by the RTB circuit breaker. Changing the status or the paused reason "
                "hands the contract back to people: it is then never retried automatically.",
            },
        ),
        ("Price", {"fields": ("price", "modifiers", "rtb_url", "rtb_timeout_ms", "max_price")}),
        ("Targeting", {"fields": ("filters", "schedule", "min_score", "dedup_days", "blocked_sellers")}),
        ("Caps (leads)", {"fields": ("cap_day", "cap_week", "cap_month", "cap_total")}),
        ("Budget (money)", {"fields": ("budget_day", "budget_week", "budget_month", "budget_total")}),
        ("Ranking", {"fields": ("priority", "weight")}),
        ("Delivery and returns", {"fields": ("delivery", "return_window_hours", "created_at", "updated_at")}),
    )


@admin.register(CapCounter)
class CapCounterAdmin(admin.ModelAdmin):
    list_display = ["contract", "organization", "period", "period_key", "count", "spend"]
    list_filter = ["period", "organization"]
    search_fields = ["contract__name", "period_key"]
    readonly_fields = ["organization", "contract", "period", "period_key", "count", "spend"]

    # Counters are the caps' memory: deleting or editing one would oversell a cap.
    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
