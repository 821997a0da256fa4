"""Money operations: rounding, sale booking, top-ups, payouts, low-balance alerts, the operator's
forms, idempotent retries and concurrent spending.

The market (``tests.exchange.builder``): the buyer Acme bids 30.00 on every lead with 100.00 of
prepaid funds; the offer keeps a 20 % margin, so a 30.00 sale pays the seller 24.00 and the
exchange 6.00.
"""

from __future__ import annotations

import threading
from datetime import date
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest
from django.conf import settings
from django.db import connections, transaction
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from accounts.services import user_upsert
from accounts.tenancy import market_scope
from billing.models import LedgerEntry, LedgerTransaction
from billing.services import (
    BillingError,
    FundsRefused,
    PayoutRefused,
    credit_limit_set,
    funds_hold,
    low_balance_check,
    low_balance_threshold_set,
    payout_record,
    sale_book,
    topup_record,
)
from core.money import CENT, MoneyError, money_str, payout_for, to_money
from exchange.models import Sale
from exchange.webhooks import EventDelivery, endpoint_create
from tests.exchange.builder import buyer, events, load, org, ping, post, sell
from tests.ledger import account, balance, book, held, ledger_is_consistent
from tests.sessions import PASSWORD

D = Decimal


# --- helpers ------------------------------------------------------------------------------------


def money() -> dict[str, Decimal]:
    """Every account that moves in these tests, by a short name."""
    return {
        "acme": balance("acme", "buyer_balance"),
        "acme_held": held("acme"),
        "seller": balance("seller", "seller_payable"),
        "platform": balance(None, "platform_revenue"),
        "cash": balance(None, "cash"),
    }


def transactions() -> int:
    with market_scope():
        return LedgerTransaction.objects.count()


def low_events(slug: str = "acme") -> list[dict[str, Any]]:
    return events("balance.low", slug)


def waterfall_reason(ping_id: str, contract: str = "ctr_acme") -> str:
    from exchange.models import Ping

    with market_scope():
        steps = Ping.objects.get(public_id=ping_id).waterfall
    return next(step["reason"] for step in steps if step["contract"] == contract)


@pytest.fixture
def market(db: None) -> None:
    load(buyer("acme", "30.00", balance="100.00"))


def entries_of(booked: LedgerTransaction) -> dict[str, Decimal]:
    with market_scope():
        return {
            f"{e.account.organization.slug if e.account.organization else 'exchange'}:{e.account.kind}": e.amount
            for e in LedgerEntry.objects.filter(transaction=booked).select_related("account__organization")
        }


# --- rounding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.005", "10.01"),  # half up, away from zero
        ("-10.005", "-10.01"),
        ("10.004999", "10.00"),
        (D("0.004"), "0.00"),
        (D("0.005"), "0.01"),
        (5, "5.00"),
        (" 3.1 ", "3.10"),
        ("1E+2", "100.00"),
        ("99999999999.99", "99999999999.99"),
    ],
)
def test_to_money_rounds_half_up_to_the_cent(value: object, expected: str):
    assert to_money(value) == D(expected)
    assert str(to_money(value)) == expected


@pytest.mark.parametrize("value", [0.1, 10.01, 1e2, True, False, "abc", "", "NaN", "Infinity", "-inf", None, [1]])
def test_to_money_refuses_floats_and_anything_that_is_not_an_amount(value: object):
    with pytest.raises(MoneyError):
        to_money(value)


def test_to_money_rounds_down_when_asked():
    assert to_money("6.6799", rounding=ROUND_DOWN) == D("6.67")


