"""Monthly statements and the portal's money pages: exact figures across month boundaries in the
organization's time zone, HTML / CSV / PDF, and tenant isolation.

The ledger, booked through the real services and then dated (a statement is about when things
were booked). Acme buys in America/New_York; the seller keeps UTC. Every sale pays the seller
80 % (rounded down) and the exchange the rest.

    when (UTC)             Acme's local time          what                   Acme's balance
    2026-09-15 12:00       Sep 15 08:00 EDT           top-up 1000.00 W-0915  1000.00
    2026-10-01 03:30       Sep 30 23:30 EDT           sale 30.00 (sal_a)      970.00  ← Sep (Acme), Oct (seller)
    2026-10-01 04:30       Oct  1 00:30 EDT           sale 30.00 (sal_b)      940.00
    2026-10-15 16:00       Oct 15 12:00 EDT           top-up 200.00 W-1015   1140.00
    2026-11-01 03:59       Oct 31 23:59 EDT           sale 10.01 (sal_c)     1129.99  ← Oct (Acme), Nov (seller)
    2026-11-01 04:00       Nov  1 00:00 EDT           sale 30.00 (sal_d)     1099.99
    2026-11-10 15:00       —                          payout 50.00 ACH-1 (seller)
    2026-12-01 04:30       Nov 30 23:30 EST           sale 5.00 (sal_e)      1094.99  ← after DST ends: November
    2026-12-01 05:00       Dec  1 00:00 EST           sale 5.00 (sal_f)      1089.99
"""

from __future__ import annotations

import csv
import io
import re
import zlib
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.test import Client

from accounts.models import Organization
from accounts.services import membership_set, user_upsert
from accounts.tenancy import market_scope, tenant_scope
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction
from billing.services import payout_record, topup_record
from billing.statements import (
    StatementMonthError,
    month_bounds,
    month_default,
    month_parse,
    statement_build,
    statement_csv,
    statement_pdf,
)
from tests.exchange.builder import buyer, load, org
from tests.ledger import book, ledger_tampering
from tests.sessions import PASSWORD, member

pytestmark = pytest.mark.django_db

D = Decimal


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def dated(booked: LedgerTransaction, when: datetime) -> LedgerTransaction:
    """Set when a booking happened (tests only: the ledger itself is never edited)."""
    with market_scope(), ledger_tampering():
        LedgerTransaction.objects.filter(pk=booked.pk).update(created_at=when)
        LedgerEntry.objects.filter(transaction=booked).update(created_at=when)
    return booked


def sale(sale_id: str, price: str, payout: str, when: datetime) -> None:
    dated(book(sale_id, price, payout), when)


@pytest.fixture
def ledger() -> None:
    load(
        {**buyer("acme", "30.00", balance="0.00"), "timezone": "America/New_York"},
        buyer("bravo", "20.00", balance="75.00"),
    )
    acme = org("acme")
    dated(
        topup_record(organization=acme, amount=D("1000.00"), reference="W-0915", idempotency_key="t1"),
        utc(2026, 9, 15, 12),
    )
    sale("sal_a", "30.00", "24.00", utc(2026, 10, 1, 3, 30))
    sale("sal_b", "30.00", "24.00", utc(2026, 10, 1, 4, 30))
    dated(
        topup_record(organization=acme, amount=D("200.00"), reference="W-1015", memo="wire", idempotency_key="t2"),
        utc(2026, 10, 15, 16),
    )
    sale("sal_c", "10.01", "8.00", utc(2026, 11, 1, 3, 59))
    sale("sal_d", "30.00", "24.00", utc(2026, 11, 1, 4))
    dated(
        payout_record(
            seller=org("seller"),
            amount=D("50.00"),
            period_start=date(2026, 10, 1),
            period_end=date(2026, 10, 31),
            reference="ACH-1",
            idempotency_key="p1",
        ),
        utc(2026, 11, 10, 15),
    )
    sale("sal_e", "5.00", "4.00", utc(2026, 12, 1, 4, 30))
    sale("sal_f", "5.00", "4.00", utc(2026, 12, 1, 5))


