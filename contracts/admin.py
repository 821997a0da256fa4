from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import ManyToManyField
from django.forms import ModelForm
from django.http import HttpRequest

from accounts.admin import OrganizationAdmin
from accounts.models import Organization
from contracts.forms import (
    BuyerContractForm,
    CampaignForm,
    CampaignInlineFormSet,
    ContractInlineFormSet,
    campaign_form_save,
    contract_form_save,
)
from contracts.models import BuyerContract, Campaign, CapCounter
from core.admin import BookInvalidatingAdmin


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
    form = CampaignForm
    list_display = ["name", "public_id", "organization", "offer", "status", "margin_percent", "floor", "created_at"]
    list_filter = ["status", "offer", "organization"]
    search_fields = ["name", "slug", "public_id", "organization__name"]
    readonly_fields = ["public_id", "source_token", "created_at", "updated_at"]
    autocomplete_fields = ["organization", "direct_contract"]
    filter_horizontal = ["blocked_buyers"]
    fieldsets = (
        (None, {"fields": ("public_id", "name", "slug", "organization", "offer", "status")}),
        ("Payout", {"fields": ("margin_percent", "floor", "payout_fixed")}),
        ("Routing", {"fields": ("blocked_buyers", "direct_contract", "direct_price", "direct_share_percent")}),
        ("Integration", {"fields": ("webhook_url", "source_token", "created_at", "updated_at")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A campaign stays with its seller, its offer and its slug (its pings and leads refer to them).
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "organization", "offer", "slug"] if obj is not None else fields

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        # The terms' one write path (contracts.services), as the market file's.
        obj.pk = campaign_form_save(form, obj, change=change).pk  # type: ignore[arg-type]


@admin.register(BuyerContract)
class BuyerContractAdmin(CounterpartiesAdmin):
    form = BuyerContractForm
    list_display = [
        "name",
        "organization",
        "offer",
        "status",
        "hold",
        "bid",
        "cap_day",
        "priority",
    ]
    list_filter = ["status", "hold", "offer", "organization"]
    search_fields = ["name", "slug", "public_id", "organization__name"]
    readonly_fields = [
        "public_id",
        "breaker_retry_at",
        "breaker_trips",
        "created_at",
        "updated_at",
    ]
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
                )
            },
        ),
        (
            "Hold",
            {
                "fields": ("hold", "hold_reason", "breaker_retry_at", "breaker_trips"),
                "description": "The exchange's hold, apart from the buyer's status: a held contract does not "
                "bid, and no buyer action lifts a hold. The circuit breaker holds a failing RTB contract until "
                "its retry time; holding or releasing the contract here takes it out of the breaker's hands.",
            },
        ),
        ("Price", {"fields": ("price", "modifiers", "rtb_url", "rtb_timeout_ms", "max_price")}),
        ("Targeting", {"fields": ("filters", "schedule", "min_score", "dedup_days", "blocked_sellers")}),
        ("Caps (leads)", {"fields": ("cap_day", "cap_week", "cap_month", "cap_total")}),
        ("Budget (money)", {"fields": ("budget_day", "budget_week", "budget_month", "budget_total")}),
        ("Ranking", {"fields": ("priority", "weight")}),
        ("Delivery and returns", {"fields": ("delivery", "return_window_hours", "created_at", "updated_at")}),
    )

    @admin.display(description="Bid", ordering="price")
    def bid(self, contract: BuyerContract) -> str:
        return "RTB" if contract.rtb_url else f"{contract.price}"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A contract stays with its buyer, its offer and its slug (its counters and sales refer to them).
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "organization", "offer", "slug"] if obj is not None else fields

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        # The terms' one write path (contracts.services), as the buyer API's and the market file's.
        obj.pk = contract_form_save(form, obj, change=change).pk  # type: ignore[arg-type]


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


class ContractInline(admin.TabularInline):
    model = BuyerContract
    form = BuyerContractForm
    formset = ContractInlineFormSet
    fk_name = "organization"
    extra = 0
    fields = ["name", "offer", "status", "hold", "price", "rtb_url", "cap_day", "priority"]
    readonly_fields = ["offer"]
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a new contract is made on its own page, with all its terms


class CampaignInline(admin.TabularInline):
    model = Campaign
    form = CampaignForm
    formset = CampaignInlineFormSet
    fk_name = "organization"
    extra = 0
    fields = ["name", "offer", "status", "margin_percent", "floor", "payout_fixed"]
    readonly_fields = ["offer"]
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a new campaign is made on its own page, with all its terms


admin.site.unregister(Organization)


@admin.register(Organization)
class OrganizationTermsAdmin(OrganizationAdmin):
    """The organization with its terms of trade: its contracts and campaigns."""

    inlines = [*OrganizationAdmin.inlines, ContractInline, CampaignInline]
