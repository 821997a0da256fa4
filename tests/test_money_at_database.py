"""Money at the database (PostgreSQL triggers, django-pgtrigger): a ledger entry can be neither
changed nor deleted, an unbalanced ledger transaction fails at commit, a consent record changes only
by erasure — even from raw SQL. And under concurrency: 100 charges against funds worth 10 leads sell
10, a post replayed 50 times (one after another, and at once) books once."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from accounts.tenancy import market_scope
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction
from exchange.models import Sale
from leads.models import ConsentRecord
from leads.privacy import consent_erase
from leads.services import leads_pii_purge
from tests.exchange.builder import CONSENT, buyer, client, lead_body, load, ping, post_body, run_at_once, sell
from tests.ledger import ledger_is_consistent

pytestmark = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), reason="PostgreSQL's triggers"
)
REFUSED = DatabaseError  # pgtrigger.Protect raises P0001 (a ProgrammingError), ours integrity errors


def _sql(statement: str, params: list[object] | None = None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def _a_sale() -> tuple[int, int]:
    """Sell one lead; its ledger entry and its consent record's ids."""
    load(buyer("a", "30.00"))
    answer = sell(0)
    assert answer["status"] == "sold", answer
    with market_scope():
        entry = LedgerEntry.objects.filter(transaction__kind="sale").order_by("id").first()
        consent = ConsentRecord.objects.get(lead__public_id=answer["lead_id"])
    assert entry is not None
    return entry.pk, consent.pk


@pytest.mark.django_db
def test_a_posted_ledger_entry_can_be_neither_updated_nor_deleted_by_raw_sql() -> None:
    entry_id, _ = _a_sale()
    for statement in (
        "UPDATE billing_ledgerentry SET amount = amount + 1 WHERE id = %s",
        "UPDATE billing_ledgerentry SET created_at = now() WHERE id = %s",
        "DELETE FROM billing_ledgerentry WHERE id = %s",
    ):
        with pytest.raises(REFUSED, match="Cannot update or delete rows"):
            _sql(statement, [entry_id])
    with market_scope():
        assert LedgerEntry.objects.filter(pk=entry_id).exists()
    ledger_is_consistent()


