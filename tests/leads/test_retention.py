"""Retention: the personal data of leads older than GAVEL_PII_RETENTION_DAYS is purged by a beat
task; money, counts, statuses and ping fields stay; running it again changes nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core import serializers
from django.utils import timezone

from accounts.tenancy import market_scope
from billing.models import LedgerTransaction
from exchange.models import DeliveryAttempt, Ping, Sale
from exchange.services.retention import leads_pii_purge_older
from exchange.tasks import leads_pii_purge_task
from leads.crypto import pii_decrypt
from leads.models import ConsentRecord, Lead
from tests.exchange.builder import buyer, client, lead_body, load, person

pytestmark = pytest.mark.django_db

CONSENT = {
    "text": "I agree to be contacted.",
    "captured_at": "2026-11-22T10:00:00Z",
    "ip": "203.0.113.9",
    "user_agent": "Mozilla/5.0 (Retention Test)",
    "page_url": "https://seller.example.com/form",
}


def sell_full_lead(n: int) -> str:
    body = {**lead_body(n), "consent": CONSENT}
    answer = client().post("/api/v1/leads", body, format="json").json()
    assert answer["status"] == "sold", answer
    return answer["lead_id"]


def age(lead_id: str, days: int) -> None:
    with market_scope():
        Lead.objects.filter(public_id=lead_id).update(created_at=timezone.now() - timedelta(days=days))


def rows_of(lead_id: str) -> str:
    """Every row of the lead and of what refers to it, serialized as stored."""
    with market_scope():
        lead = Lead.objects.get(public_id=lead_id)
        rows = [
            lead,
            ConsentRecord.objects.get(lead=lead),
            *Sale.objects.filter(lead=lead),
            *DeliveryAttempt.objects.filter(sale__lead=lead),
            *Ping.objects.filter(posted_lead=lead),
        ]
        return serializers.serialize("json", rows) + json.dumps(pii_decrypt(lead.pii_encrypted))


@pytest.fixture
def market_with_delivery(db):
    # A buyer that takes delivery by webhook to an address nobody answers: the attempt is logged
    # (request, response) whatever comes back; a buyer without delivery buys the lead.
    load(
        buyer("hook", "30.00", delivery={"method": "webhook", "url": "http://127.0.0.1:9/deliver", "timeout_ms": 200}),
        buyer("plain", "20.00"),
    )


def test_old_leads_lose_their_personal_data_and_keep_everything_else(market_with_delivery):
    old, new = sell_full_lead(1), sell_full_lead(2)
    who = person(1)
    assert who["email"] in rows_of(old) or who["email_sha256"] in rows_of(old)
    age(old, 400)
    with market_scope():
        sale_before = Sale.objects.get(lead__public_id=old, status="sold")
        ledger_before = LedgerTransaction.objects.count()
        attempts = DeliveryAttempt.objects.filter(sale__lead__public_id=old).count()
    assert attempts == 1  # the webhook buyer's failed attempt, logged

    assert leads_pii_purge_task() == 1
    with market_scope():
        lead = Lead.objects.get(public_id=old)
        consent = ConsentRecord.objects.get(lead=lead)
        sale = Sale.objects.get(pk=sale_before.pk)
        attempt = DeliveryAttempt.objects.get(sale__lead=lead)
        assert LedgerTransaction.objects.count() == ledger_before
        kept = Lead.objects.get(public_id=new)
    assert pii_decrypt(lead.pii_encrypted) == {} and (lead.email_hash, lead.phone_hash) == ("", "")
    assert lead.pii_purged_at is not None
    assert (lead.status, lead.payout, lead.data) == (
        "sold",
        Decimal("16.00"),
        {"state": "CA", "zip": "94107", "age": 34},
    )
    assert (consent.ip, consent.user_agent) == (None, "")
    assert consent.text == "I agree to be contacted." and consent.page_url == CONSENT["page_url"]
    assert "ip" not in consent.raw and "user_agent" not in consent.raw and consent.raw["text"] == CONSENT["text"]
    assert (sale.status, sale.price, sale.payout, sale.email_hash) == ("sold", Decimal("20.00"), Decimal("16.00"), "")
    assert (attempt.request, attempt.response, attempt.outcome) == ({}, "", attempt.outcome)

    # The new lead keeps all of it.
    assert pii_decrypt(kept.pii_encrypted)["email"] == "consumer2@example.com" and kept.pii_purged_at is None

    # Nothing of the consumer is left in the purged lead's rows, in any form.
    stored = rows_of(old)
    for trace in (
        who["email"],
        who["phone"],
        who["email_sha256"],
        who["phone_sha256"],
        "203.0.113.9",
        "Retention Test",
    ):
        assert trace not in stored, trace
    assert "201" not in json.dumps(pii_decrypt(lead.pii_encrypted))

    # Again: nothing to do, nothing changes.
    assert leads_pii_purge_task() == 0
    assert rows_of(old) == stored


def test_the_purge_runs_in_batches_and_zero_days_keeps_everything(market_with_delivery, settings):
    ids = [sell_full_lead(n) for n in (1, 2, 3)]
    for lead_id in ids:
        age(lead_id, 30)
    settings.GAVEL_PII_RETENTION_DAYS = 0
    assert leads_pii_purge_task() == 0
    settings.GAVEL_PII_RETENTION_DAYS = 31
    assert leads_pii_purge_task() == 0  # 30 days old: within the retention
    assert leads_pii_purge_older(before=timezone.now() - timedelta(days=29), batch=2, max_batches=1) == 2
    assert leads_pii_purge_older(before=timezone.now() - timedelta(days=29), batch=2) == 1
    with market_scope():
        assert Lead.objects.filter(pii_purged_at__isnull=True).count() == 0


def test_the_purge_is_on_the_beat_schedule():
    assert settings.CELERY_BEAT_SCHEDULE["exchange.leads_pii_purge"]["task"] == "exchange.leads_pii_purge"
