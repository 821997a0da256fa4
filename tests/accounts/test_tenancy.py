"""Tenant isolation: a query outside a scope fails loudly; another tenant's object is a 404."""

from __future__ import annotations

import pytest
from django.test import Client
from django_scopes.exceptions import ScopeError

from accounts.middleware import SESSION_ORGANIZATION_KEY
from accounts.models import ApiKey, Membership
from accounts.services import membership_set, user_upsert
from accounts.tenancy import TenantTask, market_scope, tenant_scope
from contracts.models import BuyerContract, Campaign
from exchange.celery import app as celery_app
from tests.conftest import ACME_KEY, CHARLIE_KEY, LEADGEN_KEY, PASSWORD, api_client
from tests.sessions import login

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", [BuyerContract, Campaign, ApiKey])
def test_a_tenant_query_outside_a_scope_raises(market, model):
    with pytest.raises(ScopeError):
        list(model.objects.all())
    with pytest.raises(ScopeError):
        model.objects.filter(pk=1).first()


def test_a_scope_sees_only_its_own_rows(orgs):
    with tenant_scope(orgs["acme"]):
        assert list(BuyerContract.objects.values_list("slug", flat=True)) == ["acme-west"]
    with tenant_scope(orgs["charlie"]):
        assert list(BuyerContract.objects.values_list("slug", flat=True)) == ["charlie-any"]
    with market_scope():
        assert BuyerContract.objects.count() == 2


def test_tenant_scope_refuses_an_unsaved_organization(orgs):
    from accounts.models import Organization

    with pytest.raises(ValueError, match="saved organization"):
        with tenant_scope(Organization(slug="x")):
            pass


@celery_app.task(base=TenantTask, name="tests.contract_slugs")
def contract_slugs(*, organization_id=None):
    return sorted(BuyerContract.objects.values_list("slug", flat=True))


def test_the_celery_base_task_scopes_to_its_organization(orgs):
    result = contract_slugs.apply(kwargs={"organization_id": orgs["charlie"].pk})
    assert result.get() == ["charlie-any"]


def test_a_celery_task_without_organization_has_no_scope(orgs):
    with pytest.raises(ScopeError):
        contract_slugs.apply(kwargs={}, throw=True)


# --- the API: charlie (the outsider) asks for acme's and leadgen's objects ----------------------


@pytest.mark.parametrize(
    ("key", "path"),
    [
        (CHARLIE_KEY, "/api/v1/contracts/ctr_acme_west"),
        (CHARLIE_KEY, "/api/v1/campaigns/cmp_leadgen_auto"),
        (ACME_KEY, "/api/v1/contracts/ctr_charlie_any"),
        (LEADGEN_KEY, "/api/v1/campaigns/cmp_charlie_auto"),
    ],
)
def test_api_another_tenants_object_is_404_like_a_missing_one(market, key, path):
    foreign = api_client(key).get(path)
    missing = api_client(key).get(path[: path.rindex("/") + 1] + "ctr_does_not_exist")

    assert foreign.status_code == 404
    assert foreign.json() == missing.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_api_lists_only_own_objects(market):
    contracts = api_client(CHARLIE_KEY).get("/api/v1/contracts").json()["results"]
    campaigns = api_client(CHARLIE_KEY).get("/api/v1/campaigns").json()["results"]
    assert [c["id"] for c in contracts] == ["ctr_charlie_any"]
    assert [c["id"] for c in campaigns] == ["cmp_charlie_auto"]


def test_api_own_contract_is_readable(market):
    response = api_client(ACME_KEY).get("/api/v1/contracts/ctr_acme_west")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "ctr_acme_west"
    assert body["price"] == "30.00"
    assert body["caps"] == {"day": 100, "week": None, "month": None, "total": None}


def test_api_a_seller_key_cannot_read_buyer_endpoints(market):
    response = api_client(LEADGEN_KEY).get("/api/v1/contracts")
    assert response.status_code == 403


def test_api_unknown_path_is_a_json_404(market):
    response = api_client(ACME_KEY).get("/api/v1/nothing/here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- the portal --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "path"),
    [
        ("charlie@charlie.test", "/portal/contracts/ctr_acme_west/"),
        ("charlie@charlie.test", "/portal/campaigns/cmp_leadgen_auto/"),
        ("owner@acme.test", "/portal/contracts/ctr_charlie_any/"),
        ("owner@leadgen.test", "/portal/campaigns/cmp_charlie_auto/"),
    ],
)
def test_portal_another_tenants_object_is_404(market, email, path):
    assert login(email).get(path).status_code == 404


def test_portal_own_pages_render(market):
    client = login("owner@acme.test")
    home = client.get("/portal/")
    assert home.status_code == 200
    assert b"Acme Insurance" in home.content
    listing = client.get("/portal/contracts/")
    assert b"ctr_acme_west" in listing.content and b"ctr_charlie_any" not in listing.content
    assert client.get("/portal/contracts/ctr_acme_west/").status_code == 200


