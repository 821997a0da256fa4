from __future__ import annotations

import hashlib

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import (
    AccountsError,
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
    api_key_scopes_set,
    organization_status_set,
)
from accounts.tenancy import market_scope
from tests.conftest import ACME_KEY, ACME_RO_KEY, api_client

pytestmark = pytest.mark.django_db


def test_a_key_is_stored_as_prefix_and_hash_never_raw(orgs):
    key, raw = api_key_create(organization=orgs["acme"], name="new", scopes=["reports"])

    assert raw.startswith("gvl_") and len(raw) > 40
    with market_scope():
        stored = ApiKey.objects.get(pk=key.pk)
        assert stored.prefix == raw[:12]
        assert stored.key_hash == hashlib.sha256(raw.encode()).hexdigest()
        values = [str(v) for v in ApiKey.objects.filter(pk=key.pk).values_list().get()]
    assert raw not in values


def test_two_generated_keys_differ(orgs):
    _, one = api_key_create(organization=orgs["acme"], name="a", scopes=[])
    _, two = api_key_create(organization=orgs["acme"], name="b", scopes=[])
    assert one != two


def test_authenticate_finds_the_key_and_touches_last_used(orgs):
    key = api_key_authenticate(ACME_KEY)

    assert key is not None and key.organization == orgs["acme"]
    assert key.last_used_at is not None
    assert (timezone.now() - key.last_used_at).total_seconds() < 5


@pytest.mark.parametrize("raw", ["", "gvl_", "gvl_unknown_key_000000000000", ACME_KEY + "x", ACME_KEY[:-1], "Bearer"])
def test_authenticate_refuses_unknown_values(orgs, raw):
    assert api_key_authenticate(raw) is None


def test_a_revoked_key_stops_working_at_once(orgs):
    key = api_key_authenticate(ACME_KEY)
    assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 200

    api_key_revoke(api_key=key)

    assert api_key_authenticate(ACME_KEY) is None
    response = api_client(ACME_KEY).get("/api/v1/contracts")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_revoking_twice_keeps_the_first_time(orgs):
    key = api_key_authenticate(ACME_KEY)
    first = api_key_revoke(api_key=key).revoked_at
    second = api_key_revoke(api_key=key).revoked_at
    assert first is not None and first == second


def test_x_api_key_header_works_too(orgs):
    client = api_client()
    client.credentials(HTTP_X_API_KEY=ACME_KEY)
    assert client.get("/api/v1/contracts").status_code == 200


@pytest.mark.parametrize("header", ["Token " + ACME_KEY, "Bearer", "Bearer a b", "Basic Zm9vOmJhcg=="])
def test_malformed_authorization_is_401(orgs, header):
    client = api_client()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/contracts")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_no_key_is_401(orgs):
    response = api_client().get("/api/v1/contracts")
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "authentication_failed", "message": "Send an API key: 'Authorization: Bearer <key>'."}
    }


def test_new_scopes_apply_at_once_even_to_a_cached_key(orgs):
    key = api_key_authenticate(ACME_KEY)
    assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 200  # now cached

    api_key_scopes_set(api_key=key, scopes=["reports"])

    response = api_client(ACME_KEY).get("/api/v1/contracts")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    with pytest.raises(AccountsError, match="unknown scope 'root'"):
        api_key_scopes_set(api_key=key, scopes=["root"])
    key.refresh_from_db()
    assert key.scopes == ["reports"]


def test_a_key_without_the_scope_is_403(orgs):
    response = api_client(ACME_RO_KEY).get("/api/v1/contracts")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_a_suspended_organization_cannot_authenticate(orgs):
    assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 200  # now cached
    organization_status_set(organization=orgs["acme"], status="suspended")
    assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 401
    organization_status_set(organization=orgs["acme"], status="active")
    assert api_client(ACME_KEY).get("/api/v1/contracts").status_code == 200


def test_a_cached_key_still_stops_at_once_when_revoked(orgs):
    key = api_key_authenticate(ACME_KEY)
    assert api_key_authenticate(ACME_KEY).pk == key.pk  # from the cache
    api_key_revoke(api_key=key)
    assert api_key_authenticate(ACME_KEY) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scopes": ["everything"]}, "unknown scope 'everything'"),
        ({"scopes": [], "raw_key": "short"}, "must start with 'gvl_'"),
        ({"scopes": [], "raw_key": "abc_0000000000000000000000"}, "must start with 'gvl_'"),
        ({"scopes": [], "raw_key": ACME_KEY}, "already in use"),
    ],
)
def test_bad_keys_are_refused_and_nothing_is_created(orgs, kwargs, message):
    with market_scope():
        before = ApiKey.objects.count()
    with pytest.raises(AccountsError, match=message):
        api_key_create(organization=orgs["acme"], name="bad", **kwargs)
    with market_scope():
        assert ApiKey.objects.count() == before
