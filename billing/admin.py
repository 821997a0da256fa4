"""The operator's ledger: accounts, transactions and entries (read-only: services write them), and
the money operations — record a top-up, record a seller payout, set a buyer's credit limit and
low-balance threshold — and the reconciliation runs.

The admin runs under ``market_scope`` for staff (``accounts.middleware``). Booking money needs the
``billing.add_ledgertransaction`` permission (superusers have it). Each money form carries a
hidden UUID made when the form is shown: it is the booking's idempotency key, so a double submit
or a resubmitted page books once.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.models import Organization
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction, ReconciliationRun
from billing.services import (
    BillingError,
    buyer_limits_set,
    ledger_reconcile,
    payout_record,
    reconciliation_record,
    topup_record,
)
from billing.statements import month_add
from core.admin import ReadOnlyAdminMixin
from core.money import money_label, money_str

BOOK_PERMISSION = "billing.add_ledgertransaction"


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """The ledger is append-only: the admin shows it, services write it."""


# --- the operator's money forms -----------------------------------------------------------------


class TopupForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.filter(is_buyer=True), label="Buyer")
    amount = forms.DecimalField(
        min_value=Decimal("0.01"), help_text="The money received, e.g. 500.00.", max_digits=14, decimal_places=2
    )
    reference = forms.CharField(max_length=200, help_text="Required: the wire id, check number or invoice paid.")
    memo = forms.CharField(max_length=250, required=False, help_text="Optional; the buyer sees it.")
    submission = forms.UUIDField(widget=forms.HiddenInput)


class PayoutForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.filter(is_seller=True), label="Seller")
    amount = forms.DecimalField(
        min_value=Decimal("0.01"), help_text="At most what the seller is owed.", max_digits=14, decimal_places=2
    )
    period_start = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}), help_text="First day the payout covers (YYYY-MM-DD)."
    )
    period_end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="Last day it covers.")
    reference = forms.CharField(max_length=200, help_text="Required: the wire or transfer id.")
    memo = forms.CharField(max_length=200, required=False, help_text="Optional; the seller sees it.")
    submission = forms.UUIDField(widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("period_start"), data.get("period_end")
        if start and end and start > end:
            self.add_error("period_end", "The period must end on or after its first day.")
        return data


class LimitsForm(forms.Form):
    credit_limit = forms.DecimalField(
        min_value=Decimal("0.00"),
        help_text="How far below zero the balance may go (0.00: prepaid only).",
        max_digits=14,
        decimal_places=2,
    )
    low_balance_threshold = forms.DecimalField(
        min_value=Decimal("0.00"),
        required=False,
        help_text="Send balance.low when available funds fall below this; empty for never.",
        max_digits=14,
        decimal_places=2,
    )


def _last_month(today: date) -> tuple[date, date]:
    first = month_add(date(today.year, today.month, 1), -1)
    return first, date.fromordinal(month_add(first, 1).toordinal() - 1)


def _organization_param(request: HttpRequest, **roles: bool) -> Organization | None:
    try:
        return Organization.objects.filter(pk=int(request.GET.get("organization", "")), **roles).first()
    except ValueError:
        return None


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = [
        "__str__",
        "kind",
        "balance",
        "held",
        "available_funds",
        "credit_limit",
        "low_balance_threshold",
        "low_balance_notified",
        "operations",
    ]
    list_filter = ["kind", "low_balance_notified"]
    list_select_related = ["organization"]
    readonly_fields = ["available_funds", "operations"]
    search_fields = ["organization__name"]
    change_list_template = "billing/admin/ledgeraccount_change_list.html"
    actions = ["record_topup", "record_payout"]

    @admin.display(description="Available")
    def available_funds(self, account: LedgerAccount) -> str:
        if account.kind != LedgerAccount.Kind.BUYER_BALANCE:
            return "—"
        return money_str(account.available)

    @admin.display(description="Operations")
    def operations(self, account: LedgerAccount) -> SafeString | str:
        if account.organization_id is None:
            return ""
        if account.kind == LedgerAccount.Kind.BUYER_BALANCE:
            return format_html(
                '<a href="{}?organization={}">Top up</a> · <a href="{}">Limits</a>',
                reverse("admin:billing_ledgeraccount_topup"),
                account.organization_id,
                reverse("admin:billing_ledgeraccount_limits", args=[account.pk]),
            )
        if account.kind == LedgerAccount.Kind.SELLER_PAYABLE:
            return format_html(
                '<a href="{}?organization={}">Pay out</a>',
                reverse("admin:billing_ledgeraccount_payout"),
                account.organization_id,
            )
        return ""

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("topup/", wrap(self.topup_view), name="billing_ledgeraccount_topup"),
            path("payout/", wrap(self.payout_view), name="billing_ledgeraccount_payout"),
            path("<int:pk>/limits/", wrap(self.limits_view), name="billing_ledgeraccount_limits"),
            *super().get_urls(),
        ]

    # --- actions: pick an account in the list, then fill its form ---

    def _one(self, request: HttpRequest, queryset: QuerySet[LedgerAccount], kind: str) -> LedgerAccount | None:
        accounts = list(queryset[:2])
        if len(accounts) != 1 or accounts[0].kind != kind or accounts[0].organization_id is None:
            label = dict(LedgerAccount.Kind.choices)[kind].lower()
            self.message_user(request, f"Select exactly one {label} account.", messages.WARNING)
            return None
        return accounts[0]

    @admin.action(description="Record a top-up for the selected buyer")
    def record_topup(self, request: HttpRequest, queryset: QuerySet[LedgerAccount]) -> HttpResponse | None:
        account = self._one(request, queryset, LedgerAccount.Kind.BUYER_BALANCE)
        if account is None:
            return None
        return HttpResponseRedirect(
            f"{reverse('admin:billing_ledgeraccount_topup')}?organization={account.organization_id}"
        )

    @admin.action(description="Record a payout to the selected seller")
    def record_payout(self, request: HttpRequest, queryset: QuerySet[LedgerAccount]) -> HttpResponse | None:
        account = self._one(request, queryset, LedgerAccount.Kind.SELLER_PAYABLE)
        if account is None:
            return None
        return HttpResponseRedirect(
            f"{reverse('admin:billing_ledgeraccount_payout')}?organization={account.organization_id}"
        )

    # --- the forms ---

    def _guard(self, request: HttpRequest) -> None:
        if not request.user.has_perm(BOOK_PERMISSION):
            raise PermissionDenied("Booking money needs the billing.add_ledgertransaction permission.")

    def _page(self, request: HttpRequest, title: str, **context: Any) -> TemplateResponse:
        return TemplateResponse(
            request,
            "billing/admin/money_form.html",
            {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **context},
        )

    def _account_url(self, organization: Organization, kind: str) -> str:
        account = LedgerAccount.objects.filter(organization=organization, kind=kind).first()
        if account is None:
            return reverse("admin:billing_ledgeraccount_changelist")
        return reverse("admin:billing_ledgeraccount_change", args=[account.pk])

    def topup_view(self, request: HttpRequest) -> HttpResponse:
        """Record money a buyer sent (``topup_record``), once per shown form."""
        self._guard(request)
        if request.method == "POST":
            form = TopupForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                organization: Organization = data["organization"]
                key = f"admin-topup:{data['submission']}"
                repeat = LedgerTransaction.objects.filter(idempotency_key=key).exists()
                try:
                    booked = topup_record(
                        organization=organization,
                        amount=data["amount"],
                        reference=data["reference"],
                        memo=data["memo"],
                        idempotency_key=key,
                    )
                except BillingError as exc:
                    form.add_error(None, str(exc))
                else:
                    if repeat:
                        self.message_user(
                            request,
                            f"This top-up was already recorded ({booked.reference}); nothing was booked twice.",
                            messages.WARNING,
                        )
                    else:
                        self.message_user(
                            request,
                            f"Recorded a top-up of {money_label(data['amount'])} for {organization.name} "
                            f"(reference {booked.reference}).",
                        )
                    return redirect(self._account_url(organization, LedgerAccount.Kind.BUYER_BALANCE))
        else:
            buyer = _organization_param(request, is_buyer=True)
            form = TopupForm(initial={"organization": buyer, "submission": uuid.uuid4()})
        return self._page(
            request,
            "Record a top-up",
            form=form,
            submit="Record top-up",
            intro="Money a buyer sent to the exchange: its balance goes up by the amount, exchange cash "
            "goes down by it. The buyer sees the top-up, with its reference, on its Balance page.",
        )

    def payout_view(self, request: HttpRequest) -> HttpResponse:
        """Record money paid to a seller (``payout_record``), once per shown form."""
        self._guard(request)
        seller = _organization_param(request, is_seller=True)
        if request.method == "POST":
            form = PayoutForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                seller = data["organization"]
                assert seller is not None
                key = f"admin-payout:{data['submission']}"
                repeat = LedgerTransaction.objects.filter(idempotency_key=key).exists()
                try:
                    booked = payout_record(
                        seller=seller,
                        amount=data["amount"],
                        period_start=data["period_start"],
                        period_end=data["period_end"],
                        reference=data["reference"],
                        memo=data["memo"],
                        idempotency_key=key,
                    )
                except BillingError as exc:
                    form.add_error("amount" if "owed" in str(exc) else None, str(exc))
                else:
                    if repeat:
                        self.message_user(
                            request,
                            f"This payout was already recorded ({booked.reference}); nothing was booked twice.",
                            messages.WARNING,
                        )
                    else:
                        self.message_user(
                            request,
                            f"Recorded a payout of {money_label(data['amount'])} to {seller.name} "
                            f"(reference {booked.reference}).",
                        )
                    return redirect(self._account_url(seller, LedgerAccount.Kind.SELLER_PAYABLE))
        else:
            start, end = _last_month(timezone.localdate())
            owed = None
            if seller is not None:
                payable = LedgerAccount.objects.filter(
                    organization=seller, kind=LedgerAccount.Kind.SELLER_PAYABLE
                ).first()
                owed = payable.balance if payable is not None and payable.balance > 0 else None
            form = PayoutForm(
                initial={
                    "organization": seller,
                    "amount": owed,
                    "period_start": start,
                    "period_end": end,
                    "submission": uuid.uuid4(),
                }
            )
        owing = (
            LedgerAccount.objects.filter(kind=LedgerAccount.Kind.SELLER_PAYABLE, balance__gt=0)
            .select_related("organization")
            .order_by("-balance")[:50]
        )
        return self._page(
            request,
            "Record a seller payout",
            form=form,
            submit="Record payout",
            owing=owing,
            payout_url=reverse("admin:billing_ledgeraccount_payout"),
            intro="Money the exchange paid a seller: its payable (what it is owed) goes down by the amount, "
            "exchange cash goes up by it. A payout larger than what the seller is owed is refused.",
        )

    def limits_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Set a buyer's credit limit and low-balance threshold (``buyer_limits_set``)."""
        self._guard(request)
        account = LedgerAccount.objects.select_related("organization").filter(pk=pk).first()
        if account is None or account.kind != LedgerAccount.Kind.BUYER_BALANCE or account.organization is None:
            raise Http404("No such buyer account.")
        if request.method == "POST":
            form = LimitsForm(request.POST)
            if form.is_valid():
                try:
                    buyer_limits_set(
                        organization=account.organization,
                        credit_limit=form.cleaned_data["credit_limit"],
                        low_balance_threshold=form.cleaned_data["low_balance_threshold"],
                    )
                except BillingError as exc:
                    form.add_error(None, str(exc))
                else:
                    self.message_user(request, f"Updated the limits of {account.organization.name}.")
                    return redirect(reverse("admin:billing_ledgeraccount_change", args=[account.pk]))
        else:
            form = LimitsForm(
                initial={"credit_limit": account.credit_limit, "low_balance_threshold": account.low_balance_threshold}
            )
        return self._page(
            request,
            f"Limits of {account.organization.name}",
            form=form,
            submit="Save limits",
            account=account,
            intro=f"Balance {money_label(account.balance)}, held {money_label(account.held)}, available "
            f"{money_label(account.available)}. Contracts stop bidding when available funds cannot pay "
            "their price, and bid again when funds return.",
        )


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    extra = 0
    fields = ["account", "amount"]
    readonly_fields = fields  # type: ignore[assignment]
    can_delete = False


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "memo", "reference", "idempotency_key"]
    list_filter = ["kind"]
    search_fields = ["idempotency_key", "memo", "reference"]
    date_hierarchy = "created_at"
    inlines = [LedgerEntryInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "account", "amount", "transaction"]
    list_filter = ["account__kind"]
    search_fields = ["account__organization__name", "transaction__idempotency_key"]


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Every reconciliation run (the task's, every 15 minutes, and the operator's): shown, never
    edited; a run with drift may be deleted once it is dealt with."""

    list_display = ["checked_at", "result", "accounts", "transactions", "first_problem"]
    list_filter = ["is_clean"]
    readonly_fields = ["key", "checked_at", "is_clean", "accounts", "transactions", "problem_list"]
    exclude = ["problems"]
    change_list_template = "billing/admin/reconciliationrun_change_list.html"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Result", boolean=False)
    def result(self, run: ReconciliationRun) -> SafeString:
        if run.is_clean:
            return format_html('<span style="color: #1f8a4c">clean</span>')
        return format_html('<strong style="color: #9b1c1c">DRIFT ({})</strong>', len(run.problems))

    @admin.display(description="First problem")
    def first_problem(self, run: ReconciliationRun) -> str:
        return run.problems[0] if run.problems else "—"

    @admin.display(description="Problems")
    def problem_list(self, run: ReconciliationRun) -> str:
        return "\n".join(run.problems) or "None: every balance matches its entries."

    def get_urls(self) -> list[URLPattern]:
        return [
            path("run/", self.admin_site.admin_view(self.run_view), name="billing_reconciliationrun_run"),
            *super().get_urls(),
        ]

    def run_view(self, request: HttpRequest) -> HttpResponse:
        """Reconcile now (POST) and show the run."""
        if request.method != "POST":
            return redirect("admin:billing_reconciliationrun_changelist")
        if not request.user.is_staff:
            raise PermissionDenied
        run = reconciliation_record(ledger_reconcile(), key=f"manual:{uuid.uuid4()}")
        if run.is_clean:
            self.message_user(
                request, f"The ledger is clean: {run.accounts} accounts, {run.transactions} transactions."
            )
        else:
            self.message_user(request, f"Drift found: {len(run.problems)} problem(s).", messages.ERROR)
        return redirect("admin:billing_reconciliationrun_change", run.pk)
