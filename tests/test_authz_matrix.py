"""The authorization matrix: every route of the URL conf, tried as everyone who may knock.

API endpoints: anonymous (401), a key of the right side without the endpoint's scope (403), the
right key on the outsider's ids (404) and lists that never show the outsider's rows, and the right
key (allowed). Portal pages: anonymous (to the login page), the outsider's ids (404) and lists
without the outsider's rows, an analyst (reads allowed, writes 403) and the owner (allowed).
Public pages answer anyone. A route in the URL conf, or an operation in the OpenAPI schema, that
the table below does not cover fails ``test_every_route_is_in_the_matrix``.

One world is built per module (``world_build``) inside a transaction rolled back at the end; each
test runs in a savepoint of it, so a write by one test is gone before the next.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from tests.exchange.builder import WORLD_KEYS, client, world_build
from tests.sessions import login

pytestmark = pytest.mark.django_db

# Whose rows each side's tests read, and whose must never show.
SUBJECT = {"buyer": "acme", "seller": "seller", None: "acme"}
OUTSIDER = {"acme": "zed", "seller": "seller2"}


@dataclass(frozen=True)
class Api:
    """An API endpoint: the side of the key, its scope (``reports``'s endpoint takes any side),
    its URL kwargs (``kind`` looked up in the world, ``=literal`` as is), the kind of row a list
    answers, and the body a write sends (valid enough to reach the row)."""

    side: str
    scope: str
    kwargs: dict[str, str] = field(default_factory=dict)
    lists: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    query: str = ""


@dataclass(frozen=True)
class Page:
    """A portal page: its side (None: any organization), kwargs as for ``Api``, the least role that
    reads it (None: POST only) and that writes it (None: no POST), the kind of row it lists."""

    side: str | None
    kwargs: dict[str, str] = field(default_factory=dict)
    read: str | None = "analyst"
    write: str | None = None
    lists: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    reads: int = 200  # the status of an allowed read


@dataclass(frozen=True)
class Public:
    """Anyone's page: the status an anonymous GET gets."""

    status: int = 200
    kwargs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Staff:
    """The operator's pages: staff only; to anyone else they are not there (404), and anonymous
    visitors are sent to the admin's login (302) — unless the route answers otherwise (``/metrics``,
    read by a scraper: 401 without credentials, 403 for a tenant)."""

    kwargs: dict[str, str] = field(default_factory=dict)
    anonymous: int = 302
    tenant: int = 404


MATRIX: dict[str, Api | Page | Public | Staff] = {
    # --- the API ---
    "api:ping": Api("seller", "leads"),
    "api:post": Api("seller", "leads"),
    "api:lead-create": Api("seller", "leads"),
    "api:lead-detail": Api("seller", "leads", {"lead_id": "lead"}),
    "api:contract-list": Api("buyer", "contracts", lists="contract"),
    "api:contract-detail": Api("buyer", "contracts", {"contract_id": "contract"}),
    "api:campaign-list": Api("seller", "leads", lists="campaign"),
    "api:campaign-detail": Api("seller", "leads", {"campaign_id": "campaign"}),
    "api:purchase-list": Api("buyer", "purchases", lists="sale"),
    "api:purchase-detail": Api("buyer", "purchases", {"sale_id": "sale"}),
    "api:purchase-return": Api("buyer", "purchases", {"sale_id": "sale"}, body={"reason": "bad_phone"}),
    "api:return-list": Api("buyer", "purchases", lists="return"),
    "api:return-detail": Api("buyer", "purchases", {"return_id": "return"}),
    "api:suppression-list": Api("buyer", "purchases", lists="suppression"),
    "api:privacy-request-create": Api("seller", "leads"),
    "api:privacy-request": Api("seller", "leads", {"request_id": "privacy"}),
    "api:reports": Api("buyer", "reports", query="?from=2026-01-01&to=2026-01-31"),
    "api:conversion-list": Api("buyer", "purchases", lists="conversion"),
    "api:schema": Public(),
    "api-docs": Public(),
    # --- public pages ---
    "root": Public(302),
    "accounts:login": Public(),
    "accounts:logout": Public(405),  # POST only: a GET must not log anyone out
    "accounts:invite_accept": Public(404, {"token": "=no-such-token"}),
    "opt_out": Public(),
    "opt_out_done": Public(),
    "privacy": Public(),
    "privacy-confirm": Public(200, {"token": "=no-such-token"}),
    "hosted-form": Public(200, {"campaign_id": "=cmp_seller"}),
    # --- the operator ---
    "healthz": Public(),
    "readyz": Public(),  # PostgreSQL, Redis and the broker all answer in the suite
    "metrics": Staff(anonymous=401, tenant=403),
    "ops:ops": Staff(),
    "ops:ops_csv": Staff({"table": "=buyers"}),
    # --- the portal: any organization ---
    "accounts:home": Page(None),
    "accounts:switch": Page(None, read=None, write="analyst", body={"organization": "organization"}),
    "accounts:team": Page(None, write="owner", body={"email": "new@example.com", "role": "analyst"}),
    "accounts:member_role": Page(None, {"membership_id": "spare"}, read=None, write="owner", body={"role": "analyst"}),
    "accounts:member_remove": Page(None, {"membership_id": "spare"}, read=None, write="owner"),
    "accounts:invitation_cancel": Page(None, {"invitation_id": "invitation"}, read=None, write="owner"),
    "accounts:keys": Page(None, write="owner", body={"name": "new", "scopes": ["reports"]}),
    "accounts:key_action": Page(None, {"key_id": "key", "action": "=revoke"}, read=None, write="owner"),
    "accounts:audit": Page(None, read="manager"),
    "exchange:webhooks": Page(None, write="manager", lists="webhook", body={"url": "http://127.0.0.1:9/new"}),
    "exchange:webhook_endpoint": Page(None, {"public_id": "webhook", "action": "=disable"}, read=None, write="manager"),
    "exchange:webhook_replay": Page(None, {"public_id": "delivery"}, read=None, write="manager"),
    "leads:suppression_list": Page(None, lists="suppression_hash"),
    "leads:suppression_upload": Page(None, read=None, write="manager"),
    "leads:suppression_upload_progress": Page(None, {"upload_id": "upload"}),
    "leads:suppression_upload_errors": Page(None, {"upload_id": "upload"}),
    "leads:suppression_delete": Page(None, {"suppression_id": "suppression"}, read=None, write="manager"),
    "billing:home": Page(None, reads=302),  # to the balance or the payouts
    "billing:statements": Page(None),
    "reporting:dashboard": Page(None),
    "reporting:dashboard_csv": Page(None, {"side": "=buyer", "table": "=by-day"}),
    # --- the portal: buyers ---
    "contracts:contract_list": Page("buyer", lists="contract"),
    "contracts:contract_new": Page("buyer", read="manager", write="manager"),
    "contracts:contract_detail": Page("buyer", {"public_id": "contract"}),
    "contracts:contract_edit": Page("buyer", {"public_id": "contract"}, read="manager", write="manager"),
    "contracts:contract_status": Page(
        "buyer", {"public_id": "contract"}, read=None, write="manager", body={"action": "pause"}
    ),
    "exchange:contract_test_delivery": Page("buyer", {"public_id": "contract"}, read=None, write="manager"),
    "exchange:contract_test": Page("buyer"),
    "exchange:purchase_list": Page("buyer", lists="sale"),
    "exchange:purchase_export": Page("buyer", lists="sale"),
    "exchange:purchase_detail": Page(
        "buyer", {"public_id": "sale"}, write="manager", body={"reason": "bad_phone", "note": ""}
    ),
    "exchange:return_list": Page("buyer", lists="return"),
    "exchange:bid_list": Page("buyer"),
    "reporting:purchase_conversions": Page(
        "buyer", {"public_id": "sale"}, write="manager", lists="conversion", body={"event": "x", "value": "1"}
    ),
    "billing:balance": Page("buyer"),
    # --- the portal: sellers ---
    "contracts:campaign_list": Page("seller", lists="campaign"),
    "contracts:campaign_detail": Page("seller", {"public_id": "campaign"}),
    "exchange:campaign_console": Page("seller", {"public_id": "campaign"}, read=None, write="manager"),
    "exchange:campaign_terms": Page("seller", {"public_id": "campaign"}, write="manager", body={"floor": "2.00"}),
    "exchange:lead_detail": Page("seller", {"public_id": "lead"}),
    "leads:lead_list": Page("seller", lists="lead"),
    "leads:lead_export": Page("seller", lists="lead"),
    "reporting:postback_list": Page("seller", lists="postback_url"),
    "reporting:campaign_postbacks": Page(
        "seller", {"public_id": "campaign"}, write="manager", body={"postback_url": "http://127.0.0.1:9/x"}
    ),
    "billing:payouts": Page("seller"),
}

# Routes answered elsewhere: the operator's admin (tests/exchange/test_admin.py) and the API's
# catch-all for unknown paths (tests/exchange/test_unknown_paths.py).
NOT_IN_MATRIX = {"admin"}


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: Any) -> Any:
    with django_db_blocker.unblock(), transaction.atomic():
        ids = world_build()
        yield ids
        transaction.set_rollback(True)