@pytest.mark.parametrize(
    ("price", "margin", "payout", "platform"),
    [
        ("0.01", "20", "0.00", "0.01"),  # a one-cent sale: the seller gets nothing, the exchange the cent
        ("0.01", "0", "0.01", "0.00"),
        ("10.01", "33.33", "6.67", "3.34"),  # 6.673667 → 6.67
        ("10.01", "20", "8.00", "2.01"),  # 8.008 → 8.00
        ("0.99", "50", "0.49", "0.50"),  # 0.495 → 0.49: down, never half up
        ("30.00", "20", "24.00", "6.00"),
        ("100.00", "100", "0.00", "100.00"),
        ("100.00", "0", "100.00", "0.00"),
        ("33.33", "33.33", "22.22", "11.11"),  # 22.2210… → 22.22
        ("99999999999.99", "0.01", "99989999999.99", "10000000.00"),  # the largest amount a MoneyField holds
    ],
)
def test_payout_rounds_down_and_the_exchange_keeps_the_fraction(price: str, margin: str, payout: str, platform: str):
    got = payout_for(D(price), D(margin))
    assert got == D(payout)
    assert D(price) - got == D(platform)
    assert got.as_tuple().exponent == -2


def test_payout_for_refuses_floats():
    with pytest.raises(TypeError):
        payout_for(10.01, D("20"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        payout_for(D("10.01"), 33.33)  # type: ignore[arg-type]


@given(
    price=st.decimals(min_value=0, max_value=D("100000"), places=2),
    margin=st.decimals(min_value=0, max_value=100, places=2),
)
def test_payout_plus_margin_is_the_price_and_the_margin_is_never_short(price: Decimal, margin: Decimal):
    payout = payout_for(price, margin)
    exact_margin = price * margin / 100
    assert D("0.00") <= payout <= price
    assert payout == payout.quantize(CENT)
    # The platform's share is the exact margin, plus less than a cent.
    assert D(0) <= (price - payout) - exact_margin < CENT


def test_money_str_is_two_decimals():
    assert money_str(D("3")) == "3.00"
    assert money_str(D("-0.5")) == "-0.50"
    assert money_str(D("2.345")) == "2.35"


# --- sales --------------------------------------------------------------------------------------


def test_a_one_cent_sale_books_the_buyer_and_the_exchange_only(market: None):
    booked = book("sal_cent", "0.01", "0.00")
    assert entries_of(booked) == {"acme:buyer_balance": D("-0.01"), "exchange:platform_revenue": D("0.01")}
    assert money() == {
        "acme": D("99.99"),
        "acme_held": D("0.00"),
        "seller": D("0.00"),
        "platform": D("0.01"),
        "cash": D("-100.00"),
    }
    ledger_is_consistent()


def test_a_margin_that_does_not_divide_evenly_books_exact_cents(db: None):
    load(buyer("acme", "10.01"), campaign={"margin_percent": "33.33"})
    sold = sell(1)
    assert (sold["status"], sold["payout"]) == ("sold", "6.67")
    with market_scope():
        sale = Sale.objects.get(lead__public_id=sold["lead_id"])
        booked = LedgerTransaction.objects.get(idempotency_key=f"sale:{sale.public_id}")
    assert (sale.price, sale.payout, sale.margin) == (D("10.01"), D("6.67"), D("3.34"))
    assert entries_of(booked) == {
        "acme:buyer_balance": D("-10.01"),
        "seller:seller_payable": D("6.67"),
        "exchange:platform_revenue": D("3.34"),
    }
    assert money()["acme"] == D("989.99")
    ledger_is_consistent()


def test_booking_a_sale_again_books_it_and_drops_its_hold_once(market: None):
    first = book("sal_1", "30.00", "24.00")
    before = money()
    # A retried task books the same sale again: same transaction, nothing moves, the hold is not
    # released a second time.
    again = sale_book(
        sale_public_id="sal_1", buyer=org("acme"), seller=org("seller"), price=D("30.00"), payout=D("24.00"), memo="x"
    )
    assert again.pk == first.pk
    assert (
        money()
        == before
        == {
            "acme": D("70.00"),
            "acme_held": D("0.00"),
            "seller": D("24.00"),
            "platform": D("6.00"),
            "cash": D("-100.00"),
        }
    )
    assert transactions() == 2  # the opening top-up and the sale
    ledger_is_consistent()


def test_an_unbalanced_booking_is_refused(market: None):
    from billing.services import account_get, ledger_book

    acme = account_get(organization=org("acme"), kind="buyer_balance")
    cash = account_get(organization=None, kind="cash")
    before = money()
    with pytest.raises(BillingError, match="sum to 0.01"):
        ledger_book(kind="adjustment", idempotency_key="bad", lines=[(acme, D("10.00")), (cash, D("-9.99"))])
    assert money() == before
    assert transactions() == 1


def test_a_key_used_by_another_kind_of_booking_is_refused_not_returned(market: None):
    book("sal_1", "30.00", "24.00")
    before = money()
    with pytest.raises(BillingError, match="already booked a sale"):
        topup_record(organization=org("acme"), amount=D("5.00"), reference="W-1", idempotency_key="sale:sal_1")
    assert money() == before


# --- top-ups ------------------------------------------------------------------------------------


def test_a_topup_moves_cash_to_the_buyer_once_per_key(market: None):
    first = topup_record(
        organization=org("acme"), amount=D("250.50"), reference=" WIRE-77 ", memo="October", idempotency_key="t-1"
    )
    again = topup_record(
        organization=org("acme"), amount=D("250.50"), reference="WIRE-77", memo="October", idempotency_key="t-1"
    )
    assert again.pk == first.pk
    assert (first.kind, first.reference, first.memo) == ("topup", "WIRE-77", "October")
    assert entries_of(first) == {"acme:buyer_balance": D("250.50"), "exchange:cash": D("-250.50")}
    assert money()["acme"] == D("350.50")
    assert money()["cash"] == D("-350.50")
    assert transactions() == 2
    ledger_is_consistent()


@pytest.mark.parametrize(
    ("amount", "reference", "error"),
    [
        ("0.00", "W-1", "positive"),
        ("-5.00", "W-1", "positive"),
        ("5.00", "", "reference"),
        ("5.00", "   ", "reference"),
    ],
)
def test_a_topup_needs_a_positive_amount_and_a_reference(market: None, amount: str, reference: str, error: str):
    before = money()
    with pytest.raises(BillingError, match=error):
        topup_record(organization=org("acme"), amount=D(amount), reference=reference, idempotency_key="t-x")
    assert money() == before
    assert transactions() == 1


def test_a_topup_refuses_a_float(market: None):
    with pytest.raises(MoneyError):
        topup_record(organization=org("acme"), amount=10.5, reference="W", idempotency_key="t-f")  # type: ignore[arg-type]
    assert transactions() == 1


# --- payouts ------------------------------------------------------------------------------------


def test_a_payout_moves_the_sellers_payable_to_cash(market: None):
    book("sal_1", "30.00", "24.00")
    book("sal_2", "30.00", "24.00")
    paid = payout_record(
        seller=org("seller"),
        amount=D("40.00"),
        period_start=date(2026, 10, 1),
        period_end=date(2026, 10, 31),
        reference="ACH-1",
        memo="first half",
        idempotency_key="p-1",
    )
    assert (paid.kind, paid.reference) == ("payout", "ACH-1")
    assert paid.memo == "Payout for 2026-10-01 to 2026-10-31: first half"
    assert entries_of(paid) == {"seller:seller_payable": D("-40.00"), "exchange:cash": D("40.00")}
    assert money()["seller"] == D("8.00")
    assert money()["cash"] == D("-60.00")
    ledger_is_consistent()


def test_a_payout_larger_than_what_is_owed_is_refused_and_nothing_moves(market: None):
    book("sal_1", "30.00", "24.00")
    before, count = money(), transactions()
    with pytest.raises(PayoutRefused, match="Seller is owed 24.00: a payout of 24.01 is too much"):
        payout_record(
            seller=org("seller"),
            amount=D("24.01"),
            period_start=date(2026, 10, 1),
            period_end=date(2026, 10, 31),
            reference="ACH-1",
            idempotency_key="p-1",
        )
    assert money() == before
    assert transactions() == count


def test_a_retried_payout_books_once_even_after_the_payable_is_drained(market: None):
    book("sal_1", "30.00", "24.00")
    kwargs: dict[str, Any] = {
        "seller": org("seller"),
        "amount": D("24.00"),
        "period_start": date(2026, 10, 1),
        "period_end": date(2026, 10, 31),
        "reference": "ACH-1",
        "idempotency_key": "p-1",
    }
    first = payout_record(**kwargs)
    again = payout_record(**kwargs)  # owed is 0.00 now: a retry is not a second payout
    assert again.pk == first.pk
    assert money()["seller"] == D("0.00")
    assert transactions() == 3
    ledger_is_consistent()


@pytest.mark.parametrize(
    ("who", "changes", "error"),
    [
        ("acme", {}, "not a seller"),
        ("seller", {"amount": D("0.00")}, "positive"),
        ("seller", {"reference": " "}, "reference"),
        ("seller", {"period_start": date(2026, 11, 1)}, "period"),
    ],
)
def test_a_payout_needs_a_seller_an_amount_a_reference_and_a_period(
    market: None, who: str, changes: dict[str, Any], error: str
):
    book("sal_1", "30.00", "24.00")
    before, count = money(), transactions()
    kwargs: dict[str, Any] = {
        "seller": org(who),
        "amount": D("10.00"),
        "period_start": date(2026, 10, 1),
        "period_end": date(2026, 10, 31),
        "reference": "ACH-1",
        "idempotency_key": "p-1",
        **changes,
    }
    with pytest.raises(BillingError, match=error):
        payout_record(**kwargs)
    assert (money(), transactions()) == (before, count)


# --- low balance --------------------------------------------------------------------------------


def test_balance_low_is_sent_once_per_fall_and_again_after_funds_recover(market: None):
    low_balance_threshold_set(organization=org("acme"), threshold=D("25.00"))
    assert low_events() == []
    assert [sell(n)["status"] for n in range(3)] == ["sold", "sold", "sold"]  # 100 → 70 → 40 → 10
    assert low_events() == [
        {
            "available": "10.00",
            "threshold": "25.00",
            "balance": "10.00",
            "held": "0.00",
            "credit_limit": "0.00",
            "currency": "USD",
        }
    ]
    assert account("acme", "buyer_balance").low_balance_notified is True
    # A fourth lead cannot be bought (10.00 < 30.00), and nothing more is sent.
    answer = ping(3)
    assert answer["status"] == "rejected"
    assert waterfall_reason(answer["ping_id"]) == "insufficient_balance"
    assert len(low_events()) == 1
    # A top-up lifts the funds over the threshold: the flag clears, no event.
    topup_record(organization=org("acme"), amount=D("50.00"), reference="W-2", idempotency_key="t-2")
    assert account("acme", "buyer_balance").low_balance_notified is False
    assert len(low_events()) == 1
    # The next fall is told again: 60 → 30 → 0.
    assert [sell(n)["status"] for n in (4, 5)] == ["sold", "sold"]
    assert [e["available"] for e in low_events()] == ["10.00", "0.00"]
    ledger_is_consistent()


def test_balance_low_goes_to_the_buyers_webhook_endpoints(market: None, django_capture_on_commit_callbacks):
    with market_scope():
        endpoint, _secret = endpoint_create(
            organization=org("acme"), url="http://127.0.0.1:9/hooks", event_types=["balance.low"]
        )
    low_balance_threshold_set(organization=org("acme"), threshold=D("80.00"))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        book("sal_1", "30.00", "24.00")
    with market_scope():
        delivery = EventDelivery.objects.get(endpoint=endpoint)
    assert delivery.event.type == "balance.low"
    assert delivery.event.data["available"] == "70.00"
    assert len(callbacks) == 1  # the send is queued on commit, not before


def test_balance_low_rolls_back_with_the_booking(market: None):
    low_balance_threshold_set(organization=org("acme"), threshold=D("80.00"))
    with pytest.raises(RuntimeError), transaction.atomic():
        book("sal_1", "30.00", "24.00")
        assert len(low_events()) == 1
        raise RuntimeError("the post failed after booking")
    assert low_events() == []
    assert account("acme", "buyer_balance").low_balance_notified is False
    assert money()["acme"] == D("100.00")


def test_a_threshold_or_credit_limit_change_moves_the_flag_at_once(market: None):
    # Raising the threshold over the available funds tells the buyer now.
    low_balance_threshold_set(organization=org("acme"), threshold=D("150.00"))
    assert [e["available"] for e in low_events()] == ["100.00"]
    # A credit limit lifts the available funds over it: the flag clears.
    credit_limit_set(organization=org("acme"), credit_limit=D("60.00"))
    assert account("acme", "buyer_balance").low_balance_notified is False
    # Checking again with nothing changed sends nothing.
    assert low_balance_check(organization_id=org("acme").pk) is False
    # No threshold: never told.
    low_balance_threshold_set(organization=org("acme"), threshold=None)
    credit_limit_set(organization=org("acme"), credit_limit=D("0.00"))
    assert len(low_events()) == 1
    with pytest.raises(BillingError):
        low_balance_threshold_set(organization=org("acme"), threshold=D("-1.00"))


def test_contracts_stop_at_zero_funds_and_bid_again_when_a_topup_arrives(db: None):
    load(buyer("acme", "30.00", balance="30.00"))
    assert sell(1)["status"] == "sold"
    assert money()["acme"] == D("0.00")
    # No funds: Acme's contract is not eligible, the seller finds no buyer.
    answer = ping(2)
    assert (answer["status"], answer["reason"]) == ("rejected", "no_buyers")
    assert waterfall_reason(answer["ping_id"]) == "insufficient_balance"
    # The operator records a top-up: the very next ping is bought again.
    topup_record(organization=org("acme"), amount=D("30.00"), reference="WIRE-9", idempotency_key="t-9")
    answer = ping(3)
    assert answer["status"] == "accepted"
    assert waterfall_reason(answer["ping_id"]) == "won"
    assert post(answer["ping_id"], 3)["status"] == "sold"
    assert money()["acme"] == D("0.00")
    ledger_is_consistent()


def test_a_credit_limit_lets_contracts_bid_below_zero_and_no_further(db: None):
    load(buyer("acme", "30.00", balance="30.00", credit_limit="30.00"))
    assert [sell(n)["status"] for n in range(3)] == ["sold", "sold", "rejected"]
    assert money()["acme"] == D("-30.00")
    ledger_is_consistent()


# --- the operator's forms -----------------------------------------------------------------------


@pytest.fixture
def operator(operator_client: Client) -> Client:
    return operator_client


def submission_of(response: Any) -> str:
    return str(response.context["form"].initial["submission"])


def test_the_operator_records_a_topup_once_even_when_the_form_is_posted_twice(market: None, operator: Client):
    url = reverse("admin:billing_ledgeraccount_topup")
    shown = operator.get(f"{url}?organization={org('acme').pk}")
    assert shown.status_code == 200
    assert shown.context["form"].initial["organization"] == org("acme")
    body = {
        "organization": org("acme").pk,
        "amount": "500.00",
        "reference": "WIRE-2026-11-20",
        "memo": "November funds",
        "submission": submission_of(shown),
    }
    first = operator.post(url, body, follow=True)
    second = operator.post(url, body, follow=True)
    assert first.status_code == second.status_code == 200
    assert "Recorded a top-up of $500.00 for Acme (reference WIRE-2026-11-20)" in first.content.decode()
    assert "already recorded" in second.content.decode()
    assert money()["acme"] == D("600.00")
    assert transactions() == 2
    with market_scope():
        booked = LedgerTransaction.objects.get(kind="topup", reference="WIRE-2026-11-20")
    assert booked.idempotency_key == f"admin-topup:{body['submission']}"
    # A fresh form is a new submission.
    assert submission_of(operator.get(url)) != body["submission"]


def test_a_topup_without_a_reference_is_refused_and_nothing_is_booked(market: None, operator: Client):
    url = reverse("admin:billing_ledgeraccount_topup")
    shown = operator.get(url)
    response = operator.post(
        url,
        {"organization": org("acme").pk, "amount": "500.00", "reference": " ", "submission": submission_of(shown)},
    )
    assert response.status_code == 200
    assert response.context["form"].errors == {"reference": ["This field is required."]}
    response = operator.post(
        url,
        {"organization": org("acme").pk, "amount": "0", "reference": "W", "submission": submission_of(shown)},
    )
    assert "amount" in response.context["form"].errors
    assert transactions() == 1
    assert money()["acme"] == D("100.00")


def test_staff_without_the_booking_permission_cannot_book(market: None):
    user = user_upsert(email="staff@gavel.test", password=PASSWORD)
    user.is_staff = True
    user.save()
    c = Client()
    assert c.login(username="staff@gavel.test", password=PASSWORD)
    assert c.get(reverse("admin:billing_ledgeraccount_topup")).status_code == 403
    assert c.get(reverse("admin:billing_ledgeraccount_payout")).status_code == 403
    # Not staff at all: the admin's login page.
    member = Client()
    user_upsert(email="owner@acme.test", password=PASSWORD)
    assert member.login(username="owner@acme.test", password=PASSWORD)
    assert member.get(reverse("admin:billing_ledgeraccount_topup")).status_code == 302
    assert transactions() == 1


def test_the_operator_records_a_payout_and_cannot_overpay(market: None, operator: Client):
    book("sal_1", "30.00", "24.00")
    url = reverse("admin:billing_ledgeraccount_payout")
    shown = operator.get(f"{url}?organization={org('seller').pk}")
    assert shown.context["form"].initial["amount"] == D("24.00")  # prefilled with what is owed
    assert "Seller" in shown.content.decode()
    body = {
        "organization": org("seller").pk,
        "amount": "24.01",
        "period_start": "2026-10-01",
        "period_end": "2026-10-31",
        "reference": "ACH-555",
        "submission": submission_of(shown),
    }
    refused = operator.post(url, body)
    assert refused.status_code == 200
    assert refused.context["form"].errors["amount"] == ["Seller is owed 24.00: a payout of 24.01 is too much"]
    assert money()["seller"] == D("24.00")
    inverted = operator.post(url, {**body, "amount": "20.00", "period_start": "2026-11-01"})
    assert "period_end" in inverted.context["form"].errors
    paid = operator.post(url, {**body, "amount": "20.00"}, follow=True)
    assert "Recorded a payout of $20.00 to Seller (reference ACH-555)" in paid.content.decode()
    operator.post(url, {**body, "amount": "20.00"})  # the same form again
    assert money()["seller"] == D("4.00")
    with market_scope():
        assert LedgerTransaction.objects.filter(kind="payout").count() == 1
    ledger_is_consistent()


def test_the_operator_sets_a_buyers_limits(market: None, operator: Client):
    acme = account("acme", "buyer_balance")
    url = reverse("admin:billing_ledgeraccount_limits", args=[acme.pk])
    assert operator.get(url).status_code == 200
    response = operator.post(url, {"credit_limit": "250.00", "low_balance_threshold": "400.00"})
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.credit_limit, acme.low_balance_threshold, acme.low_balance_notified) == (
        D("250.00"),
        D("400.00"),
        True,  # 350.00 available is under 400.00: told at once
    )
    assert [e["available"] for e in low_events()] == ["350.00"]
    operator.post(url, {"credit_limit": "0.00", "low_balance_threshold": ""})
    acme.refresh_from_db()
    assert (acme.credit_limit, acme.low_balance_threshold, acme.low_balance_notified) == (D("0.00"), None, False)
    # A seller's payable has no limits.
    book("sal_1", "30.00", "24.00")
    payable = account("seller", "seller_payable")
    assert operator.get(reverse("admin:billing_ledgeraccount_limits", args=[payable.pk])).status_code == 404


def test_the_account_list_offers_the_operations_and_actions(market: None, operator: Client):
    book("sal_1", "30.00", "24.00")
    changelist = reverse("admin:billing_ledgeraccount_changelist")
    page = operator.get(changelist).content.decode()
    assert "Record a top-up" in page and "Record a payout" in page and "Limits" in page and "Pay out" in page
    acme = account("acme", "buyer_balance")
    payable = account("seller", "seller_payable")
    response = operator.post(changelist, {"action": "record_topup", "_selected_action": [acme.pk]})
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:billing_ledgeraccount_topup')}?organization={org('acme').pk}"
    response = operator.post(changelist, {"action": "record_payout", "_selected_action": [payable.pk]})
    assert response["Location"] == f"{reverse('admin:billing_ledgeraccount_payout')}?organization={org('seller').pk}"
    # The wrong kind of account: told, not redirected.
    response = operator.post(changelist, {"action": "record_payout", "_selected_action": [acme.pk]}, follow=True)
    assert "Select exactly one seller payable account." in response.content.decode()
    assert operator.get(reverse("admin:billing_ledgeraccount_change", args=[acme.pk])).status_code == 200


# --- concurrency (PostgreSQL: real connections from several threads) -----------------------------

on_postgres = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), reason="needs real concurrent connections"
)


