"""The quality score: each signal's exact points, the minimums at ping and post, velocity across
sellers, disposable email, ZIP-state mismatch, the source's rates (leads/scoring.py, docs/auction.md)."""

from __future__ import annotations

import time

import pytest

from accounts.tenancy import market_scope
from contracts.models import Campaign
from core.schema import FieldSpec
from exchange.models import Ping, Sale
from exchange.services.quality import campaign_rates_refresh
from exchange.velocity import consumer_keys, other_sellers_seen
from leads.models import Lead
from leads.scoring import (
    SourceRates,
    email_kind,
    name_is_sane,
    phone_kind,
    ping_signals,
    post_signals,
    score_of,
)
from tests.exchange.builder import (
    SELLER2_KEY,
    buyer,
    client,
    lead_body,
    load,
    ping,
    ping_body,
    post,
    sell,
)

FIELDS = {
    s.name: s
    for s in (
        FieldSpec(name="state", type="state", ping="required", required=True),
        FieldSpec(name="zip", type="zip", ping="required", required=True),
        FieldSpec(name="age", type="integer", ping="optional"),
        FieldSpec(name="homeowner", type="boolean", ping="optional"),
        FieldSpec(name="credit", type="choice", ping="optional", choices=("good", "fair", "poor")),
        FieldSpec(name="email", type="email", pii=True),
        FieldSpec(name="phone", type="phone", pii=True),
        FieldSpec(name="first_name", type="string", pii=True),
        FieldSpec(name="last_name", type="string", pii=True),
    )
}
TF = {"trusted_form_cert_url": "https://cert.trustedform.com/abc"}


# --- each signal's points -------------------------------------------------------------------------


def test_a_bare_ping_with_a_matching_zip():
    signals = ping_signals(lead={"state": "CA", "zip": "94107"}, fields=FIELDS, consent=None)
    assert signals == {"base": 50, "completeness": 0, "zip_state": 5}
    assert score_of(signals) == 55


@pytest.mark.parametrize(("present", "points"), [(0, 0), (1, 3), (2, 7), (3, 10)])
def test_completeness_is_ten_times_the_share_of_optional_fields_rounded_half_up(present, points):
    optional = dict(list({"age": 30, "homeowner": True, "credit": "good"}.items())[:present])
    signals = ping_signals(lead={"state": "CA", "zip": "94107", **optional}, fields=FIELDS, consent=None)
    assert signals["completeness"] == points


def test_zip_in_another_state_costs_20_and_an_unknown_zip_or_no_state_counts_nothing():
    assert ping_signals(lead={"state": "NY", "zip": "94107"}, fields=FIELDS, consent=None)["zip_state"] == -20
    assert ping_signals(lead={"state": "ny", "zip": "10001"}, fields=FIELDS, consent=None)["zip_state"] == 5
    assert "zip_state" not in ping_signals(lead={"state": "CA", "zip": "00000"}, fields=FIELDS, consent=None)
    assert "zip_state" not in ping_signals(lead={"zip": "94107"}, fields=FIELDS, consent=None)


def test_consent_proofs_trusted_form_10_jornaya_5_blank_nothing():
    both = ping_signals(lead={}, fields=FIELDS, consent={**TF, "jornaya_leadid": "LEADID-1"})
    assert (both["trusted_form"], both["jornaya"]) == (10, 5)
    blank = ping_signals(lead={}, fields=FIELDS, consent={"trusted_form_cert_url": " ", "jornaya_leadid": ""})
    assert "trusted_form" not in blank and "jornaya" not in blank


def test_source_rates_count_once_they_have_20_sales_and_are_capped():
    def signals(rates: SourceRates) -> dict[str, int]:
        return ping_signals(lead={}, fields=FIELDS, consent=None, rates=rates)

    assert "source_returns" not in signals(SourceRates(return_rate=0.5, sales=19))
    assert signals(SourceRates(return_rate=0.10, sales=20))["source_returns"] == -5
    assert signals(SourceRates(return_rate=0.90, sales=200))["source_returns"] == -15
    assert signals(SourceRates(reject_rate=0.25, deliveries=40))["source_rejects"] == -5
    assert signals(SourceRates(reject_rate=1.0, deliveries=40))["source_rejects"] == -10


@pytest.mark.parametrize(("others", "points"), [(1, -10), (2, -20), (3, -30), (7, -30)])
def test_velocity_costs_10_per_other_seller_at_most_30(others, points):
    assert ping_signals(lead={}, fields=FIELDS, consent=None, other_sellers=others)["velocity"] == points