def routes() -> list[tuple[str, str]]:
    """(name, route) of every pattern of the URL conf; a nameless pattern named by its route."""
    found: list[tuple[str, str]] = []

    def walk(patterns: list[Any], namespace: str, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                if p.namespace == "admin":
                    found.append(("admin", prefix + str(p.pattern)))
                    continue
                inner = f"{namespace}{p.namespace}:" if p.namespace else namespace
                walk(p.url_patterns, inner, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                found.append(
                    (f"{namespace}{p.name}" if p.name else f"unnamed:{prefix}{p.pattern}", prefix + str(p.pattern))
                )

    walk(get_resolver().url_patterns, "", "")
    return found


def url(name: str, spec: Api | Page | Public | Staff, ids: dict[str, Any]) -> str:
    kwargs = {k: v[1:] if v.startswith("=") else ids[v] for k, v in spec.kwargs.items()}
    return reverse(name, kwargs=kwargs)


def methods(name: str) -> list[str]:
    """The HTTP methods the API view of ``name`` answers."""
    match = get_resolver().resolve(reverse(name, kwargs=_placeholders(name)))
    view = match.func.view_class  # type: ignore[attr-defined]
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)]


def _placeholders(name: str) -> dict[str, str]:
    return {k: "x" for k in MATRIX[name].kwargs}  # type: ignore[union-attr]