@pytest.mark.django_db(transaction=True)
def test_an_unbalanced_ledger_transaction_fails_at_commit_and_a_balanced_one_commits() -> None:
    load(buyer("a", "30.00"))
    with market_scope():
        accounts = list(LedgerAccount.objects.order_by("id").values_list("id", flat=True)[:2])
    insert_transaction = (
        "INSERT INTO billing_ledgertransaction (kind, idempotency_key, memo, reference, created_at)"
        " VALUES ('adjustment', %s, '', '', now()) RETURNING id"
    )
    insert_entry = (
        "INSERT INTO billing_ledgerentry (transaction_id, account_id, amount, created_at) VALUES (%s, %s, %s, now())"
    )

    with pytest.raises(IntegrityError, match="unbalanced"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(insert_transaction, ["raw:unbalanced"])
        (booked,) = cursor.fetchone()
        cursor.execute(insert_entry, [booked, accounts[0], "10.00"])
        cursor.execute(insert_entry, [booked, accounts[1], "-9.99"])
    assert not LedgerTransaction.objects.filter(idempotency_key="raw:unbalanced").exists()

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(insert_transaction, ["raw:balanced"])
        (booked,) = cursor.fetchone()
        cursor.execute(insert_entry, [booked, accounts[0], "10.00"])
        cursor.execute(insert_entry, [booked, accounts[1], "-10.00"])
    with market_scope():
        assert LedgerEntry.objects.filter(transaction__idempotency_key="raw:balanced").count() == 2


@pytest.mark.django_db
def test_a_consent_record_refuses_raw_changes_and_deletion() -> None:
    _, consent_id = _a_sale()
    for statement in (
        "UPDATE consent SET text = 'I agreed to nothing' WHERE id = %s",
        "UPDATE consent SET captured_at = now() WHERE id = %s",
        "UPDATE consent SET ip = '198.51.100.1' WHERE id = %s",
        "UPDATE consent SET user_agent = 'forged' WHERE id = %s",
        "UPDATE consent SET page_url = 'https://elsewhere.example/' WHERE id = %s",
        'UPDATE consent SET raw = raw || \'{"text": "forged"}\' WHERE id = %s',
        'UPDATE consent SET raw = raw || \'{"ip": "198.51.100.1"}\' WHERE id = %s',
    ):
        with pytest.raises(REFUSED, match="consent record .* is immutable"):
            _sql(statement.replace("consent", "leads_consentrecord", 1), [consent_id])
    with pytest.raises(REFUSED, match="Cannot delete rows"):
        _sql("DELETE FROM leads_consentrecord WHERE id = %s", [consent_id])
    with market_scope():
        consent = ConsentRecord.objects.get(pk=consent_id)
    assert consent.text == "I agree to be contacted." and str(consent.ip) == "203.0.113.9"


@pytest.mark.django_db
def test_erasure_and_the_pii_purge_still_blank_a_consent_record() -> None:
    load(buyer("a", "30.00"))
    page = "https://form.example/quote?email=consumer0@example.com"
    body = {**lead_body(0), "consent": {**CONSENT, "page_url": page, "user_agent": "Mozilla/5.0"}}
    erased, purged = client().post("/api/v1/leads", body, format="json").json(), sell(1)
    assert erased["status"] == "sold", erased
    with market_scope():
        first = ConsentRecord.objects.get(lead__public_id=erased["lead_id"])
        assert (first.page_url, first.raw["page_url"]) == (page, page)
        now = timezone.now()
        consent_erase(consent=first, now=now)
        second = ConsentRecord.objects.get(lead__public_id=purged["lead_id"])
        assert leads_pii_purge(lead_ids=[second.lead_id]) == 1
        first.refresh_from_db()
        second.refresh_from_db()
    assert (first.ip, first.user_agent, first.erased_at) == (None, "", now)
    assert first.raw["ip"] is None and first.text == "I agree to be contacted."
    assert first.page_url == first.raw["page_url"] == "https://form.example/quote"
    assert (second.ip, second.user_agent) == (None, "") and "ip" not in second.raw
    # Erased once: erased_at does not move again.
    with pytest.raises(REFUSED, match="immutable"):
        _sql("UPDATE leads_consentrecord SET erased_at = now() WHERE id = %s", [first.pk])


# --- under concurrency (real connections, as tests/exchange/test_concurrency.py) -----------------


@pytest.mark.django_db(transaction=True)
def test_a_hundred_charges_at_once_against_funds_for_ten_leads_sell_exactly_ten() -> None:
    load(buyer("a", "30.00", balance="300.00"), reauction_cycles=0)
    pings = [ping(n) for n in range(100)]
    assert all(p["status"] == "accepted" for p in pings)
    posts = [
        (lambda n=n, p=p: client().post("/api/v1/post", post_body(p["ping_id"], n), format="json").json())
        for n, p in enumerate(pings)
    ]
    # 100 posts released together on 40 connections (the server's connections are shared).
    results = run_at_once([lambda chunk=chunk: [call() for call in chunk] for chunk in _chunks(posts, 40)])
    statuses = sorted(r["status"] for chunk in results for r in chunk)
    assert statuses == ["sold"] * 10 + ["unsold"] * 90
    with market_scope():
        account = LedgerAccount.objects.get(organization__slug="a", kind="buyer_balance")
        assert Sale.objects.filter(status="sold").count() == 10
    assert (account.balance, account.held, account.available) == (Decimal("0.00"), Decimal("0.00"), Decimal("0.00"))
    ledger_is_consistent(settled=True)


def _chunks(calls: list, n: int) -> list[list]:
    return [calls[i::n] for i in range(n)]


def _books_once(lead_id: str) -> None:
    with market_scope():
        assert Sale.objects.filter(lead__public_id=lead_id).count() == 1
        assert LedgerTransaction.objects.filter(kind="sale").count() == 1
    ledger_is_consistent(settled=True)


@pytest.mark.django_db(transaction=True)
def test_a_post_replayed_fifty_times_in_a_row_books_once() -> None:
    load(buyer("a", "30.00"))
    pinged = ping(0)
    body = post_body(pinged["ping_id"], 0)
    answers = [
        client().post("/api/v1/post", body, format="json", HTTP_IDEMPOTENCY_KEY="replay-1") for _ in range(25)
    ] + [client().post("/api/v1/post", body, format="json") for _ in range(25)]
    first = answers[0].json()
    assert first["status"] == "sold"
    assert all(a.status_code == 200 and a.json() == first for a in answers[:25])
    assert {(a.status_code, a.json()["error"]["code"]) for a in answers[25:]} == {(409, "ping_already_posted")}
    _books_once(first["lead_id"])


@pytest.mark.django_db(transaction=True)
def test_a_post_replayed_fifty_times_at_once_books_once() -> None:
    load(buyer("a", "30.00"))
    pinged = ping(0)
    body = post_body(pinged["ping_id"], 0)
    responses = run_at_once(
        [(lambda: client().post("/api/v1/post", body, format="json", HTTP_IDEMPOTENCY_KEY="replay-2"))] * 25
        + [(lambda: client().post("/api/v1/post", body, format="json"))] * 25
    )
    sold = [r.json() for r in responses if r.status_code == 200]
    assert sold and all(s["status"] == "sold" and s == sold[0] for s in sold)
    assert {r.status_code for r in responses} <= {200, 409}
    _books_once(sold[0]["lead_id"])