def test_post_signals_phone_email_name_certificate():
    good = {"email": "jane@example.com", "phone": "+14155552671", "first_name": "Jane", "last_name": "O'Neil"}
    assert post_signals(values=good, fields=FIELDS) == {"phone": 8, "email": 5, "name": 5}
    assert post_signals(values=good, fields=FIELDS, certificate="verified")["certificate"] == 5
    assert post_signals(values=good, fields=FIELDS, certificate="invalid")["certificate"] == -25
    assert "certificate" not in post_signals(values=good, fields=FIELDS, certificate="unreachable")
    # A UK mobile is known as mobile (+10); a UK VoIP number as VoIP (-5).
    assert post_signals(values={"phone": "+447400123456"}, fields=FIELDS)["phone"] == 10
    assert post_signals(values={"phone": "+445600123456"}, fields=FIELDS)["phone"] == -5
    assert post_signals(values={"phone": "+1415555"}, fields=FIELDS)["phone"] == -20


def test_kinds():
    assert phone_kind("+12015550123") == "fixed_line_or_mobile"
    assert email_kind("x@mailinator.com") == "disposable"
    assert email_kind("x@sub.mailinator.com") == "disposable"
    assert email_kind("x@gmail.com") == "ok"
    assert email_kind("not an email") == "invalid"


@pytest.mark.parametrize(
    ("parts", "sane"),
    [
        (("Jane", "Doe"), True),
        (("Zoë", "Łukasiewicz"), True),
        (("Mary-Jo", "St. Clair"), True),
        (("", ""), False),
        (("test", "test"), False),
        (("Test", "Smith"), False),
        (("Jane2", "Doe"), False),
        (("asdf", "Doe"), False),
        (("Jaaane", "Doe"), False),
        (("Jane", "Qwrtz"), False),
    ],
)
def test_name_sanity(parts, sane):
    assert name_is_sane(*parts) is sane


def test_the_score_is_kept_within_0_and_100():
    assert score_of({"base": 50, "a": 80}) == 100
    assert score_of({"base": 50, "a": -90}) == 0


def test_scoring_a_ping_takes_microseconds():
    lead = {"state": "CA", "zip": "94107", "age": 30}
    ping_signals(lead=lead, fields=FIELDS, consent=TF)  # the offline data is loaded once
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        score_of(ping_signals(lead=lead, fields=FIELDS, consent=TF, rates=SourceRates(0.1, 50, 0.1, 50)))
    per_ping_us = (time.perf_counter() - started) / runs * 1e6
    assert per_ping_us < 200  # measured about 5 µs; generous for a loaded machine


# --- through the exchange -------------------------------------------------------------------------


def stored_ping(public_id: str) -> Ping:
    with market_scope():
        return Ping.objects.get(public_id=public_id)


@pytest.mark.django_db
def test_the_ping_stores_its_signals_and_the_lead_adds_the_posts():
    load(buyer("a", "10.00"))
    answer = ping(1)
    stored = stored_ping(answer["ping_id"])
    assert stored.quality_signals == {"base": 50, "completeness": 10, "zip_state": 5}
    assert stored.quality_score == 65
    sold = post(answer["ping_id"], 1)
    with market_scope():
        lead = Lead.objects.get(public_id=sold["lead_id"])
    # consumer1@example.com, a fictional US number (+8), "Jane".
    assert lead.quality_signals == {**stored.quality_signals, "phone": 8, "email": 5, "name": 5}
    assert lead.quality_score == 83


@pytest.mark.django_db
def test_a_zip_in_another_state_falls_under_the_offers_minimum():
    load(buyer("a", "10.00"), min_score=50)
    assert ping(2, state="CA")["status"] == "accepted"
    answer = ping(3, state="NY")  # 94107 is San Francisco: 50 + 10 - 20 = 40
    assert (answer["status"], answer["reason"]) == ("rejected", "below_min_score")
    assert stored_ping(answer["ping_id"]).quality_signals["zip_state"] == -20


@pytest.mark.django_db
def test_a_contracts_minimum_leaves_it_out_of_the_auction():
    load(buyer("picky", "20.00", min_score=70), buyer("easy", "5.00"))
    answer = ping(4)
    stored = stored_ping(answer["ping_id"])
    assert {s["contract"]: s["reason"] for s in stored.waterfall} == {"ctr_picky": "below_min_score", "ctr_easy": "won"}


