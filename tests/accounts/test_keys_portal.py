"""The API-key page: an owner creates (shown once), renames, rotates and revokes keys, and the
API answers accordingly at once; other roles and other organizations change nothing."""

from __future__ import annotations

import re

import pytest

from accounts.models import ApiKey, Membership
from accounts.roles import RoleRefused
from accounts.services import api_key_create, api_key_rotate
from accounts.tenancy import market_scope
from tests.conftest import ACME_KEY, api_client
from tests.sessions import login, member

pytestmark = pytest.mark.django_db


def keys_of(slug: str) -> list[tuple[str, str, list[str], bool]]:
    with market_scope():
        return [
            (k.name, k.prefix, k.scopes, k.revoked_at is None)
            for k in ApiKey.objects.filter(organization__slug=slug).order_by("pk")
        ]


def shown_key(html: str) -> str:
    match = re.search(r'id="new-key-value">(gvl_[\w-]+)<', html)
    assert match, "no key shown"
    return match.group(1)


def key_named(name: str) -> ApiKey:
    with market_scope():
        return ApiKey.objects.get(name=name)


def test_an_owner_creates_a_key_shown_once_that_works_against_the_api(orgs):
    owner = login("owner@acme.test")

    created = owner.post("/portal/keys/", {"name": "CRM sync", "scopes": ["contracts", "purchases"]})

    assert created.status_code == 200
    assert created["Cache-Control"] == "no-store"
    raw = shown_key(created.content.decode())
    key = key_named("CRM sync")
    assert (key.prefix, key.scopes) == (raw[:12], ["contracts", "purchases"])
    reloaded = owner.get("/portal/keys/").content.decode()
    assert raw not in reloaded and f"{key.prefix}…" in reloaded  # never shown again, the prefix is
    response = api_client(raw).get("/api/v1/contracts")
    assert response.status_code == 200
    assert [c["id"] for c in response.json()["results"]] == ["ctr_acme_west"]
    assert api_client(raw).get("/api/v1/returns").status_code == 200  # purchases scope
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert "never" not in owner.get("/portal/keys/").content.decode().split(f"{key.prefix}…")[1].split("</tr>")[0]


def test_only_the_organizations_own_scopes_are_offered_and_bad_input_is_shown_by_the_field(orgs):
    owner = login("owner@acme.test")  # a buyer: no "leads" scope
    page = owner.get("/portal/keys/").content.decode()
    assert 'value="contracts"' in page and 'value="leads"' not in page
    before = keys_of("acme")

    no_name = owner.post("/portal/keys/", {"name": "  ", "scopes": ["reports"]})
    no_scope = owner.post("/portal/keys/", {"name": "kept name"})
    foreign_scope = owner.post("/portal/keys/", {"name": "x", "scopes": ["leads"]})

    assert no_name.status_code == no_scope.status_code == foreign_scope.status_code == 400
    assert no_name.context["create_form"].errors["name"] == ["This field is required."]
    assert no_scope.context["create_form"].errors["scopes"] == ["Choose at least one scope."]
    assert 'value="kept name"' in no_scope.content.decode()
    assert "leads is not one of the available choices" in str(foreign_scope.context["create_form"].errors["scopes"])
    assert keys_of("acme") == before


def test_rotate_gives_a_new_secret_and_the_old_one_stops_at_once(orgs):
    owner = login("owner@acme.test")
    key = key_named("ops")  # ACME_KEY
    assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 200  # cached as valid now

    rotated = owner.post(f"/portal/keys/{key.pk}/rotate/")

    assert rotated.status_code == 200
    html = rotated.content.decode()
    new_raw = shown_key(html)
    assert "The previous secret stopped working the moment this one was made." in html
    assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 401
    assert api_client(new_raw).get("/api/v1/contracts").status_code == 200
    key.refresh_from_db()
    assert (key.name, key.prefix, key.scopes, key.rotated_at is not None) == (
        "ops",
        new_raw[:12],
        ["contracts", "purchases", "reports"],
        True,
    )
    assert new_raw not in owner.get("/portal/keys/").content.decode()


def test_revoke_stops_the_key_at_once(orgs):
    owner = login("owner@acme.test")
    key = key_named("ops")
    assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 200

    revoked = owner.post(f"/portal/keys/{key.pk}/revoke/", follow=True)

    assert "“ops” (gvl_test_acm…) is revoked: calls with it are refused from now on." in revoked.content.decode()
    response = api_client(ACME_KEY).get("/api/v1/contracts")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    # A revoked key cannot be rotated back to life.
    again = owner.post(f"/portal/keys/{key.pk}/rotate/")
    assert again.status_code == 409 and "A revoked key cannot be rotated" in again.content.decode()
    assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 401


def test_rename_keeps_the_secret(orgs):
    owner = login("owner@acme.test")
    key = key_named("ops")

    assert owner.post(f"/portal/keys/{key.pk}/rename/", {"name": "Ops dashboard"}).status_code == 302
    empty = owner.post(f"/portal/keys/{key.pk}/rename/", {"name": ""})

    assert empty.status_code == 400 and "Give the key a name" in empty.content.decode()
    assert key_named("Ops dashboard").key_hash == key.key_hash
    assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 200


@pytest.mark.parametrize("role", ["manager", "analyst"])
def test_managers_and_analysts_see_the_keys_read_only_and_every_change_is_refused(orgs, role):
    client = member("someone@acme.test", "acme", role)
    key = key_named("ops")
    before = keys_of("acme")

    page = client.get("/portal/keys/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Read-only: only an owner creates" in html and "gvl_test_acm…" in html
    assert "Create key" not in html and "Rotate" not in html and "Revoke" not in html

    for url, data in (
        ("/portal/keys/", {"name": "sneaky", "scopes": ["contracts"]}),
        (f"/portal/keys/{key.pk}/rename/", {"name": "sneaky"}),
        (f"/portal/keys/{key.pk}/rotate/", {}),
        (f"/portal/keys/{key.pk}/revoke/", {}),
    ):
        refused = client.post(url, data)
        assert refused.status_code == 403, url
        assert "This page needs the <strong>owner</strong> role" in refused.content.decode()
        assert "gvl_" not in refused.content.decode().replace("gvl_…", "")
    assert keys_of("acme") == before
    assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 200


def test_the_services_refuse_a_non_owner_actor_too(orgs):
    member("m@acme.test", "acme", "manager")
    manager = Membership.objects.get(user__email="m@acme.test")
    before = keys_of("acme")

    with pytest.raises(RoleRefused):
        api_key_create(organization=orgs["acme"], name="x", scopes=["reports"], actor=manager)
    with pytest.raises(RoleRefused):
        api_key_rotate(actor=manager, api_key_id=key_named("ops").pk)
    assert keys_of("acme") == before


def test_an_outsider_gets_404_for_another_organizations_key(orgs):
    key = key_named("ops")  # Acme's
    charlie = login("charlie@charlie.test")  # an owner elsewhere
    before = keys_of("acme")

    for action in ("rename", "rotate", "revoke"):
        assert charlie.post(f"/portal/keys/{key.pk}/{action}/", {"name": "mine"}).status_code == 404
    assert charlie.post(f"/portal/keys/{key.pk}/explode/").status_code == 404
    assert "gvl_test_acm" not in charlie.get("/portal/keys/").content.decode()
    assert keys_of("acme") == before
    assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 200