def test_portal_requires_login(market):
    response = Client().get("/portal/contracts/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_organization_switcher_moves_between_own_organizations_only(orgs):
    user = user_upsert(email="both@two.test", password=PASSWORD)
    membership_set(user=user, organization=orgs["acme"], role=Membership.Role.ANALYST)
    membership_set(user=user, organization=orgs["leadgen"], role=Membership.Role.MANAGER)
    client = login("both@two.test")

    assert b"Acme Insurance" in client.get("/portal/").content
    response = client.post("/portal/organization/", {"organization": orgs["leadgen"].pk, "next": "/portal/"})
    assert response.status_code == 302
    assert client.session[SESSION_ORGANIZATION_KEY] == orgs["leadgen"].pk
    assert client.get("/portal/campaigns/cmp_leadgen_auto/").status_code == 200
    assert client.get("/portal/contracts/ctr_acme_west/").status_code == 404

    foreign = client.post("/portal/organization/", {"organization": orgs["charlie"].pk})
    assert foreign.status_code == 404
    assert client.session[SESSION_ORGANIZATION_KEY] == orgs["leadgen"].pk
    assert client.post("/portal/organization/", {"organization": "x"}).status_code == 404


def test_switcher_refuses_an_offsite_redirect(orgs):
    client = login("owner@acme.test")
    response = client.post("/portal/organization/", {"organization": orgs["acme"].pk, "next": "https://evil.test/"})
    assert response["Location"] == "/portal/"


def test_a_user_without_organization_sees_a_clear_page(db):
    user_upsert(email="lonely@x.test", password=PASSWORD)
    response = login("lonely@x.test").get("/portal/")
    assert response.status_code == 403
    assert b"No organization yet" in response.content


def test_admin_is_for_operators_only(market):
    assert login("owner@acme.test").get("/admin/").status_code == 302
    user_upsert(email="op@gavel.test", password=PASSWORD, operator=True)
    client = login("op@gavel.test")
    for path in [
        "/admin/",
        "/admin/contracts/buyercontract/",
        "/admin/accounts/organization/",
        "/admin/accounts/apikey/",
        "/admin/billing/ledgerentry/",
        "/admin/exchange/offer/",
        "/admin/contracts/campaign/",
        "/admin/billing/ledgertransaction/",
    ]:
        assert client.get(path).status_code == 200, path
    with market_scope():
        contract = BuyerContract.objects.get(slug="acme-west")
        org = contract.organization
    assert client.get(f"/admin/contracts/buyercontract/{contract.pk}/change/").status_code == 200
    assert client.get(f"/admin/accounts/organization/{org.pk}/change/").status_code == 200


# --- bid automation: PATCH /api/v1/contracts/{id} ------------------------------------------------


def test_a_buyer_patches_its_contract_and_the_next_ping_sees_it(market):
    from tests.conftest import LEADGEN_KEY as SELLER

    response = api_client(ACME_KEY).patch(
        "/api/v1/contracts/ctr_acme_west",
        {"price": "41.50", "caps": {"day": 3, "month": None}, "budget": {"day": "500.00"}, "status": "active"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["price"] == "41.50" and body["caps"]["day"] == 3 and body["budget"]["day"] == "500.00"
    ping = api_client(SELLER).post(
        "/api/v1/ping", {"campaign": "cmp_leadgen_auto", "lead": {"state": "CA", "zip": "94107"}}, format="json"
    )
    assert ping.json()["payout"] == "33.20"  # 41.50 less 20 %


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"filters": {"field": "colour", "op": "eq", "value": "red"}}, "filters"),
        ({"caps": {"hour": 5}}, "caps.hour"),
        ({"budget": {"day": "lots"}}, "budget.day"),
        ({"price": "-1.00"}, "price"),
        ({"status": "deleted"}, "status"),
        ({"organization": 3}, "organization"),
        ({"schedule": {"days": ["funday"]}}, "schedule"),
    ],
)
def test_a_bad_patch_is_422_naming_the_field_and_changes_nothing(market, patch, field):
    before = api_client(ACME_KEY).get("/api/v1/contracts/ctr_acme_west").json()
    response = api_client(ACME_KEY).patch("/api/v1/contracts/ctr_acme_west", patch, format="json")
    assert response.status_code == 422, response.content
    assert field in response.json()["error"]["fields"]
    assert api_client(ACME_KEY).get("/api/v1/contracts/ctr_acme_west").json() == before


def test_another_buyers_contract_cannot_be_patched(market):
    response = api_client(CHARLIE_KEY).patch("/api/v1/contracts/ctr_acme_west", {"status": "paused"}, format="json")
    assert response.status_code == 404
    with market_scope():
        assert BuyerContract.objects.get(public_id="ctr_acme_west").status == "active"