def lines(account: Any) -> list[tuple[str, str, str, str, str]]:
    return [
        (f"{line.at:%Y-%m-%d %H:%M %Z}", line.kind, line.reference, str(line.amount), str(line.balance))
        for line in account.lines
    ]


def build(slug: str, year: int, month: int) -> Any:
    organization = org(slug)
    with tenant_scope(organization):
        return statement_build(organization=organization, month=date(year, month, 1), now=utc(2026, 12, 15))


# --- the statement --------------------------------------------------------------------------------


def test_month_bounds_are_midnight_in_the_organizations_time_zone(ledger: None):
    assert month_bounds(month=date(2026, 10, 1), organization=org("acme")) == (
        utc(2026, 10, 1, 4),  # EDT, UTC-4
        utc(2026, 11, 1, 4),
    )
    assert month_bounds(month=date(2026, 11, 1), organization=org("acme")) == (
        utc(2026, 11, 1, 4),
        utc(2026, 12, 1, 5),  # EST, UTC-5: November is an hour longer
    )
    assert month_bounds(month=date(2026, 12, 1), organization=org("seller"))[0] == utc(2026, 12, 1)


def test_octobers_statement_for_a_buyer_in_new_york(ledger: None):
    statement = build("acme", 2026, 10)
    assert [a.kind for a in statement.accounts] == ["buyer_balance"]
    account = statement.accounts[0]
    assert account.opening == D("970.00")  # the 23:30 EDT sale of Sep 30 is September's
    assert lines(account) == [
        ("2026-10-01 00:30 EDT", "sale", "", "-30.00", "940.00"),
        ("2026-10-15 12:00 EDT", "topup", "W-1015", "200.00", "1140.00"),
        ("2026-10-31 23:59 EDT", "sale", "", "-10.01", "1129.99"),
    ]
    assert account.closing == D("1129.99")
    assert account.opening + sum(line.amount for line in account.lines) == account.closing
    assert (account.money_in, account.money_out) == (D("200.00"), D("-40.01"))
    assert account.lines[1].memo == "wire"
    assert statement.complete is True


def test_each_months_closing_is_the_next_months_opening(ledger: None):
    months = [build("acme", 2026, m).accounts[0] for m in (9, 10, 11, 12)]
    assert [(a.opening, a.closing) for a in months] == [
        (D("0.00"), D("970.00")),
        (D("970.00"), D("1129.99")),
        (D("1129.99"), D("1094.99")),
        (D("1094.99"), D("1089.99")),
    ]
    # November runs to midnight EST on Dec 1: the 23:30 EST sale is in it, the 00:00 one is not.
    assert lines(months[2]) == [
        ("2026-11-01 00:00 EDT", "sale", "", "-30.00", "1099.99"),
        ("2026-11-30 23:30 EST", "sale", "", "-5.00", "1094.99"),
    ]
    with market_scope():
        assert LedgerAccount.objects.get(organization__slug="acme", kind="buyer_balance").balance == D("1089.99")


def test_the_sellers_statement_follows_its_own_time_zone(ledger: None):
    october, november = build("seller", 2026, 10).accounts[0], build("seller", 2026, 11).accounts[0]
    assert (october.kind, october.opening, october.closing) == ("seller_payable", D("0.00"), D("48.00"))
    assert lines(october) == [
        ("2026-10-01 03:30 UTC", "sale", "", "24.00", "24.00"),
        ("2026-10-01 04:30 UTC", "sale", "", "24.00", "48.00"),
    ]
    assert lines(november) == [
        ("2026-11-01 03:59 UTC", "sale", "", "8.00", "56.00"),
        ("2026-11-01 04:00 UTC", "sale", "", "24.00", "80.00"),
        ("2026-11-10 15:00 UTC", "payout", "ACH-1", "-50.00", "30.00"),
    ]
    assert november.lines[2].memo == "Payout for 2026-10-01 to 2026-10-31"
    assert november.closing == D("30.00")


