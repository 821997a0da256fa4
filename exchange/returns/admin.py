"""The operator's returns: decide requests (approve / deny actions), set buyers' auto-approve policies.

A return is history once asked: its change page is read-only, and decisions go through
:func:`exchange.returns.services.return_decide` (refund, claw-back and events in one transaction), never
through a form that edits the row.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.safestring import SafeString

from core.admin import BuyerFilter, ReadOnlyAdminMixin, SellerFilter, admin_link, when
from exchange.returns.models import Return, ReturnPolicy
from exchange.returns.selectors import AUTO_APPROVE_PERIOD, return_rate
from exchange.returns.services import ReturnAlreadyDecided, ReturnError, return_decide


class DecisionForm(ActionForm):
    """The action bar with a note: the decision note the buyer reads in ``return.decided``."""

    note = forms.CharField(required=False, max_length=500, label="Decision note")


def _rate_30_days(**kwargs: Any) -> str:
    since = timezone.now() - AUTO_APPROVE_PERIOD
    return f"{return_rate(since=since, **kwargs)} %"


@admin.register(Return)
class ReturnAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "created",
        "public_id",
        "sale_link",
        "organization",
        "seller",
        "reason",
        "status",
        "auto",
        "price",
        "decided",
    ]
    list_display_links = ["created", "public_id"]
    list_filter = ["status", "reason", ("organization", BuyerFilter), ("seller", SellerFilter), "auto"]
    list_select_related = ["sale", "organization", "seller"]
    search_fields = ["=public_id", "=sale__public_id", "=sale__lead__public_id"]
    search_help_text = "Search by return id (ret_…), sale id (sal_…) or lead id (led_…)."
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-pk"]
    action_form = DecisionForm
    actions = ["approve_selected", "deny_selected"]
    fieldsets = (
        (None, {"fields": ("public_id", "created_at", "status", "auto", "reason", "note", "requested_by")}),
        ("Decision", {"fields": ("decided_at", "decided_by", "decision_note", "ledger_transaction_link")}),
        ("Sale", {"fields": ("sale_link", "organization", "seller", "price", "payout", "margin", "sold_at")}),
        ("Return rates (30 days)", {"fields": ("buyer_rate", "campaign_rate")}),
    )
    readonly_fields = [
        "sale_link",
        "price",
        "payout",
        "margin",
        "sold_at",
        "buyer_rate",
        "campaign_rate",
        "ledger_transaction_link",
    ]

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_return")

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Return) -> str:
        return when(obj.created_at)

    @admin.display(description="decided", ordering="decided_at")
    def decided(self, obj: Return) -> str:
        return when(obj.decided_at)

    @admin.display(description="sale")
    def sale_link(self, obj: Return) -> SafeString | str:
        return admin_link(obj.sale)

    @admin.display(description="price (refund)")
    def price(self, obj: Return) -> str:
        return f"{obj.sale.price}"

    @admin.display(description="payout (claw-back)")
    def payout(self, obj: Return) -> str:
        return f"{obj.sale.payout}"

    @admin.display(description="margin")
    def margin(self, obj: Return) -> str:
        return f"{obj.sale.margin}"

    @admin.display(description="sold")
    def sold_at(self, obj: Return) -> str:
        return when(obj.sale.sold_at)

    @admin.display(description="the buyer's")
    def buyer_rate(self, obj: Return) -> str:
        return _rate_30_days(buyer=obj.organization)

    @admin.display(description="the seller campaign's")
    def campaign_rate(self, obj: Return) -> str:
        return _rate_30_days(campaign=obj.sale.campaign)

    @admin.display(description="ledger transaction")
    def ledger_transaction_link(self, obj: Return) -> SafeString | str:
        return admin_link(obj.ledger_transaction)

    def _decide(self, request: HttpRequest, queryset: QuerySet[Return], *, approve: bool) -> None:
        note = request.POST.get("note", "").strip()
        done, skipped, failed = 0, 0, []
        for ret in queryset.order_by("pk"):
            if ret.status != Return.Status.REQUESTED:
                skipped += 1
                continue
            try:
                return_decide(ret=ret, approve=approve, user=request.user, note=note)  # type: ignore[arg-type]
            except ReturnAlreadyDecided:
                skipped += 1
            except ReturnError as exc:
                failed.append(f"{ret.public_id}: {exc.message}")
            else:
                done += 1
        verb = "approved" if approve else "denied"
        if done:
            self.message_user(request, f"{done} return(s) {verb}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} return(s) skipped: already decided.", messages.WARNING)
        for failure in failed:
            self.message_user(request, failure, messages.ERROR)

    @admin.action(
        description="Approve selected returns (refund the buyer, claw back the payout)", permissions=["decide"]
    )
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Return]) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Deny selected returns", permissions=["decide"])
    def deny_selected(self, request: HttpRequest, queryset: QuerySet[Return]) -> None:
        self._decide(request, queryset, approve=False)


@admin.register(ReturnPolicy)
class ReturnPolicyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["organization", "auto_approve_rate_percent", "rate_30_days", "updated_at"]
    list_select_related = ["organization"]
    search_fields = ["organization__name", "organization__slug"]
    fields = ["organization", "auto_approve_rate_percent", "rate_30_days"]
    readonly_fields = ["rate_30_days"]

    @admin.display(description="return rate (30 days)")
    def rate_30_days(self, obj: ReturnPolicy) -> str:
        if obj.pk is None:
            return "—"
        return _rate_30_days(buyer=obj.organization)
