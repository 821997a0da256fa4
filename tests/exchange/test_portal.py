"""Portal pages for the market's data: a seller's leads, a buyer's purchases and bids.

The market: two buyers and two sellers. Acme pays 31.17 for California only; Bravo pays 23.45
for anything. So a CA lead goes to Acme (Bravo outbid), a TX lead to Bravo (Acme filtered out),
and an NY lead direct-posted by the seller goes unsold. Every ping's waterfall names both buyers'
contracts and prices; each buyer must see only its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from accounts.models import Organization
from accounts.services import membership_set, user_upsert
from accounts.tenancy import market_scope, tenant_scope
from exchange import portal
from exchange.models import Ping, Sale
from leads import views as lead_views
from tests.exchange.builder import SELLER2_KEY, SELLER_KEY, buyer, client, lead_body, load, ping, post
from tests.sessions import PASSWORD, login

pytestmark = pytest.mark.django_db


@dataclass
class Market:
    ca: dict[str, Any]  # seller's CA lead, sold to Acme
    tx: dict[str, Any]  # seller's TX lead, sold to Bravo
    ny: dict[str, Any]  # seller's NY lead, unsold
    other: dict[str, Any]  # seller2's CA lead, sold to Acme

    def sale_of(self, lead: dict[str, Any]) -> Sale:
        with market_scope():
            return Sale.objects.select_related("organization").get(lead__public_id=lead["lead_id"])


def sell_in(state: str, n: int, key: str = SELLER_KEY, campaign: str = "cmp_seller") -> dict[str, Any]:
    """Ping and post a lead from ``state`` (the builder's ``sell`` posts CA only)."""
    answer = ping(n, key=key, campaign=campaign, state=state)
    assert answer["status"] == "accepted", answer
    return post(answer["ping_id"], n, key=key, state=state)


@pytest.fixture
def market() -> Market:
    load(
        buyer("acme", "31.17", filters={"field": "state", "op": "in", "value": ["CA"]}),
        buyer("bravo", "23.45", filters={"field": "state", "op": "in", "value": ["CA", "TX"]}),
        reauction_cycles=0,  # the NY lead nobody buys is unsold at once
    )
    ca = sell_in("CA", 1)
    tx = sell_in("TX", 2)
    response = client().post("/api/v1/leads", lead_body(3, state="NY"), format="json")
    assert response.status_code == 200, response.content
    ny = response.json()
    other = sell_in("CA", 4, key=SELLER2_KEY, campaign="cmp_seller2")
    assert (ca["status"], tx["status"], ny["status"], other["status"]) == ("sold", "sold", "unsold", "sold")
    for user, org in [
        ("s@seller.test", "seller"),
        ("s2@seller2.test", "seller2"),
        ("a@acme.test", "acme"),
        ("b@bravo.test", "bravo"),
    ]:
        membership_set(
            user=user_upsert(email=user, password=PASSWORD),
            organization=Organization.objects.get(slug=org),
            role="owner",
        )
    return Market(ca=ca, tx=tx, ny=ny, other=other)


def text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


# --- seller: leads -----------------------------------------------------------------------------


def test_seller_sees_exactly_its_own_leads_newest_first(market):
    page = text(login("s@seller.test").get("/portal/leads/"))

    ids = [market.ny["lead_id"], market.tx["lead_id"], market.ca["lead_id"]]
    positions = [page.index(i) for i in ids]
    assert positions == sorted(positions)
    assert market.other["lead_id"] not in page
    assert "$18.76" in page and "$24.93" in page  # payouts: 23.45 and 31.17 less the 20% margin
    assert "No buyer bid on it" in page and "no_buyers" not in page  # the reason in words


def test_seller_leads_filter_by_status_and_campaign(market):
    c = login("s@seller.test")

    sold = text(c.get("/portal/leads/", {"status": "sold"}))
    assert market.ca["lead_id"] in sold and market.tx["lead_id"] in sold and market.ny["lead_id"] not in sold
    unsold = text(c.get("/portal/leads/", {"status": "unsold"}))
    assert market.ny["lead_id"] in unsold and market.ca["lead_id"] not in unsold
    assert market.ca["lead_id"] in text(c.get("/portal/leads/", {"campaign": "cmp_seller"}))
    # Another seller's campaign, or a status that does not exist: a form error, no rows.
    foreign = c.get("/portal/leads/", {"campaign": "cmp_seller2", "status": "bogus"})
    page = foreign.content.decode()
    assert foreign.status_code == 400 and "No such campaign of yours." in page and "bogus" in page
    assert market.ca["lead_id"] not in page and market.other["lead_id"] not in page


def test_seller_leads_are_paginated(market, monkeypatch):
    monkeypatch.setattr(lead_views, "PAGE_SIZE", 2)
    c = login("s@seller.test")

    first = text(c.get("/portal/leads/"))
    second = text(c.get("/portal/leads/", {"page": 2, "status": ""}))

    assert market.ny["lead_id"] in first and market.tx["lead_id"] in first and market.ca["lead_id"] not in first
    assert market.ca["lead_id"] in second and market.ny["lead_id"] not in second
    assert "Page 1 of 2" in first and "?page=2" in first
    assert "Page 2 of 2" in second


def test_seller_lead_detail_shows_sales_and_consent_but_no_buyer_and_no_pii(market):
    sale = market.sale_of(market.ca)
    page = text(login("s@seller.test").get(f"/portal/leads/{market.ca['lead_id']}/"))

    assert sale.public_id in page and "$24.93" in page
    assert "I agree to be contacted." in page and "203.0.113.9" in page
    assert "94107" in page
    for secret in ["consumer1@example.com", "+12015550101", "Jane", "Acme", "ctr_acme", "31.17", "Bravo", "ctr_bravo"]:
        assert secret not in page, secret


def test_seller_lead_detail_of_an_unsold_lead(market):
    page = text(login("s@seller.test").get(f"/portal/leads/{market.ny['lead_id']}/"))
    assert "Not sold." in page and "No buyer bid on it" in page


# --- buyer: purchases --------------------------------------------------------------------------


def test_buyer_sees_exactly_its_own_purchases(market):
    acme = text(login("a@acme.test").get("/portal/purchases/"))
    bravo = text(login("b@bravo.test").get("/portal/purchases/"))

    acme_sales = [market.sale_of(market.ca).public_id, market.sale_of(market.other).public_id]
    bravo_sale = market.sale_of(market.tx).public_id
    assert all(s in acme for s in acme_sales) and bravo_sale not in acme
    assert bravo_sale in bravo and not any(s in bravo for s in acme_sales)
    assert market.ca["lead_id"] in acme and "$31.17" in acme and "23.45" not in acme


def test_buyer_purchases_filter_by_contract_and_status(market):
    c = login("a@acme.test")
    ca_sale = market.sale_of(market.ca).public_id

    assert ca_sale in text(c.get("/portal/purchases/", {"contract": "ctr_acme", "status": "sold"}))
    assert ca_sale not in text(c.get("/portal/purchases/", {"status": "returned"}))
    foreign = c.get("/portal/purchases/", {"contract": "ctr_bravo"})  # another buyer's: a form error
    assert foreign.status_code == 400 and "No such contract of yours." in foreign.content.decode()
    assert ca_sale not in foreign.content.decode()


def test_buyer_purchase_detail_shows_the_lead_decrypted_and_its_consent(market):
    sale = market.sale_of(market.ca)
    page = text(login("a@acme.test").get(f"/portal/purchases/{sale.public_id}/"))

    for shown in ["consumer1@example.com", "+12015550101", "Jane", "94107", "I agree to be contacted.", "$31.17"]:
        assert shown in page, shown
    # The seller is not named: the buyer sees the campaign's opaque source token.
    assert "Seller" not in page
    assert "src_" in page


def test_a_released_sale_shows_no_contact_details(market):
    sale = market.sale_of(market.ca)
    with market_scope():
        Sale.objects.filter(pk=sale.pk).update(status=Sale.Status.RELEASED, release_reason="rejected: bad zip")
    page = text(login("a@acme.test").get(f"/portal/purchases/{sale.public_id}/"))

    assert "consumer1@example.com" not in page and "+12015550101" not in page
    assert "I agree to be contacted." not in page
    assert "rejected: bad zip" in page and "94107" in page


# --- buyer: bids -------------------------------------------------------------------------------


def test_buyer_bids_show_own_bids_and_evaluations_only(market):
    with market_scope():
        ca_ping = Ping.objects.get(posted_lead__public_id=market.ca["lead_id"])
        tx_ping = Ping.objects.get(posted_lead__public_id=market.tx["lead_id"])
        # The premise: the waterfall of the same ping names the other buyer's contract and price.
        assert {s["contract"] for s in ca_ping.waterfall} == {"ctr_acme", "ctr_bravo"}
        assert {s["price"] for s in ca_ping.waterfall} == {"31.17", "23.45"}

    acme = text(login("a@acme.test").get("/portal/bids/"))
    bravo = text(login("b@bravo.test").get("/portal/bids/"))

    assert ca_ping.public_id in acme and "$31.17" in acme and "Won" in acme
    # Acme's contract is filed under CA by the offer's index: the TX ping never looked at it.
    assert tx_ping.public_id not in acme
    assert ca_ping.public_id in bravo and "$23.45" in bravo and "Outbid" in bravo
    for foreign in ["ctr_bravo", "Bravo", "23.45", "18.76"]:
        assert foreign not in acme, foreign
    for foreign in ["ctr_acme", "Acme", "31.17", "24.93"]:
        assert foreign not in bravo, foreign


def test_evaluations_are_cut_to_the_buyers_own_contracts(market):
    acme = Organization.objects.get(slug="acme")
    with tenant_scope(acme):
        evaluations = portal.evaluations_of(buyer=acme)

    assert {e.contract_id for e in evaluations} == {"ctr_acme"}
    # The two CA pings (both sellers) won; the TX ping and the NY full lead never looked at Acme's
    # contract (the offer's index files it under CA), so they are no evaluation of it.
    assert sorted((e.reason, e.price) for e in evaluations) == [
        ("won", "31.17"),
        ("won", "31.17"),
    ]


# --- isolation and access ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "path"),
    [
        ("s2@seller2.test", "/portal/leads/{seller_lead}/"),
        ("b@bravo.test", "/portal/purchases/{acme_sale}/"),
        ("a@acme.test", "/portal/purchases/{bravo_sale}/"),
    ],
)
def test_another_tenants_lead_or_sale_is_a_404_like_a_missing_one(market, email, path):
    ids = {
        "seller_lead": market.ca["lead_id"],
        "acme_sale": market.sale_of(market.ca).public_id,
        "bravo_sale": market.sale_of(market.tx).public_id,
    }
    c = login(email)
    foreign = c.get(path.format(**ids))
    missing = c.get(path.format(**{k: v[:4] + "doesnotexist" for k, v in ids.items()}))

    assert foreign.status_code == missing.status_code == 404
    assert foreign.templates[0].name == missing.templates[0].name == "404.html"