def test_an_organization_with_both_roles_gets_both_accounts(db: None):
    with time_machine.travel(utc(2026, 11, 20, 12), tick=False):  # the opening balance is booked in November
        load({**buyer("both", "10.00", balance="40.00"), "roles": ["buyer", "seller"]})
    statement = build("both", 2026, 11)
    assert [(a.kind, a.opening, a.closing) for a in statement.accounts] == [("buyer_balance", D("0.00"), D("40.00"))]


def test_month_parse():
    acme = Organization(slug="x", timezone="America/New_York", created_at=utc(2026, 1, 1))
    now = utc(2026, 11, 1, 3)  # still October in New York
    assert month_default(organization=acme, now=now) == date(2026, 10, 1)  # the current month, to date
    assert month_parse("", organization=acme, now=now) == date(2026, 10, 1)
    assert month_parse("2026-10", organization=acme, now=now) == date(2026, 10, 1)
    for bad in ("2026-11", "2026-13", "26-10", "october", "1999-12"):
        with pytest.raises(StatementMonthError):
            month_parse(bad, organization=acme, now=now)


# --- CSV and PDF ------------------------------------------------------------------------------------


def test_the_csv_has_the_opening_every_entry_and_the_closing(ledger: None):
    rows = list(csv.reader(io.StringIO(statement_csv(build("acme", 2026, 10)))))
    assert rows == [
        ["account", "date", "type", "description", "reference", "amount (USD)", "balance (USD)"],
        ["Prepaid balance", "2026-10-01T00:00:00-04:00", "opening", "Opening balance", "", "", "970.00"],
        ["Prepaid balance", "2026-10-01T00:30:00-04:00", "sale", "Sale sal_b", "", "-30.00", "940.00"],
        ["Prepaid balance", "2026-10-15T12:00:00-04:00", "topup", "wire", "W-1015", "200.00", "1140.00"],
        ["Prepaid balance", "2026-10-31T23:59:00-04:00", "sale", "Sale sal_c", "", "-10.01", "1129.99"],
        ["Prepaid balance", "2026-10-31", "closing", "Closing balance", "", "", "1129.99"],
    ]


def test_the_csv_does_not_let_a_spreadsheet_run_a_memo(db: None):
    load(buyer("acme", "30.00", balance="0.00"))
    topup_record(organization=org("acme"), amount=D("1.00"), reference="=cmd|' /C calc'!A0", idempotency_key="t")
    now = datetime.now(tz=UTC)
    with tenant_scope(org("acme")):
        statement = statement_build(organization=org("acme"), month=date(now.year, now.month, 1))
    row = list(csv.reader(io.StringIO(statement_csv(statement))))[2]
    assert row[4] == "'=cmd|' /C calc'!A0"
    assert row[5] == "1.00"


def pdf_text(content: bytes) -> str:
    """The text drawn by a PDF's (deflated) content streams."""
    text = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", content, re.S):
        try:
            text.append(zlib.decompress(stream).decode("latin-1"))
        except zlib.error:
            text.append(stream.decode("latin-1"))
    return "\n".join(text)


def test_the_pdf_shows_the_statement(ledger: None):
    content = statement_pdf(build("acme", 2026, 10))
    assert content.startswith(b"%PDF-")
    text = pdf_text(content)
    for expected in (
        "Statement for October 2026",
        "Acme",
        "Opening balance",
        "970.00",
        "W-1015",
        "Closing balance",
        "1129.99",
    ):
        assert expected in text, expected
    assert "-10.01" in text


def test_the_pdf_copes_with_characters_outside_latin_1(db: None):
    load({**buyer("acme", "30.00", balance="0.00"), "name": "Acme — Ünïcode 保险"})
    topup_record(organization=org("acme"), amount=D("1.00"), reference="W–1 “quoted” →", idempotency_key="t")
    now = datetime.now(tz=UTC)
    with tenant_scope(org("acme")):
        statement = statement_build(organization=org("acme"), month=date(now.year, now.month, 1), now=now)
    text = pdf_text(statement_pdf(statement))
    assert 'W-1 "quoted" ->' in text
    assert statement.complete is False


# --- the pages ------------------------------------------------------------------------------------