def call(c: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    if not isinstance(c, APIClient):
        return getattr(c, method)(path, body or {}) if method == "post" else getattr(c, method)(path)
    if method == "get":
        return c.get(path)
    return getattr(c, method)(path, json.dumps(body or {}), content_type="application/json")


API = sorted(n for n, s in MATRIX.items() if isinstance(s, Api))
PAGES = sorted(n for n, s in MATRIX.items() if isinstance(s, Page))


def test_every_route_is_in_the_matrix() -> None:
    names = {name for name, _ in routes()}
    unnamed = {n for n in names if n.startswith("unnamed:")}
    assert unnamed == {"unnamed:api/v1/^.*$"}, "a nameless route: name it and add it to MATRIX"
    missing = names - set(MATRIX) - NOT_IN_MATRIX - unnamed
    assert not missing, f"routes without a row in the authorization matrix: {sorted(missing)}"
    assert set(MATRIX) <= names, f"rows for routes that are gone: {sorted(set(MATRIX) - names)}"


def test_every_schema_operation_is_in_the_matrix() -> None:
    schema = Client().get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    seen = set()
    for path, operations in schema["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        match = get_resolver().resolve(concrete)
        name = f"{':'.join(match.namespaces)}:{match.url_name}" if match.namespaces else match.url_name
        assert isinstance(MATRIX.get(name), Api), f"{path} ({name}) is not in the matrix"
        for method in operations:
            if method in ("get", "post", "put", "patch", "delete"):
                assert method in methods(name), (path, method)
                seen.add((name, method))
    # ... and every method of every API row is documented.
    assert seen == {(n, m) for n in API for m in methods(n)}


@pytest.mark.parametrize("name", API)
def test_api(world: dict[str, Any], name: str) -> None:
    spec = MATRIX[name]
    assert isinstance(spec, Api)
    slug = SUBJECT[spec.side]
    mine, theirs = url(name, spec, world[slug]) + spec.query, url(name, spec, world[OUTSIDER[slug]]) + spec.query
    wrong = next(k for scope, k in WORLD_KEYS[slug].items() if scope not in (spec.scope, "all", "leads"))
    right = client(WORLD_KEYS[slug]["all"])
    for method in methods(name):
        assert call(client(None), method, mine, spec.body).status_code == 401, (method, "anonymous")  # type: ignore[arg-type]
        refused = call(client(wrong), method, mine, spec.body)
        assert refused.status_code == 403, (method, "no scope", refused.content)
        if spec.kwargs:
            outsider = call(right, method, theirs, spec.body)
            assert outsider.status_code == 404, (method, "outsider", outsider.content)
        allowed = call(right, method, mine, spec.body)
        assert allowed.status_code not in (401, 403, 404, 405) and allowed.status_code < 500, (method, allowed.content)
        if method == "get":
            assert allowed.status_code == 200, allowed.content
    if spec.lists:
        body = right.get(mine).content.decode()
        assert world[slug][spec.lists] in body
        assert world[OUTSIDER[slug]][spec.lists] not in body


@pytest.mark.parametrize("name", PAGES)
def test_page(world: dict[str, Any], name: str) -> None:
    spec = MATRIX[name]
    assert isinstance(spec, Page)
    slug = SUBJECT[spec.side]
    ids = world[slug]
    body = {k: (ids[v] if isinstance(v, str) and v in ids else v) for k, v in spec.body.items()}
    mine, theirs = url(name, spec, ids), url(name, spec, world[OUTSIDER[slug]])
    method = "get" if spec.read else "post"

    anonymous = call(Client(), method, mine, body)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/"), method

    owner = login(f"owner@{slug}.test")
    if spec.kwargs and not all(v.startswith("=") for v in spec.kwargs.values()):
        assert call(owner, method, theirs, body).status_code == 404, "outsider"

    analyst = login(f"analyst@{slug}.test")
    if spec.read:
        expected = spec.reads if spec.read == "analyst" else 403
        assert analyst.get(mine).status_code == expected, "analyst reads"
    if spec.write:
        expected_write = 403 if spec.write != "analyst" else None
        answer = analyst.post(mine, body)
        if expected_write:
            assert answer.status_code == 403, ("analyst writes", answer.status_code)

    if spec.read:
        page = owner.get(mine)
        assert page.status_code == spec.reads, "owner reads"
        if spec.lists:
            content = b"".join(page.streaming_content) if page.streaming else page.content
            assert ids[spec.lists].encode() in content
            assert world[OUTSIDER[slug]][spec.lists].encode() not in content
    if spec.write:
        answer = owner.post(mine, body)
        assert answer.status_code not in (403, 404, 405) and answer.status_code < 500, ("owner writes", answer)


@pytest.mark.parametrize("name", sorted(n for n, s in MATRIX.items() if isinstance(s, Public)))
def test_public(world: dict[str, Any], name: str) -> None:
    spec = MATRIX[name]
    assert isinstance(spec, Public)
    assert Client().get(url(name, spec, world["seller"])).status_code == spec.status


@pytest.mark.parametrize("name", sorted(n for n, s in MATRIX.items() if isinstance(s, Staff)))
def test_staff(world: dict[str, Any], name: str, operator_client: Client) -> None:
    spec = MATRIX[name]
    path = url(name, spec, {})
    anonymous = Client().get(path)
    assert anonymous.status_code == spec.anonymous
    tenant = login("owner@acme.test").get(path)
    assert tenant.status_code == spec.tenant
    assert operator_client.get(path).status_code == 200


def test_side_pages_of_the_other_side(world: dict[str, Any]) -> None:
    """A seller's owner on a buyer's page: a list is a 403 page, one thing's page a 404 (and the
    other way round)."""
    for name in PAGES:
        spec = MATRIX[name]
        assert isinstance(spec, Page)
        if spec.side is None or spec.read is None:
            continue
        other = "seller" if spec.side == "buyer" else "acme"
        answer = login(f"owner@{other}.test").get(url(name, spec, world[SUBJECT[spec.side]]))
        assert answer.status_code == (404 if spec.kwargs else 403), name