@pytest.mark.parametrize(
    ("email", "path", "side"),
    [
        ("a@acme.test", "/portal/leads/", "sellers"),
        ("s@seller.test", "/portal/purchases/", "buyers"),
        ("s@seller.test", "/portal/bids/", "buyers"),
        ("s@seller.test", "/portal/returns/", "buyers"),
        ("s@seller.test", "/portal/purchases.csv", "buyers"),
        ("a@acme.test", "/portal/leads.csv", "sellers"),
    ],
)
def test_pages_of_the_other_side_say_whom_they_are_for(market, email, path, side):
    response = login(email).get(path)
    assert response.status_code == 403
    assert f"This page is for {side}" in response.content.decode()


@pytest.mark.parametrize(
    ("email", "path"),
    [
        # A buyer does not reach the seller's lead pages, even for a lead it bought; found or
        # missing, the answer is the same 404 as any outsider's.
        ("a@acme.test", "/portal/leads/{seller_lead}/"),
        ("a@acme.test", "/portal/leads/led_doesnotexist/"),
        ("s@seller.test", "/portal/purchases/{acme_sale}/"),
    ],
)
def test_one_things_page_of_the_other_side_is_not_found(market, email, path):
    ids = {"seller_lead": market.ca["lead_id"], "acme_sale": market.sale_of(market.ca).public_id}
    response = login(email).get(path.format(**ids))
    assert response.status_code == 404
    assert "This page is for" not in response.content.decode()