def test_the_statement_page_csv_and_pdf_downloads(ledger: None):
    c = member("a@acme.test", "acme", "analyst")
    page = c.get("/portal/billing/statements/?month=2026-10")
    assert page.status_code == 200
    html = page.content.decode()
    for expected in ("Statement for October 2026", "$970.00", "−$10.01", "$1,129.99", "W-1015", "2026-10-31 23:59"):
        assert expected in html, expected
    assert "Sale sal_a" not in html  # September's, for Acme
    download = c.get("/portal/billing/statements/?month=2026-10&format=csv")
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert download["Content-Disposition"] == 'attachment; filename="gavel-statement-acme-2026-10.csv"'
    assert download.content.decode().splitlines()[-1] == "Prepaid balance,2026-10-31,closing,Closing balance,,,1129.99"
    pdf = c.get("/portal/billing/statements/?month=2026-10&format=pdf")
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf["Content-Disposition"] == 'attachment; filename="gavel-statement-acme-2026-10.pdf"'
    assert "1129.99" in pdf_text(pdf.content)


def test_the_statement_page_opens_on_the_current_month_and_refuses_other_months(ledger: None):
    c = member("a@acme.test", "acme")
    # 02:30 UTC on 1 November is still October in New York (Acme's zone).
    with time_machine.travel(utc(2026, 11, 1, 2, 30), tick=False):
        page = c.get("/portal/billing/statements/")
        bad_month = c.get("/portal/billing/statements/?month=nope")
        future = c.get("/portal/billing/statements/?month=2999-01")
        unknown_format = c.get("/portal/billing/statements/?month=2026-10&format=xml")
        bad_download = c.get("/portal/billing/statements/?month=nope&format=csv")
        september = c.get("/portal/billing/statements/?month=2026-09")

    assert page.status_code == 200
    assert page.context["month"] == date(2026, 10, 1)
    assert date(2026, 9, 1) in page.context["months"]  # the first booking's month is offered
    html = page.content.decode()
    assert "month in progress" in html and "October 2026" in html
    assert '<a href="?month=2026-09">← September 2026</a>' in html and "?month=2026-11" not in html  # none after
    assert 'Date (<span class="tz">America/New_York</span>)' in html
    assert "Oct 1, 2026</time> to <time" in html and "Oct 31, 2026</time>, days in" in html
    # A month that cannot be read: said on the page, over the current month's statement.
    assert bad_month.status_code == 400 and bad_month.context["month"] == date(2026, 10, 1)
    said = "&#x27;nope&#x27; is not a month (use YYYY-MM). Showing the current month instead."
    assert said in bad_month.content.decode()
    assert future.status_code == 400 and "2999-01 has not started yet" in future.content.decode()
    assert unknown_format.status_code == bad_download.status_code == 404
    assert '<a href="?month=2026-10">October 2026 →</a>' in september.content.decode()


def test_the_balance_page_shows_funds_topups_and_transactions(ledger: None):
    c = member("a@acme.test", "acme", "analyst")
    page = c.get("/portal/billing/balance/")
    assert page.status_code == 200
    html = page.content.decode()
    for expected in ("$1,089.99", "W-0915", "W-1015", "wire", "Sale sal_f", "−$5.00", "$1,094.99"):
        assert expected in html, expected
    assert [e.transaction.reference for e in page.context["topups"]] == ["W-1015", "W-0915"]
    # Each row's balance after it, newest first.
    assert [e.balance_after for e in page.context["page"]][:3] == [D("1089.99"), D("1094.99"), D("1099.99")]
    assert '<th class="num">Balance after</th>' in html
    assert "Low-balance alert below" in html
    assert 'name="low_balance_threshold"' not in html  # an analyst cannot change it


