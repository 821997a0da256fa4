"""One write path for a contract's and a campaign's terms (issue 13, item 3): one input shape
(contracts/terms.py) read the same way by the buyer API, the market file and the operator's admin,
and one service behind them; a refusal names the term as it was written, and changes nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.tenancy import market_scope
from contracts.models import BuyerContract, Campaign
from contracts.terms import CampaignTermsInput, ContractTermsInput, contract_column_terms
from exchange.market import MarketError, market_load
from tests.exchange.builder import BUYER_KEY_PREFIX, buyer, client, load, market
from tests.exchange.test_admin import change_url, form_data

pytestmark = pytest.mark.django_db

WEST = "organizations[0].contracts[0]"
SELLER_CAMPAIGN = "organizations[1].campaigns[0]"


def contract_row(slug: str = "a-c") -> dict[str, Any]:
    with market_scope():
        row = BuyerContract.objects.filter(slug=slug).values().get()
    row.pop("updated_at")
    return row


def campaign_row(slug: str = "seller-auto") -> dict[str, Any]:
    with market_scope():
        row = Campaign.objects.filter(slug=slug).values().get()
    row.pop("updated_at")
    return row


def patch(values: Any) -> Any:
    return client(f"{BUYER_KEY_PREFIX}a_000000").patch("/api/v1/contracts/ctr_a", values, format="json")


# --- the input shape and its mapping onto the columns ---------------------------------------------


def test_a_partial_change_names_only_the_periods_it_changes():
    terms = ContractTermsInput(data={"caps": {"day": 7}, "budget": {"week": "500.00"}}, partial=True).columns()
    assert terms == {"cap_day": 7, "budget_week": Decimal("500.00")}


def test_a_whole_declaration_gives_every_group_left_out_its_none():
    terms = ContractTermsInput(data={"name": "West", "price": "30", "caps": {"day": 7}}).columns()
    assert terms == {
        "name": "West",
        "price": Decimal("30.00"),
        "modifiers": [],
        "filters": {},
        "schedule": {},
        "delivery": {},
        "cap_day": 7,
        "cap_week": None,
        "cap_month": None,
        "cap_total": None,
        "budget_day": None,
        "budget_week": None,
        "budget_month": None,
        "budget_total": None,
    }


def test_null_caps_are_no_caps_in_any_period_even_in_a_partial_change():
    terms = ContractTermsInput(data={"caps": None}, partial=True).columns()
    assert terms == {"cap_day": None, "cap_week": None, "cap_month": None, "cap_total": None}


def test_the_operators_terms_are_taken_only_from_the_operator():
    data = {"priority": 5, "weight": 3, "hold": "operator", "hold_reason": "KYC"}
    buyer_input = ContractTermsInput(data=data, partial=True)
    assert not buyer_input.is_valid()
    assert set(buyer_input.errors) == {"priority", "weight", "hold", "hold_reason"}
    assert buyer_input.errors["priority"] == ["Set by the exchange's operator."]
    assert ContractTermsInput(data=data, partial=True, operator=True).columns() == data


def test_the_admins_columns_read_back_into_the_input_shape():
    columns = {"cap_day": 7, "budget_total": Decimal("1200.00"), "price": Decimal("30.00"), "status": "paused"}
    assert contract_column_terms(columns) == {
        "caps": {"day": 7},
        "budget": {"total": "1200.00"},
        "price": "30.00",
        "status": "paused",
    }
    assert ContractTermsInput(data=contract_column_terms(columns), partial=True).columns() == columns


def test_a_campaigns_direct_route_maps_onto_its_columns():
    load(buyer("a", "30.00"))
    route = {"contract": "a-c", "price": "12.50"}
    with market_scope():
        terms = CampaignTermsInput(data={"direct_route": route}, partial=True).columns()
        contract = BuyerContract.objects.get(slug="a-c")
    assert terms == {"direct_contract": contract, "direct_price": Decimal("12.50"), "direct_share_percent": 100}
    cleared = CampaignTermsInput(data={"direct_route": None}, partial=True).columns()
    assert cleared == {"direct_contract": None, "direct_price": None, "direct_share_percent": 0}


# --- one refusal, three writers: the same term named the same way ---------------------------------


def test_a_negative_budget_is_refused_by_the_api_the_market_file_and_the_admin(operator_client: Client):
    load(buyer("a", "30.00"))
    before = contract_row()

    response = patch({"budget": {"day": "-5.00"}})
    assert response.status_code == 422
    assert list(response.json()["error"]["fields"]) == ["budget.day"]

    with pytest.raises(MarketError) as error:
        market_load(market(buyer("a", "30.00", budget={"day": "-5.00"})))
    assert error.value.path == f"{WEST}.budget.day"

    with market_scope():
        contract = BuyerContract.objects.get(slug="a-c")
    page = operator_client.get(change_url(contract)).content.decode()
    admin = operator_client.post(change_url(contract), form_data(page, budget_day="-5.00"))
    assert admin.status_code == 200  # the page again, with the error on the field
    errors = admin.context["adminform"].form.errors
    assert list(errors) == ["budget_day"]
    assert errors["budget_day"][0].startswith("must be a non-negative amount"), errors

    assert contract_row() == before


def test_a_cap_past_the_column_is_named_as_the_buyer_wrote_it():
    load(buyer("a", "30.00"))
    before = contract_row()

    response = patch({"caps": {"week": 2**31}})

    assert response.status_code == 422
    assert list(response.json()["error"]["fields"]) == ["caps.week"]
    assert contract_row() == before


def test_the_buyer_sets_its_rtb_and_delivery_terms_over_the_api():
    load(buyer("a", "30.00"))
    delivery = {"method": "webhook", "url": "https://buyer.test/leads", "timeout_ms": 2000}

    response = patch({"price": None, "rtb_url": "https://buyer.test/rtb", "max_price": "40.00", "delivery": delivery})

    assert response.status_code == 200, response.content
    row = contract_row()
    assert (row["price"], row["rtb_url"], row["max_price"], row["delivery"]) == (
        None,
        "https://buyer.test/rtb",
        Decimal("40.00"),
        delivery,
    )


def test_a_hold_reason_without_a_hold_in_the_market_file_is_refused():
    load(buyer("a", "30.00"))
    before = contract_row()

    with pytest.raises(MarketError) as error:
        market_load(market(buyer("a", "30.00", hold_reason="Audit")))

    assert (error.value.path, error.value.message) == (f"{WEST}.hold_reason", "Goes with hold.")
    assert contract_row() == before


def test_an_unknown_key_in_a_direct_route_is_named():
    load(buyer("a", "30.00"))
    before = campaign_row()
    route = {"contract": "a-c", "price": "12.00", "colour": "red"}

    with pytest.raises(MarketError) as error:
        market_load(market(buyer("a", "30.00"), campaign={"direct_route": route}))

    assert error.value.path == f"{SELLER_CAMPAIGN}.direct_route.colour"
    assert campaign_row() == before


# --- the admin's campaign and new contract pages go through the services ---------------------------


def test_a_campaign_changed_in_the_admin_keeps_what_it_did_not_change(operator_client: Client):
    load(buyer("a", "30.00"))
    with market_scope():
        campaign = Campaign.objects.get(slug="seller-auto")
    page = operator_client.get(change_url(campaign)).content.decode()
    # The market file changes the margin while the page is open.
    market_load(market(buyer("a", "30.00"), campaign={"margin_percent": "35"}))

    response = operator_client.post(change_url(campaign), form_data(page, floor="4.00"))

    assert response.status_code == 302, response.content.decode()[:2000]
    row = campaign_row()
    assert (row["floor"], row["margin_percent"]) == (Decimal("4.00"), Decimal("35.00"))


def test_a_direct_route_above_the_max_bid_is_refused_on_the_admins_field(operator_client: Client):
    load(buyer("a", "30.00"), max_bid="50.00")
    with market_scope():
        campaign = Campaign.objects.get(slug="seller-auto")
        contract = BuyerContract.objects.get(slug="a-c")
    before = campaign_row()
    page = operator_client.get(change_url(campaign)).content.decode()

    response = operator_client.post(
        change_url(campaign), form_data(page, direct_contract=str(contract.pk), direct_price="60.00")
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors == {"direct_price": ["Above the offer's max bid of 50.00."]}
    assert campaign_row() == before


def test_a_campaigns_seller_offer_and_slug_are_read_only_once_made(operator_client: Client):
    load(buyer("a", "30.00"))
    with market_scope():
        campaign = Campaign.objects.get(slug="seller-auto")
    form = operator_client.get(change_url(campaign)).context["adminform"].form
    assert {"organization", "offer", "slug"}.isdisjoint(form.fields)


def test_a_contract_added_in_the_admin_is_made_by_the_service(operator_client: Client):
    load(buyer("a", "30.00"))
    with market_scope():
        contract = BuyerContract.objects.get(slug="a-c")
    url = reverse("admin:contracts_buyercontract_add")
    page = operator_client.get(url).content.decode()

    response = operator_client.post(
        url,
        form_data(
            page,
            name="East",
            slug="a-east",
            organization=str(contract.organization_id),
            offer=str(contract.offer_id),
            price="12.00",
            cap_day="5",
            budget_day="-1.00",
        ),
    )
    assert response.status_code == 200  # a negative budget, refused on its field
    assert list(response.context["adminform"].form.errors) == ["budget_day"]
    with market_scope():
        assert not BuyerContract.objects.filter(slug="a-east").exists()

    response = operator_client.post(
        url,
        form_data(
            page,
            name="East",
            slug="a-east",
            organization=str(contract.organization_id),
            offer=str(contract.offer_id),
            price="12.00",
            cap_day="5",
        ),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    row = contract_row("a-east")
    assert (row["name"], row["price"], row["cap_day"], row["cap_week"], row["filters"]) == (
        "East",
        Decimal("12.00"),
        5,
        None,
        {},
    )
