"""PII only to those who paid for it: a buyer that turned a lead down or returned it no longer sees
the consumer, and a contract that turns too many leads down is held (issue 12)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Organization
from accounts.services import membership_set, user_upsert
from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from demo.buyers import Behaviour
from exchange.models import Offer, Ping, Sale
from exchange.returns.services import return_decide, return_request
from exchange.services.rejects import reject_rates
from tests.exchange.builder import BUYER_KEY_PREFIX, client, events, lead_body, load, ping, post, sell
from tests.exchange.test_delivery import webhook_buyer
from tests.sessions import PASSWORD

pytestmark = pytest.mark.django_db

EMAIL = "consumer1@example.com"


def portal(slug: str) -> Client:
    membership_set(
        user=user_upsert(email=f"owner@{slug}.test", password=PASSWORD),
        organization=Organization.objects.get(slug=slug),
        role="owner",
    )
    browser = Client()
    assert browser.login(username=f"owner@{slug}.test", password=PASSWORD)
    return browser


def contract(slug: str) -> BuyerContract:
    with market_scope():
        return BuyerContract.objects.get(slug=slug)


# --- a lead turned down or returned shows no contact details -------------------------------------


def test_a_buyer_that_rejected_the_delivery_sees_no_contact_details(buyers):
    load(
        webhook_buyer(buyers, "picky", "30.00", Behaviour(accept=False, reject_reason="no thanks")),
        webhook_buyer(buyers, "easy", "20.00", Behaviour(accept=True)),
    )
    assert post(ping(1)["ping_id"], 1)["status"] == "sold"
    assert buyers.requests("picky", "delivery")[0].json()["lead"]["email"] == EMAIL  # it was sent the lead
    with market_scope():
        released = Sale.objects.get(contract__slug="picky-c")
    assert released.status == "released"

    page = portal("picky").get(reverse("exchange:purchase_detail", args=[released.public_id])).content.decode()
    api = client(f"{BUYER_KEY_PREFIX}picky_000000")

    assert EMAIL not in page and "+1201555" not in page
    assert "contact details are not shown" in page
    assert api.get(f"/api/v1/purchases/{released.public_id}").status_code == 404
    assert api.get("/api/v1/purchases").json()["results"] == []


def test_a_returned_lead_shows_no_contact_details_in_the_api_or_the_portal(buyers):
    load(webhook_buyer(buyers, "hook", "30.00", Behaviour(accept=True)))
    sold = sell(1)
    with market_scope():
        sale = Sale.objects.get(lead__public_id=sold["lead_id"])
    api = client(f"{BUYER_KEY_PREFIX}hook_000000")
    kept = api.get(f"/api/v1/purchases/{sale.public_id}").json()
    assert (kept["lead"]["email"], kept["pii_available"], kept["consent"]["ip"]) == (EMAIL, True, "203.0.113.9")

    ret = return_request(buyer=Organization.objects.get(slug="hook"), sale_public_id=sale.public_id, reason="fraud")
    return_decide(ret=ret, approve=True, user=None)

    returned = api.get(f"/api/v1/purchases/{sale.public_id}").json()
    assert returned["status"] == "returned"
    assert returned["lead"] == {"state": "CA", "zip": "94107", "age": 34}
    assert (returned["pii_available"], returned["consent"]) == (False, None)
    assert api.get("/api/v1/purchases").json()["results"][0]["lead"] == returned["lead"]
    page = portal("hook").get(reverse("exchange:purchase_detail", args=[sale.public_id])).content.decode()
    assert EMAIL not in page and "203.0.113.9" not in page
    assert "You returned this lead: its contact details are no longer shown." in page


# --- the delivery-reject watch -------------------------------------------------------------------


def test_a_contract_that_turns_down_too_many_deliveries_is_held_and_told(buyers, settings):
    settings.GAVEL_REJECT_RATE_MIN_DELIVERIES = 3
    load(
        webhook_buyer(buyers, "picky", "30.00", Behaviour(accept=False, reject_reason="no thanks")),
        webhook_buyer(buyers, "easy", "20.00", Behaviour(accept=True)),
        reject_rate_hold_percent=60,
    )
    for n in range(2):
        assert sell(n)["payout"] == "16.00"  # picky turned it down; easy bought it
    assert contract("picky-c").hold is None  # two deliveries: too few to judge

    sell(2)

    held = contract("picky-c")
    reason = "reject_rate: 3 of 3 deliveries turned down in 24 h (the offer holds at 60%)"
    assert (held.status, held.hold, held.hold_reason) == ("active", "operator", reason)
    assert events("contract.paused") == [
        {"contract": "ctr_picky", "name": "picky-c", "offer": "auto", "reason": reason}
    ]
    answer = ping(3)
    with market_scope():
        waterfall = {s["contract"]: s["reason"] for s in Ping.objects.get(public_id=answer["ping_id"]).waterfall}
    assert waterfall == {"ctr_picky": "paused", "ctr_easy": "won"}
    assert len(buyers.requests("picky", "delivery")) == 3  # it is sent no more leads
    # No buyer action lifts it.
    response = client(f"{BUYER_KEY_PREFIX}picky_000000").patch(
        "/api/v1/contracts/ctr_picky", {"status": "active"}, format="json"
    )
    assert response.status_code == 200 and response.json()["hold"] == "operator"


def test_a_reject_rate_under_the_offers_threshold_holds_nothing(buyers, settings):
    settings.GAVEL_REJECT_RATE_MIN_DELIVERIES = 3
    load(
        webhook_buyer(buyers, "picky", "30.00", Behaviour(accept=True)),
        webhook_buyer(buyers, "easy", "20.00", Behaviour(accept=True)),
        reject_rate_hold_percent=60,
    )
    for n in range(3):
        assert sell(n)["payout"] == "24.00"  # picky bought it
    buyers.behaviours["picky"] = Behaviour(accept=False)
    for n in range(3, 7):
        assert sell(n)["payout"] == "16.00"  # picky turned it down: 4 of 7, 57%

    rate = reject_rates(contract_ids=[contract("picky-c").pk], now=timezone.now())[contract("picky-c").pk]
    assert (rate.deliveries, rate.rejected) == (7, 4)
    assert contract("picky-c").hold is None and events("contract.paused") == []
    sell(7)  # 5 of 8, 62.5%: past the offer's 60%
    assert contract("picky-c").hold == "operator"


def test_an_offer_without_a_threshold_never_holds_and_test_leads_do_not_count(buyers, settings):
    settings.GAVEL_REJECT_RATE_MIN_DELIVERIES = 1
    load(
        webhook_buyer(buyers, "picky", "30.00", Behaviour(accept=False)),
        webhook_buyer(buyers, "easy", "20.00", Behaviour(accept=True)),
    )
    assert client().post("/api/v1/leads", lead_body(0, test=True), format="json").json()["status"] == "sold"
    assert contract("picky-c").hold is None  # a test lead's rejection does not count
    assert reject_rates(contract_ids=[contract("picky-c").pk], now=timezone.now()) == {}
    Offer.objects.update(reject_rate_hold_percent=None)

    sell(1)

    assert contract("picky-c").hold is None
    assert reject_rates(contract_ids=[contract("picky-c").pk], now=timezone.now())[contract("picky-c").pk].rejected == 1


def test_the_operator_sees_each_contracts_reject_rate(buyers, settings, operator_client):
    settings.GAVEL_REJECT_RATE_MIN_DELIVERIES = 100
    load(
        webhook_buyer(buyers, "picky", "30.00", Behaviour(accept=False)),
        webhook_buyer(buyers, "easy", "20.00", Behaviour(accept=True)),
    )
    for n in range(2):
        sell(n)

    listing = operator_client.get(reverse("admin:contracts_buyercontract_changelist")).content.decode()
    page = operator_client.get(
        reverse("admin:contracts_buyercontract_change", args=[contract("picky-c").pk])
    ).content.decode()

    assert "Rejects (24 h)" in listing
    assert "100% (2 of 2)" in listing and "0% (0 of 2)" in listing
    assert "100% (2 of 2)" in page
