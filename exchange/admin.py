"""The operator's view of the market: offers (editable) and its history (pings, bids, sales: read-only).

The admin runs under ``market_scope`` for staff (``accounts.middleware``). Money and history are
never edited nor deleted here: services write them, the admin only shows them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.tenancy import market_scope
from contracts.admin import BuyerContractAdmin
from contracts.models import BuyerContract
from core.admin import BookInvalidatingAdmin, BuyerFilter, ReadOnlyAdminMixin, SellerFilter, admin_link, when
from exchange.api.idempotency import IdempotencyRecord
from exchange.models import Bid, DeliveryAttempt, Offer, Ping, Sale
from exchange.returns import admin as returns_admin  # noqa: F401 - registers the returns' admin
from exchange.services.rejects import reject_rates
from leads.admin import LeadAdmin
from leads.models import Lead
from leads.scoring import SIGNAL_LABELS


def bid_place(bid: Bid) -> int:
    """A bid's rank as people count it (1 is the best bid), as the buyer's portal shows it."""
    return bid.rank + 1


@admin.register(Offer)
class OfferAdmin(BookInvalidatingAdmin):
    list_display = ["name", "slug", "status", "distribution", "pricing", "margin_percent", "floor", "ping_timeout_ms"]
    list_filter = ["status", "distribution", "pricing"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("name", "slug", "status")}),
        (
            "Auction",
            {
                "fields": (
                    "distribution",
                    "pricing",
                    "multisell_max",
                    "hybrid_floor",
                    "reauction_cycles",
                    "reauction_delay_seconds",
                )
            },
        ),
        ("Money", {"fields": ("margin_percent", "floor", "max_bid")}),
        ("Limits", {"fields": ("min_score", "bid_ttl_seconds", "ping_timeout_ms")}),
        ("Lead fields", {"fields": ("fields",)}),
    )


class BidInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = Bid
    extra = 0
    can_delete = False
    fields = ["public_id", "place", "contract", "organization", "bid_price", "price", "payout", "status", "ref"]
    readonly_fields = fields  # type: ignore[assignment]
    show_change_link = True

    @admin.display(description="rank")
    def place(self, obj: Bid) -> int:
        return bid_place(obj)


@admin.register(Ping)
class PingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "created",
        "public_id",
        "organization",
        "campaign",
        "offer",
        "status",
        "reason",
        "payout",
        "quality_score",
        "test",
        "latency",
    ]
    list_display_links = ["created", "public_id"]
    list_filter = ["status", "reason", "offer", "test", "source"]
    list_select_related = ["organization", "campaign", "offer"]
    # Exact match: public ids are unique (indexed) and a LIKE over every ping is a table scan.
    search_fields = ["=public_id"]
    search_help_text = "Search by ping id (png_…)."
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [BidInline]
    fieldsets = (
        (None, {"fields": ("public_id", "created_at", "organization", "campaign", "offer", "source", "test")}),
        ("Answer", {"fields": ("status", "reason", "payout", "quality_score", "latency", "expires_at", "posted_at")}),
        ("Auction", {"fields": ("quality_table", "waterfall_table", "posted_lead_link", "routing_table")}),
        ("Request", {"fields": ("lead", "email_hash", "phone_hash", "tracking", "consent", "fingerprint")}),
    )
    readonly_fields = ["latency", "quality_table", "waterfall_table", "posted_lead_link", "routing_table"]

    @admin.display(description="quality signals")
    def quality_table(self, obj: Ping) -> SafeString | str:
        """What the quality score is made of (leads/scoring.py; docs/auction.md "Quality score"):
        the ping's signals, then the posted lead's, each with its points."""
        with market_scope():
            lead = Lead.objects.filter(ping=obj).only("quality_score", "quality_signals").first()
        signals = dict(obj.quality_signals or {})
        rows = [(SIGNAL_LABELS.get(k, k), f"{v:+d}" if k != "base" else str(v)) for k, v in signals.items()]
        if lead is not None:
            rows += [
                (f"{SIGNAL_LABELS.get(k, k)} (post)", f"{v:+d}")
                for k, v in (lead.quality_signals or {}).items()
                if k not in signals
            ]
        if not rows:
            return "No signals were recorded (a ping from before the quality signals)."
        body = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows)
        total = f"ping {obj.quality_score}" + (f", lead {lead.quality_score}" if lead is not None else "")
        return format_html(
            '<table class="waterfall"><thead><tr><th>Signal</th><th>Points</th></tr></thead><tbody>{}</tbody>'
            "<tfoot><tr><th>Score</th><th>{}</th></tr></tfoot></table>",
            body,
            total,
        )

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Ping) -> str:
        return when(obj.created_at)

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, obj: Ping) -> str:
        return f"{obj.latency_ms:.1f} ms"

    @admin.display(description="lead")
    def posted_lead_link(self, obj: Ping) -> SafeString | str:
        with market_scope():
            lead = Lead.objects.filter(ping=obj).first()
        return admin_link(lead) if lead is not None else "not posted"

    @admin.display(description="routing after the post")
    def routing_table(self, obj: Ping) -> SafeString | str:
        """The posted lead's sales in order (a buyer that rejects hands the lead to the next bid)
        with each one's last delivery attempt: what the waterfall's ``won`` became."""
        with market_scope():
            sales = list(
                Sale.objects.filter(lead__ping=obj)
                .select_related("organization", "contract")
                .order_by("created_at", "pk")
            )
            attempts = {
                a.sale_id: a for a in DeliveryAttempt.objects.filter(sale__in=sales).order_by("created_at", "pk")
            }  # the last attempt of each sale wins
        if not sales:
            return "Not sold to anyone (yet)."
        rows = []
        for sale in sales:
            attempt = attempts.get(sale.pk)
            rows.append(
                (
                    admin_link(sale, sale.public_id),
                    admin_link(sale.organization),
                    sale.contract.name,
                    f"{sale.price}",
                    sale.get_status_display(),
                    (
                        f"{attempt.get_outcome_display()}"
                        + (f" ({attempt.status_code})" if attempt.status_code else "")
                        + (f": {attempt.reason}" if attempt.reason else "")
                    )
                    if attempt
                    else "no delivery attempt",
                )
            )
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            '<table class="waterfall"><thead><tr><th>Sale</th><th>Buyer</th><th>Contract</th><th>Price</th>'
            "<th>Status</th><th>Delivery</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    @admin.display(description="waterfall")
    def waterfall_table(self, obj: Ping) -> SafeString | str:
        """Every contract the auction evaluated: its reason, price and latency, buyer named."""
        steps = [s for s in obj.waterfall or [] if isinstance(s, dict)]
        if not steps:
            return "No contract was evaluated."
        with market_scope():
            contracts = {
                c.public_id: c
                for c in BuyerContract.objects.filter(public_id__in=[s.get("contract") for s in steps]).select_related(
                    "organization"
                )
            }
        rows: list[tuple[object, ...]] = []
        for step in steps:
            if "contract" not in step:  # contracts the offer's index left out, counted by reason
                count = step.get("contracts")
                label = f"{count} other contract{'' if count == 1 else 's'} (not looked at)"
                rows.append((label, "—", step.get("reason") or "—", "—", "—"))
                continue
            contract = contracts.get(str(step.get("contract")))
            latency = step.get("latency_ms")
            rows.append(
                (
                    admin_link(contract, f"{contract.name} ({contract.public_id})")
                    if contract
                    else step.get("contract"),
                    admin_link(contract.organization) if contract else "—",
                    step.get("reason") or "—",
                    f"{step['price']}" if step.get("price") is not None else "—",
                    f"{latency:.1f} ms" if isinstance(latency, int | float) else "—",
                )
            )
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            '<table class="waterfall"><thead><tr><th>Contract</th><th>Buyer</th><th>Reason</th>'
            "<th>Price</th><th>Latency</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )


@admin.register(Bid)
class BidAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "created",
        "public_id",
        "ping",
        "organization",
        "contract",
        "place",
        "bid_price",
        "price",
        "payout",
        "status",
    ]
    list_filter = ["status", ("organization", BuyerFilter)]
    list_display_links = ["created", "public_id"]
    list_select_related = ["ping", "organization", "contract"]
    search_fields = ["=public_id", "=ping__public_id"]
    search_help_text = "Search by bid id (bid_…) or ping id (png_…)."
    show_full_result_count = False
    exclude = ["rank"]
    readonly_fields = ["place"]

    @admin.display(description="rank", ordering="rank")
    def place(self, obj: Bid) -> int:
        return bid_place(obj)

    ordering = ["-created_at", "-pk"]

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Bid) -> str:
        return when(obj.created_at)


class DeliveryAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["created_at", "url", "outcome", "status_code", "reason", "latency"]
    readonly_fields = fields  # type: ignore[assignment]
    show_change_link = True

    @admin.display(description="latency")
    def latency(self, obj: DeliveryAttempt) -> str:
        return f"{obj.latency_ms:.0f} ms"


@admin.register(Sale)
class SaleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "created",
        "public_id",
        "lead",
        "organization",
        "seller",
        "contract",
        "offer",
        "status",
        "price",
        "payout",
        "margin",
        "test",
        "direct",
    ]
    list_filter = ["status", "offer", ("organization", BuyerFilter), ("seller", SellerFilter), "test", "direct"]
    list_display_links = ["created", "public_id"]
    list_select_related = ["lead", "organization", "seller", "contract", "offer"]
    search_fields = ["=public_id", "=lead__public_id"]
    search_help_text = "Search by sale id (sal_…) or lead id (led_…)."
    date_hierarchy = "created_at"
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("public_id", "created_at", "sold_at", "status", "release_reason", "test", "direct")}),
        ("Parties", {"fields": ("organization", "seller", "contract", "campaign", "offer", "lead", "bid")}),
        ("Money", {"fields": ("price", "payout", "margin")}),
        ("Dedup and caps", {"fields": ("email_hash", "phone_hash", "cap_keys")}),
    )
    inlines = [DeliveryAttemptInline]

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Sale) -> str:
        return when(obj.created_at)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["created_at", "sale", "organization", "contract", "outcome", "status_code", "reason", "latency"]
    list_filter = ["outcome", ("organization", BuyerFilter)]
    list_select_related = ["sale", "organization", "contract"]
    search_fields = ["=sale__public_id", "=sale__lead__public_id"]
    search_help_text = "Search by sale id (sal_…) or lead id (led_…)."
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = ["created_at", "sale", "organization", "contract", "url", "outcome", "status_code", "reason"]
    fields += ["latency", "request", "response"]
    readonly_fields = ["latency"]

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, obj: DeliveryAttempt) -> str:
        return f"{obj.latency_ms:.0f} ms"


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["created_at", "key", "api_key", "organization", "state", "response_status", "completed_at"]
    list_filter = ["state", "response_status"]
    list_select_related = ["api_key__organization"]
    search_fields = ["=key"]
    search_help_text = "Search by the exact Idempotency-Key."
    date_hierarchy = "created_at"

    @admin.display(description="organization", ordering="api_key__organization__name")
    def organization(self, obj: IdempotencyRecord) -> str:
        return obj.api_key.organization.name


admin.site.unregister(BuyerContract)


@admin.register(BuyerContract)
class ContractDeliveryAdmin(BuyerContractAdmin):
    """The contract with what the exchange knows of it: its buyer's delivery reject rate."""

    list_display = [*BuyerContractAdmin.list_display, "delivery_rejects"]
    readonly_fields = [*BuyerContractAdmin.readonly_fields, "delivery_rejects"]
    fieldsets = tuple(  # type: ignore[assignment]
        (name, {**options, "fields": (*options["fields"], "delivery_rejects")} if name == "Hold" else options)
        for name, options in BuyerContractAdmin.fieldsets
    )

    @admin.display(description=f"Rejects ({settings.GAVEL_REJECT_RATE_WINDOW_HOURS} h)")
    def delivery_rejects(self, contract: BuyerContract) -> str:
        rate = getattr(contract, "reject_rate", None)
        if rate is None and contract.pk is not None:
            rate = reject_rates(contract_ids=[contract.pk], now=timezone.now()).get(contract.pk)
        if rate is None:
            return "no deliveries"
        return f"{rate.percent:.0f}% ({rate.rejected} of {rate.deliveries})"

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        # Every shown contract's reject rate in one query, not one per row.
        changelist = super().get_changelist_instance(request)
        rates = reject_rates(contract_ids=[c.pk for c in changelist.result_list], now=timezone.now())
        for contract in changelist.result_list:
            contract.reject_rate = rates.get(contract.pk)
        return changelist


class SaleInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = Sale
    fk_name = "lead"
    extra = 0
    can_delete = False
    fields = ["public_id", "organization", "contract", "status", "price", "payout", "margin", "sold_at"]
    readonly_fields = fields  # type: ignore[assignment]
    show_change_link = True


admin.site.unregister(Lead)


@admin.register(Lead)
class LeadSalesAdmin(LeadAdmin):
    """The lead with its sales."""

    inlines = [*LeadAdmin.inlines, SaleInline]
