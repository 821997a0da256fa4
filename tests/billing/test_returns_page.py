"""A buyer's returns page (/portal/returns/): its own returns with status, reason in words, when
asked and decided (in its time zone, labelled), the purchase linked; filtered by status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from exchange.returns.services import return_decide, return_request
from tests.billing.conftest import sold
from tests.exchange.builder import org
from tests.sessions import member

pytestmark = pytest.mark.django_db

ASKED = datetime(2026, 11, 10, 5, 0, tzinfo=UTC)  # Nov 10, 00:00 in New York


@pytest.fixture
def returns(market, operator):
    acme = org("acme")
    acme.timezone = "America/New_York"
    acme.save(update_fields=["timezone"])
    sales = [sold(n) for n in (1, 2, 3)]
    bravo_sale = sold(4, state="TX")
    with time_machine.travel(ASKED, tick=False):
        requested = return_request(buyer=acme, sale_public_id=sales[0].public_id, reason="bad_phone", note="Dead line.")
        approved = return_request(buyer=acme, sale_public_id=sales[1].public_id, reason="out_of_area")
        denied = return_request(buyer=acme, sale_public_id=sales[2].public_id, reason="fraud", note="A bot.")
        bravo = return_request(buyer=org("bravo"), sale_public_id=bravo_sale.public_id, reason="duplicate")
    with time_machine.travel(ASKED + timedelta(hours=26), tick=False):
        return_decide(ret=approved, approve=True, user=operator)
        return_decide(ret=denied, approve=False, user=operator, note="The lead is genuine.")
    return {"requested": requested, "approved": approved, "denied": denied, "bravo": bravo}


def get(params: dict[str, str] | None = None, role: str = "analyst"):
    return member("a@acme.test", "acme", role).get("/portal/returns/", params or {})


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content.decode()[:2000]
    return [r.public_id for r in response.context["page"].object_list]


def test_the_buyer_sees_its_returns_newest_first(returns):
    response = get()
    assert ids(response) == [returns[n].public_id for n in ("denied", "approved", "requested")]
    page = response.content.decode()
    assert returns["bravo"].public_id not in page
    # Reasons and statuses in words, the purchase linked, the times in New York labelled.
    assert "Bad phone number" in page and "Out of area" in page and "Fraud" in page and "bad_phone" not in page
    assert f'href="/portal/purchases/{returns["approved"].sale.public_id}/"' in page
    assert 'Asked (<span class="tz">America/New_York</span>)' in page and ">Nov 10, 00:00 EST</time>" in page
    assert ">Nov 11, 02:00 EST</time>" in page  # decided 26 hours later
    assert "The lead is genuine." in page and "waiting for the exchange" in page


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("requested", ["requested"]),
        ("approved", ["approved"]),
        ("denied", ["denied"]),
        ("", ["denied", "approved", "requested"]),
    ],
)
def test_filter_by_status(returns, status, expected):
    assert ids(get({"status": status})) == [returns[n].public_id for n in expected]


def test_a_bad_status_is_a_form_error(returns):
    response = get({"status": "lost"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Status: Select a valid choice. lost is not one of the available choices." in page
    assert not any(r.public_id in page for r in returns.values())


def test_empty_states(market):
    page = get().content.decode()
    assert "No returns yet. To return a lead, open it from" in page and 'href="/portal/purchases/"' in page
    filtered = get({"status": "denied"}).content.decode()
    assert 'No returns match these filters. <a href="/portal/returns/">Clear filters</a>' in filtered


def test_a_seller_is_told_the_page_is_for_buyers(market):
    response = member("s@seller.test", "seller").get("/portal/returns/")
    assert response.status_code == 403 and "This page is for buyers" in response.content.decode()


def test_the_nav_links_the_returns_page_for_buyers_only(market):
    assert 'href="/portal/returns/"' in get().content.decode()
    assert 'href="/portal/returns/"' not in member("s@seller.test", "seller").get("/portal/").content.decode()
