"""Ledger reconciliation: a clean ledger reports nothing; a corrupted cached balance, an
unbalanced transaction or a leaked hold is found, logged at ERROR and kept for the operator; a
retried run records once; the run never changes the ledger."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.services import user_upsert
from accounts.tenancy import market_scope
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction, ReconciliationRun
from billing.services import ledger_reconcile, payout_record, reconciliation_record, topup_record
from billing.tasks import ledger_reconcile_task
from exchange.celery import app
from tests.exchange.builder import buyer, load, org, sell
from tests.ledger import account, ledger_tampering
from tests.sessions import PASSWORD

pytestmark = pytest.mark.django_db

D = Decimal


def balances() -> dict[int, tuple[Decimal, Decimal]]:
    with market_scope():
        return {a.pk: (a.balance, a.held) for a in LedgerAccount.objects.all()}


@pytest.fixture
def ledger() -> None:
    """Two sales through the API, a top-up and a payout: every kind of booking but returns."""
    load(buyer("acme", "30.00", balance="100.00"), buyer("bravo", "20.00", balance="50.00"))
    for n in range(2):
        assert sell(n)["status"] == "sold"
    topup_record(organization=org("acme"), amount=D("40.00"), reference="W-1", idempotency_key="t-1")
    payout_record(
        seller=org("seller"),
        amount=D("10.00"),
        period_start=date(2026, 10, 1),
        period_end=date(2026, 10, 31),
        reference="ACH-1",
        idempotency_key="p-1",
    )


def raw_sql(sql: str, params: list[object]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_a_clean_ledger_reports_nothing(ledger: None):
    report = ledger_reconcile()
    assert report.clean
    assert (report.drifts, report.unbalanced, report.holds, report.problems()) == ([], [], [], [])
    # Acme, Bravo (buyer balances), the seller's payable, revenue and cash.
    assert report.accounts == 5
    assert report.transactions == 6  # two opening top-ups, two sales, a top-up, a payout


def test_a_corrupted_cached_balance_is_found(ledger: None):
    acme = account("acme", "buyer_balance")
    assert acme.balance == D("80.00")
    raw_sql("UPDATE billing_ledgeraccount SET balance = %s WHERE id = %s", [D("1080.00"), acme.pk])
    before = balances()
    report = ledger_reconcile()
    assert not report.clean
    assert [(d.account_id, d.cached, d.ledger, d.difference) for d in report.drifts] == [
        (acme.pk, D("1080.00"), D("80.00"), D("1000.00"))
    ]
    assert report.problems() == [
        f"balance drift on Acme · Buyer balance (#{acme.pk}): cached 1080.00, entries sum to 80.00 (off by 1000.00)"
    ]
    assert (report.unbalanced, report.holds) == ([], [])
    assert balances() == before  # found, not "fixed"


def test_an_unbalanced_transaction_is_found(ledger: None):
    cash = account(None, "cash")
    with market_scope():
        topup = LedgerTransaction.objects.get(idempotency_key="t-1")
        # An entry written behind the services' back: the transaction no longer sums to zero
        # and the cash account's cache no longer matches its entries.
        with ledger_tampering():
            LedgerEntry.objects.create(transaction=topup, account=cash, amount=D("-0.01"))
    report = ledger_reconcile()
    assert [(u.transaction_id, u.idempotency_key, u.total) for u in report.unbalanced] == [
        (topup.pk, "t-1", D("-0.01"))
    ]
    assert [(d.account_id, d.cached, d.ledger) for d in report.drifts] == [(cash.pk, D("-180.00"), D("-180.01"))]
    assert f"unbalanced transaction t-1 (#{topup.pk}): entries sum to -0.01" in report.problems()


def test_a_leaked_hold_is_found(ledger: None):
    bravo = account("bravo", "buyer_balance")
    raw_sql("UPDATE billing_ledgeraccount SET held = %s WHERE id = %s", [D("20.00"), bravo.pk])
    report = ledger_reconcile()
    assert [(h.account_id, h.held, h.reserved) for h in report.holds] == [(bravo.pk, D("20.00"), D("0.00"))]
    assert report.drifts == []


def test_the_task_logs_drift_at_error_and_keeps_the_run(ledger: None, caplog: pytest.LogCaptureFixture):
    acme = account("acme", "buyer_balance")
    raw_sql("UPDATE billing_ledgeraccount SET balance = balance + %s WHERE id = %s", [D("0.01"), acme.pk])
    with caplog.at_level(logging.INFO, logger="billing.services"):
        result = ledger_reconcile_task.apply(task_id="beat-1").get()
    assert result["clean"] is False
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"ledger reconciliation: balance drift on Acme · Buyer balance (#{acme.pk}): cached 80.01, "
        "entries sum to 80.00 (off by 0.01)",
        "ledger reconciliation found 1 problem(s) in 5 accounts, 6 transactions",
    ]
    run = ReconciliationRun.objects.get()
    assert (run.key, run.is_clean, run.accounts, run.transactions) == ("task:beat-1", False, 5, 6)
    assert run.problems == result["problems"]


def test_a_retried_run_records_once(ledger: None):
    ledger_reconcile_task.apply(task_id="beat-1")
    ledger_reconcile_task.apply(task_id="beat-1")  # the same message, redelivered
    assert ReconciliationRun.objects.filter(key="task:beat-1").count() == 1
    ledger_reconcile_task.apply(task_id="beat-2")
    assert ReconciliationRun.objects.count() == 2
    assert all(run.is_clean for run in ReconciliationRun.objects.all())


def test_a_clean_run_logs_at_info_only(ledger: None, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO, logger="billing.services"):
        ledger_reconcile_task.apply(task_id="beat-1")
    assert [r.levelno for r in caplog.records if r.name == "billing.services"] == [logging.INFO]


def test_old_clean_runs_are_dropped_and_drift_is_kept(ledger: None):
    long_ago = timezone.now() - timedelta(days=31)
    ReconciliationRun.objects.create(key="old-clean", checked_at=long_ago, is_clean=True)
    ReconciliationRun.objects.create(key="old-drift", checked_at=long_ago, is_clean=False, problems=["x"])
    reconciliation_record(ledger_reconcile(), key="now")
    assert sorted(ReconciliationRun.objects.values_list("key", flat=True)) == ["now", "old-drift"]


def test_the_task_runs_every_15_minutes():
    entry = app.conf.beat_schedule["billing.ledger_reconcile"]
    assert entry["task"] == "billing.ledger_reconcile"
    assert entry["schedule"] == 900


def test_the_command_exits_non_zero_on_drift(ledger: None, capsys: pytest.CaptureFixture[str]):
    call_command("ledger_reconcile")
    assert "ledger clean: 5 accounts, 6 transactions" in capsys.readouterr().out
    raw_sql(
        "UPDATE billing_ledgeraccount SET balance = balance - %s WHERE id = %s",
        [D("5.00"), account("seller", "seller_payable").pk],
    )
    with pytest.raises(CommandError, match="ledger drift: 1 problem"):
        call_command("ledger_reconcile")
    assert "balance drift on Seller · Seller payable" in capsys.readouterr().err
    assert ReconciliationRun.objects.filter(is_clean=False).count() == 1


def test_the_operator_reconciles_from_the_admin(ledger: None, operator_client: Client):
    c = operator_client
    changelist = reverse("admin:billing_reconciliationrun_changelist")
    assert "Reconcile now" in c.get(changelist).content.decode()
    raw_sql("UPDATE billing_ledgeraccount SET balance = 0 WHERE id = %s", [account("acme", "buyer_balance").pk])
    response = c.post(reverse("admin:billing_reconciliationrun_run"), follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Drift found: 1 problem(s)." in html
    assert "cached 0.00, entries sum to 80.00" in html
    assert "DRIFT (1)" in c.get(changelist).content.decode()
    # A member of a tenant is not an operator.
    outsider = Client()
    user_upsert(email="owner@acme.test", password=PASSWORD)
    assert outsider.login(username="owner@acme.test", password=PASSWORD)
    assert outsider.post(reverse("admin:billing_reconciliationrun_run")).status_code == 302
    assert ReconciliationRun.objects.count() == 1