@pytest.mark.django_db
def test_a_disposable_email_takes_the_lead_under_the_offers_minimum_at_the_post():
    load(buyer("a", "10.00"), min_score=60)
    answer = client().post("/api/v1/leads", lead_body(5, email="jane@mailinator.com"), format="json").json()
    assert (answer["status"], answer["reason"]) == ("rejected", "below_min_score")
    with market_scope():
        lead = Lead.objects.get(public_id=answer["lead_id"])
    assert lead.quality_signals["email"] == -20
    assert lead.quality_score == 50 + 10 + 5 + 8 - 20 + 5


@pytest.mark.django_db
def test_a_contract_whose_minimum_the_posted_lead_misses_hands_it_to_the_next_bid():
    # Both bid on the ping (65); the test name takes the lead to 65 + 8 + 5 - 15 = 63 at the post.
    load(buyer("picky", "20.00", min_score=65), buyer("easy", "5.00"), distribution="exclusive")
    answer = ping(6)
    assert answer["status"] == "accepted"
    sold = post(answer["ping_id"], 6, first_name="Test")
    assert sold["status"] == "sold"
    with market_scope():
        lead = Lead.objects.get(public_id=sold["lead_id"])
        buyers = list(lead.sales.values_list("organization__slug", flat=True))
    assert lead.quality_score == 63
    assert buyers == ["easy"]


@pytest.mark.django_db
def test_the_same_consumer_from_another_seller_within_the_hour_costs_velocity_points():
    load(buyer("a", "10.00"))
    first = ping(7)
    again_same_seller = ping(7, age=35)
    other_seller = client(SELLER2_KEY).post("/api/v1/ping", ping_body(7, campaign="cmp_seller2"), format="json")
    signals = [
        stored_ping(p).quality_signals
        for p in (first["ping_id"], again_same_seller["ping_id"], other_seller.json()["ping_id"])
    ]
    assert [s.get("velocity") for s in signals] == [None, None, -10]
    # The first seller, pinging again, now sees the second.
    assert stored_ping(ping(7, age=36)["ping_id"]).quality_signals["velocity"] == -10


@pytest.mark.django_db
def test_velocity_forgets_after_an_hour_and_counts_ip_too():
    keys = consumer_keys(email_hash="", phone_hash="", ip="203.0.113.7")
    assert other_sellers_seen(keys, seller_id=1, now=1000.0) == 0
    assert other_sellers_seen(keys, seller_id=2, now=1100.0) == 1
    assert other_sellers_seen(keys, seller_id=3, now=1000.0 + 3599) == 2
    assert other_sellers_seen(keys, seller_id=3, now=1100.0 + 3601) == 0  # 1 and 2 are over an hour old


@pytest.mark.django_db
def test_test_pings_are_not_recorded_for_velocity():
    load(buyer("a", "10.00"))
    client().post("/api/v1/ping", {**ping_body(8), "test": True}, format="json")
    other = client(SELLER2_KEY).post("/api/v1/ping", ping_body(8, campaign="cmp_seller2"), format="json").json()
    assert "velocity" not in stored_ping(other["ping_id"]).quality_signals


@pytest.mark.django_db
def test_the_sources_return_rate_is_refreshed_into_the_book_and_scored():
    load(buyer("a", "10.00"))
    for n in range(20):
        assert sell(100 + n)["status"] == "sold"
    with market_scope():
        returned = list(Sale.objects.filter(campaign__public_id="cmp_seller").order_by("pk")[:4])
        Sale.objects.filter(pk__in=[s.pk for s in returned]).update(status=Sale.Status.RETURNED)
    assert campaign_rates_refresh() == 1
    with market_scope():
        campaign = Campaign.objects.get(public_id="cmp_seller")
    assert (campaign.return_rate, campaign.rate_sales) == (0.2, 20)
    assert campaign_rates_refresh() == 0  # nothing changed: nothing written
    answer = ping(200)
    assert stored_ping(answer["ping_id"]).quality_signals["source_returns"] == -10


@pytest.mark.django_db
def test_the_operators_ping_page_shows_each_signal_in_words_and_the_scores(operator_client):
    load(buyer("a", "10.00"))
    answer = ping(9, state="NY")
    sold = post(answer["ping_id"], 9, state="NY")
    with market_scope():
        pk = Ping.objects.get(public_id=answer["ping_id"]).pk
    html = operator_client.get(f"/admin/exchange/ping/{pk}/change/").content.decode()
    assert "<td>ZIP code and state agree</td><td>-20</td>" in html
    assert "<td>Phone type (post)</td><td>+8</td>" in html
    assert f"ping 40, lead {40 + 8 + 5 + 5}" in html
    assert sold["status"] == "sold"