def test_a_manager_sets_the_alert_threshold_and_an_analyst_cannot(ledger: None):
    analyst = member("a@acme.test", "acme", "analyst")
    assert analyst.post("/portal/billing/balance/", {"low_balance_threshold": "5000.00"}).status_code == 403
    with market_scope():
        account = LedgerAccount.objects.get(organization__slug="acme", kind="buyer_balance")
    assert account.low_balance_threshold is None
    manager = member("m@acme.test", "acme", "manager")
    assert manager.post("/portal/billing/balance/", {"low_balance_threshold": "-1"}).status_code == 400
    response = manager.post("/portal/billing/balance/", {"low_balance_threshold": "5000.00"}, follow=True)
    assert "You will be told (balance.low) when available funds fall below $5,000.00." in response.content.decode()
    account.refresh_from_db()
    assert (account.low_balance_threshold, account.low_balance_notified) == (D("5000.00"), True)


def test_the_payouts_page_shows_what_the_seller_is_owed_and_was_paid(ledger: None):
    c = member("s@seller.test", "seller")
    page = c.get("/portal/billing/payouts/")
    assert page.status_code == 200
    summary = page.context["summary"]
    assert (summary.owed, summary.earned, summary.paid, summary.returned) == (
        D("38.00"),
        D("88.00"),
        D("50.00"),
        D("0.00"),
    )
    html = page.content.decode()
    for expected in ("$38.00", "$88.00", "$50.00", "ACH-1", "Payout for 2026-10-01 to 2026-10-31"):
        assert expected in html, expected
    assert '<th class="num">Owed after</th>' in html


def test_billing_home_sends_each_role_to_its_page(ledger: None):
    assert member("a@acme.test", "acme").get("/portal/billing/")["Location"] == "/portal/billing/balance/"
    assert member("s@seller.test", "seller").get("/portal/billing/")["Location"] == "/portal/billing/payouts/"
    nav = member("a2@acme.test", "acme").get("/portal/").content.decode()
    assert 'href="/portal/billing/balance/"' in nav and 'href="/portal/billing/statements/"' in nav


# --- tenant isolation -----------------------------------------------------------------------------


def test_an_outsider_sees_only_its_own_money(ledger: None):
    bravo = member("b@bravo.test", "bravo")
    balance = bravo.get("/portal/billing/balance/").content.decode()
    assert "$75.00" in balance
    for secret in ("W-0915", "W-1015", "1089.99", "1,089.99", "sal_"):
        assert secret not in balance
    statement = bravo.get("/portal/billing/statements/?month=2026-10")
    assert statement.status_code == 200
    assert [a.kind for a in statement.context["statement"].accounts] == ["buyer_balance"]
    for fmt in ("", "&format=csv", "&format=pdf"):
        content = bravo.get(f"/portal/billing/statements/?month=2026-10{fmt}").content
        body = pdf_text(content) if fmt.endswith("pdf") else content.decode()
        for secret in ("W-1015", "1129.99", "1,129.99", "970.00", "sal_"):
            assert secret not in body, (fmt, secret)
    # A buyer has no payouts page; a seller no balance page: a page that says whom it is for.
    refused = bravo.get("/portal/billing/payouts/")
    assert refused.status_code == 403 and "This page is for sellers" in refused.content.decode()
    refused = member("s@seller.test", "seller").get("/portal/billing/balance/")
    assert refused.status_code == 403 and "This page is for buyers" in refused.content.decode()


def test_a_member_of_two_organizations_sees_the_current_ones_money(ledger: None):
    c = member("two@x.test", "bravo")
    membership_set(user=user_upsert(email="two@x.test"), organization=org("acme"), role="analyst")
    c.post("/portal/organization/", {"organization": org("bravo").pk})
    assert "W-1015" not in c.get("/portal/billing/balance/").content.decode()
    c.post("/portal/organization/", {"organization": org("acme").pk})
    assert "W-1015" in c.get("/portal/billing/balance/").content.decode()


def test_strangers_get_nothing(ledger: None):
    assert Client().get("/portal/billing/statements/?month=2026-10").status_code == 302  # to the login page
    lonely = Client()
    user_upsert(email="nobody@x.test", password=PASSWORD)
    assert lonely.login(username="nobody@x.test", password=PASSWORD)
    for url in (
        "/portal/billing/",
        "/portal/billing/balance/",
        "/portal/billing/payouts/",
        "/portal/billing/statements/",
    ):
        response = lonely.get(url)
        assert response.status_code == 403, url
        assert b"W-1015" not in response.content
