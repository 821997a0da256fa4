"""Portal pages for money: a buyer's balance, a seller's payouts, and monthly statements.

Every page runs in the current organization's tenant scope (``accounts.middleware``) and reads
through ``billing.selectors`` with that organization: there is no id in these URLs to point at
another tenant's account. ``portal_page`` guards each: a buyer's page opened by a seller says it is
for buyers; every member reads, and changing the alert threshold needs a manager (checked again by
the service).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.models import Organization
from accounts.portal import portal_page, role_allows, role_refused_page
from billing.models import LedgerAccount, LedgerTransaction
from billing.selectors import account_of, entries_of, entries_of_kind, payout_summary
from billing.services import BillingError, low_balance_threshold_set
from billing.statements import (
    StatementMonthError,
    month_default,
    month_parse,
    months_available,
    statement_build,
    statement_csv,
    statement_pdf,
)
from core.money import money_label

PAGE_SIZE = 50
TOPUPS_SHOWN = 20


def _organization(request: HttpRequest) -> Organization:
    return request.organization  # type: ignore[attr-defined,no-any-return]


class ThresholdForm(forms.Form):
    low_balance_threshold = forms.DecimalField(
        label="Low-balance alert below",
        required=False,
        min_value=Decimal("0.00"),
        max_digits=14,
        decimal_places=2,
        help_text="Leave empty for no alert.",
    )


@portal_page()
def billing_home(request: HttpRequest) -> HttpResponse:
    """``/portal/billing/``: a buyer's balance, else a seller's payouts."""
    organization = _organization(request)
    if organization.is_buyer:
        return redirect("billing:balance")
    if organization.is_seller:
        return redirect("billing:payouts")
    return redirect("billing:statements")


@portal_page(side="buyer")
def balance(request: HttpRequest) -> HttpResponse:
    """A buyer's funds (balance, held, credit limit, available, alert threshold), its top-ups and
    every transaction with the balance after it. Owners and managers set the alert threshold."""
    organization = _organization(request)
    membership = request.membership  # type: ignore[attr-defined]
    can_manage = role_allows(membership, "manager")
    account = account_of(organization=organization, kind=LedgerAccount.Kind.BUYER_BALANCE)
    form = ThresholdForm(initial={"low_balance_threshold": account.low_balance_threshold if account else None})
    if request.method == "POST":
        if not can_manage:
            return role_refused_page(request, "manager")
        form = ThresholdForm(request.POST)
        if form.is_valid():
            threshold = form.cleaned_data["low_balance_threshold"]
            try:
                low_balance_threshold_set(organization=organization, threshold=threshold, actor=membership)
            except BillingError as exc:
                form.add_error("low_balance_threshold", str(exc))
            else:
                messages.success(
                    request,
                    f"You will be told (balance.low) when available funds fall below {money_label(threshold)}."
                    if threshold is not None
                    else "Low-balance alerts are off.",
                )
                return redirect("billing:balance")
    if account is None:
        return render(request, "billing/balance.html", {"account": None, "form": form, "can_manage": can_manage})
    page = Paginator(entries_of(organization=organization, account=account), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    topups = entries_of_kind(organization=organization, account=account, kind=LedgerTransaction.Kind.TOPUP)[
        :TOPUPS_SHOWN
    ]
    return render(
        request,
        "billing/balance.html",
        {
            "account": account,
            "page": page,
            "topups": topups,
            "form": form,
            "can_manage": can_manage,
            "status": 400 if form.errors else 200,
        },
        status=400 if form.errors else 200,
    )


@portal_page(side="seller")
def payouts(request: HttpRequest) -> HttpResponse:
    """A seller's money: owed now, earned, paid and clawed back to date, its payouts, and every
    entry of its payable with the balance after it."""
    organization = _organization(request)
    account = account_of(organization=organization, kind=LedgerAccount.Kind.SELLER_PAYABLE)
    context: dict[str, object] = {"account": account, "summary": payout_summary(organization=organization)}
    if account is not None:
        context["payouts"] = entries_of_kind(
            organization=organization, account=account, kind=LedgerTransaction.Kind.PAYOUT
        )
        context["page"] = Paginator(entries_of(organization=organization, account=account), PAGE_SIZE).get_page(
            request.GET.get("page")
        )
    return render(request, "billing/payouts.html", context)


@portal_page()
def statements(request: HttpRequest) -> HttpResponse:
    """The organization's statement for ``?month=YYYY-MM`` (default: the current month, in its time
    zone, figures to date), as a page, or ``?format=csv`` / ``?format=pdf`` as a download. A month
    that cannot be read is said so on the page (400), over the current month's statement."""
    organization = _organization(request)
    month_error = ""
    try:
        month = month_parse(request.GET.get("month"), organization=organization)
    except StatementMonthError as exc:
        month_error = f"{exc}. Showing the current month instead."
        month = month_default(organization=organization)
    statement = statement_build(organization=organization, month=month)
    wanted = request.GET.get("format", "html")
    if wanted in ("csv", "pdf") and month_error:
        raise Http404(month_error)
    if wanted == "csv":
        response = HttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{statement.filename_stem}.csv"'
        return response
    if wanted == "pdf":
        response = HttpResponse(statement_pdf(statement), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{statement.filename_stem}.pdf"'
        return response
    if wanted != "html":
        raise Http404("No such format.")
    months = sorted({month, *months_available(organization=organization)}, reverse=True)
    return render(
        request,
        "billing/statement.html",
        {
            "statement": statement,
            "months": months,
            "month": month,
            "last_day": statement.end - timedelta(microseconds=1),
            # Newest first: the previous month is the next one in the list.
            "previous_month": next((m for m in months if m < month), None),
            "next_month": next((m for m in reversed(months) if m > month), None),
            "month_error": month_error,
        },
        status=400 if month_error else 200,
    )