@pytest.mark.parametrize(
    "path",
    ["/portal/leads/", "/portal/leads/led_x/", "/portal/purchases/", "/portal/purchases/sal_x/", "/portal/bids/"],
)
def test_pages_require_login(market, path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_nav_links_follow_the_role(market):
    seller = text(login("s@seller.test").get("/portal/"))
    acme = text(login("a@acme.test").get("/portal/"))

    assert 'href="/portal/leads/"' in seller and 'href="/portal/purchases/"' not in seller
    assert 'href="/portal/purchases/"' in acme and 'href="/portal/bids/"' in acme
    assert 'href="/portal/leads/"' not in acme


def test_pages_run_a_fixed_number_of_queries(market, django_assert_num_queries):
    for n in range(5, 11):
        sell_in("CA", n)
    seller, acme = login("s@seller.test"), login("a@acme.test")
    sale = market.sale_of(market.ca).public_id
    # Each page: session, user, memberships, then its own reads — none per row.
    pages = [
        (seller, "/portal/leads/", 6),  # campaigns (filter), count, page
        (seller, f"/portal/leads/{market.ca['lead_id']}/", 7),  # lead, consent, sales, its auctions
        (acme, "/portal/purchases/", 6),  # contracts (filter), count, page
        (acme, f"/portal/purchases/{sale}/", 6),  # the sale with its lead and consent, its return, deliveries
        (acme, "/portal/bids/", 7),  # count, page of bids; own contracts, recent pings
    ]
    for c, path, queries in pages:
        with django_assert_num_queries(queries):
            text(c.get(path))
