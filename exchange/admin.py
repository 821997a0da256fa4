from __future__ import annotations

from django.contrib import admin

from exchange.models import Offer


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "status", "distribution", "pricing", "margin_percent", "floor", "ping_timeout_ms"]
    list_filter = ["status", "distribution", "pricing"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("name", "slug", "status")}),
        ("Auction", {"fields": ("distribution", "pricing", "multisell_max", "hybrid_floor", "reauction_cycles")}),
        ("Money", {"fields": ("margin_percent", "floor")}),
        ("Limits", {"fields": ("min_score", "bid_ttl_seconds", "ping_timeout_ms")}),
        ("Lead fields", {"fields": ("fields",)}),
    )
