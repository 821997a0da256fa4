"""core.sql's model_insert and model_read: what save() and a queryset would write and read, on
whichever database the suite runs (PostgreSQL here; the demo's SQLite runs them in
tests/exchange/test_demo_traffic.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.tenancy import market_scope
from billing.models import LedgerTransaction
from core.sql import model_insert, model_read
from exchange.models import Ping
from exchange.webhooks.models import Event
from leads.models import Lead

pytestmark = pytest.mark.django_db


def test_an_inserted_row_is_what_save_would_have_written(market, orgs):
    acme = orgs["acme"]
    event = Event(
        organization_id=acme.pk, type="lead.sold", data={"lead_id": "led_x", "payout": "12.50", "n": [1, None]}
    )
    assert model_insert(event) == 1

    assert event.pk is not None and not event._state.adding
    assert event.public_id.startswith("evt_")  # the field's pre_save made its id
    with market_scope():
        stored = Event.objects.get(pk=event.pk)
    assert (stored.public_id, stored.type, stored.data) == (event.public_id, "lead.sold", event.data)
    assert stored.created_at == event.created_at  # the default, set in Python, stored as is


def test_several_rows_go_in_one_statement_and_each_gets_its_own_key(market, orgs, django_assert_num_queries):
    events = [Event(organization_id=orgs["acme"].pk, type="lead.sold", data={"i": i}) for i in range(3)]
    with django_assert_num_queries(1):
        assert model_insert(*events) == 3

    with market_scope():
        stored = {e.pk: e.data["i"] for e in Event.objects.filter(pk__in=[e.pk for e in events])}
    assert stored == {e.pk: i for i, e in enumerate(events)}


def test_a_conflicting_row_is_not_inserted_and_keeps_no_key(db):
    first = LedgerTransaction(kind="sale", idempotency_key="sale:sal_once", memo="first")
    again = LedgerTransaction(kind="sale", idempotency_key="sale:sal_once", memo="again")

    assert model_insert(first, ignore_conflicts=True) == 1
    assert model_insert(again, ignore_conflicts=True) == 0

    assert again.pk is None
    assert list(LedgerTransaction.objects.values_list("memo", flat=True)) == ["first"]
    with pytest.raises(ValueError, match="one instance"):
        model_insert(first, again, ignore_conflicts=True)


def test_a_row_read_is_the_instance_the_orm_reads(db):
    from tests.exchange.builder import buyer, load, ping

    load(buyer("a", "10.00"))
    answer = ping(1)
    with market_scope():
        orm = Ping.objects.get(public_id=answer["ping_id"])

    (raw,) = model_read(Ping, "organization_id = %s AND public_id = %s", [orm.organization_id, answer["ping_id"]])

    fields = [f.attname for f in Ping._meta.concrete_fields]
    assert {f: getattr(raw, f) for f in fields} == {f: getattr(orm, f) for f in fields}
    assert isinstance(raw.lead, dict) and raw.expires_at.tzinfo is not None and raw.waterfall
    assert not raw._state.adding
    assert model_read(Ping, "organization_id = %s AND public_id = %s", [orm.organization_id + 1, orm.public_id]) == []


def test_decimals_and_times_survive_the_round_trip(market, orgs):
    with market_scope():
        campaign = orgs["leadgen"].campaigns.get()
        lead = Lead.objects.create(
            organization=orgs["leadgen"],
            campaign=campaign,
            offer_id=campaign.offer_id,
            data={"state": "CA"},
            payout=Decimal("12.34"),
        )
    (read,) = model_read(Lead, "id = %s", [lead.pk])

    assert read.payout == Decimal("12.34") and read.created_at == lead.created_at
    assert read.created_at <= timezone.now()