def in_threads(n: int, work: Any) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads started together; each result or exception."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait()
            with market_scope():
                results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - collected for the test to check
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_never_spend_past_the_funds():
    load(buyer("acme", "30.00", balance="35.00"))
    acme = org("acme").pk
    results = in_threads(10, lambda i: funds_hold(organization_id=acme, amount=D("10.00")))
    assert sum(r is None for r in results) == 3
    assert all(isinstance(r, FundsRefused) for r in results if r is not None)
    assert (money()["acme"], money()["acme_held"]) == (D("35.00"), D("30.00"))


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sales_send_balance_low_once():
    load(buyer("acme", "30.00", balance="100.00"))
    low_balance_threshold_set(organization=org("acme"), threshold=D("50.00"))
    acme, seller = org("acme"), org("seller")

    def sale(i: int) -> LedgerTransaction:
        with transaction.atomic():
            funds_hold(organization_id=acme.pk, amount=D("10.00"))
            return sale_book(
                sale_public_id=f"sal_{i}", buyer=acme, seller=seller, price=D("10.00"), payout=D("8.00"), memo=""
            )

    results = in_threads(8, sale)
    assert all(isinstance(r, LedgerTransaction) for r in results), results
    assert money()["acme"] == D("20.00")
    assert money()["acme_held"] == D("0.00")
    assert len(low_events()) == 1
    ledger_is_consistent()


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_a_topup_retried_concurrently_books_once():
    load(buyer("acme", "30.00", balance="100.00"))
    acme = org("acme")
    results = in_threads(
        6,
        lambda i: topup_record(organization=acme, amount=D("25.00"), reference="W-1", idempotency_key="t-race"),
    )
    assert len({r.pk for r in results}) == 1, results
    assert money()["acme"] == D("125.00")
    ledger_is_consistent()


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_payouts_never_pay_more_than_is_owed():
    load(buyer("acme", "30.00", balance="100.00"))
    book("sal_1", "30.00", "24.00")  # owed 24.00
    seller = org("seller")
    results = in_threads(
        5,
        lambda i: payout_record(
            seller=seller,
            amount=D("10.00"),
            period_start=date(2026, 10, 1),
            period_end=date(2026, 10, 31),
            reference=f"ACH-{i}",
            idempotency_key=f"p-{i}",
        ),
    )
    assert sum(isinstance(r, LedgerTransaction) for r in results) == 2
    assert sum(isinstance(r, PayoutRefused) for r in results) == 3
    assert money()["seller"] == D("4.00")
    ledger_is_consistent()
