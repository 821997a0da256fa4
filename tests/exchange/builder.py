"""Build small markets for auction tests through the real market loader, act in them through the
API (ping, post, sell), and read back what the exchange told their organizations."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from rest_framework.test import APIClient

from accounts.models import ApiKey, Invitation, Membership, Organization
from accounts.services import invitation_create, membership_set, user_upsert
from accounts.tenancy import market_scope
from exchange.market import market_load
from exchange.models import Sale
from exchange.webhooks import Event
from exchange.webhooks.models import EventDelivery
from exchange.webhooks.services import endpoint_create, event_emit
from leads.models import SuppressionUpload
from reporting.models import Postback
from tests.sessions import PASSWORD, login

SELLER_KEY = "gvl_test_seller_00000000000000"
SELLER2_KEY = "gvl_test_seller2_0000000000000"
BUYER_KEY_PREFIX = "gvl_test_buyer_"

FIELDS = [
    {"name": "state", "type": "state", "ping": "required"},
    {"name": "zip", "type": "zip", "ping": "required"},
    {"name": "age", "type": "integer", "ping": "optional", "min": 18, "max": 120},
    {"name": "email", "type": "email", "pii": True},
    {"name": "phone", "type": "phone", "pii": True},
    {"name": "first_name", "type": "string", "pii": True},
]


def buyer(
    slug: str,
    price: str | None = "10.00",
    *,
    balance: str = "1000.00",
    credit_limit: str = "0.00",
    contracts: list[dict[str, Any]] | None = None,
    **contract: Any,
) -> dict[str, Any]:
    """A buyer organization with one contract (``slug``-c) unless ``contracts`` is given."""
    if contracts is None:
        contracts = [{"slug": f"{slug}-c", "id": f"ctr_{slug}", "offer": "auto", "price": price, **contract}]
    return {
        "slug": slug,
        "name": slug.title(),
        "roles": ["buyer"],
        "balance": balance,
        "credit_limit": credit_limit,
        "api_keys": [{"name": "k", "scopes": ["contracts", "purchases"], "key": f"{BUYER_KEY_PREFIX}{slug}_000000"}],
        "contracts": contracts,
    }


def market(*buyers: dict[str, Any], campaign: dict[str, Any] | None = None, **offer: Any) -> dict[str, Any]:
    data = {
        "offers": [
            {"slug": "auto", "name": "Auto", "margin_percent": "20", "floor": "1.00", "fields": FIELDS, **offer}
        ],
        "organizations": [
            *buyers,
            {
                "slug": "seller",
                "name": "Seller",
                "roles": ["seller"],
                # Tests send bursts of requests from one key; the limiter is tested on its own.
                "rate_limit_per_second": 10000,
                "api_keys": [{"name": "k", "scopes": ["leads"], "key": SELLER_KEY}],
                "campaigns": [{"slug": "seller-auto", "id": "cmp_seller", "offer": "auto", **(campaign or {})}],
            },
            {
                "slug": "seller2",
                "name": "Seller Two",
                "roles": ["seller"],
                "rate_limit_per_second": 10000,
                "api_keys": [{"name": "k", "scopes": ["leads"], "key": SELLER2_KEY}],
                "campaigns": [{"slug": "seller2-auto", "id": "cmp_seller2", "offer": "auto"}],
            },
        ],
    }
    return data


def load(*buyers: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return market_load(market(*buyers, **kwargs))


def client(key: str = SELLER_KEY) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return c


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def person(n: int = 0) -> dict[str, str]:
    """A consumer: email and phone (valid fictional US number) and their hashes."""
    email = f"consumer{n}@example.com"
    phone = f"+1201555{100 + n % 100:04d}" if n < 100 else f"+1202555{100 + n % 100:04d}"
    return {"email": email, "phone": phone, "email_sha256": sha(email), "phone_sha256": sha(phone)}


def ping_body(n: int = 0, campaign: str = "cmp_seller", **lead: Any) -> dict[str, Any]:
    who = person(n)
    return {
        "campaign": campaign,
        "lead": {"state": "CA", "zip": "94107", "age": 34, **lead},
        "consumer": {"email_sha256": who["email_sha256"], "phone_sha256": who["phone_sha256"]},
    }


CONSENT = {"text": "I agree to be contacted.", "captured_at": "2026-11-22T10:00:00Z", "ip": "203.0.113.9"}


def full_lead(n: int = 0, **lead: Any) -> dict[str, Any]:
    """Consumer ``n``'s whole lead (the ping's fields and the PII), as a post or full lead sends it."""
    who = person(n)
    return {
        "state": "CA",
        "zip": "94107",
        "age": 34,
        "email": who["email"],
        "phone": who["phone"],
        "first_name": "Jane",
        **lead,
    }


def post_body(ping_id: str, n: int = 0, **lead: Any) -> dict[str, Any]:
    return {"ping_id": ping_id, "lead": full_lead(n, **lead), "consent": CONSENT}


def lead_body(n: int = 0, campaign: str = "cmp_seller", test: bool = False, **lead: Any) -> dict[str, Any]:
    return {"campaign": campaign, "test": test, "lead": full_lead(n, **lead), "consent": CONSENT}


def ping(n: int = 0, key: str = SELLER_KEY, **kwargs: Any) -> dict[str, Any]:
    response = client(key).post("/api/v1/ping", ping_body(n, **kwargs), format="json")
    assert response.status_code == 200, response.content
    return response.json()


def post(ping_id: str, n: int = 0, key: str = SELLER_KEY, **lead: Any) -> dict[str, Any]:
    response = client(key).post("/api/v1/post", post_body(ping_id, n, **lead), format="json")
    assert response.status_code == 200, response.content
    return response.json()


def sell(n: int = 0, key: str = SELLER_KEY, campaign: str = "cmp_seller", **lead: Any) -> dict[str, Any]:
    """Ping consumer ``n`` and post the lead when a buyer accepts it: the post's answer (sold,
    pending...), else the ping's (rejected)."""
    answer = ping(n, key=key, campaign=campaign, **lead)
    if answer["status"] != "accepted":
        return answer
    return post(answer["ping_id"], n, key=key, **lead)


def org(slug: str) -> Organization:
    return Organization.objects.get(slug=slug)


def events(type: str, slug: str | None = None) -> list[dict[str, Any]]:
    """The data of the webhook events of ``type`` (to the organization ``slug`` only, if given), oldest first."""
    with market_scope():
        found = Event.objects.filter(type=type).order_by("pk")
        if slug is not None:
            found = found.filter(organization__slug=slug)
        return [e.data for e in found]


def run_at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together; each thread has its own connection."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def worker(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = call()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


# --- A whole small exchange, for the authorization matrix and the schema fuzzing ---------------

# Each side has its own organization and an outsider of the same side with the same kinds of rows.
WORLD_KEYS = {
    slug: {scope: f"gvl_test_{slug}_{scope}_0000000" for scope in ("leads", "contracts", "purchases", "reports", "all")}
    for slug in ("acme", "zed", "seller", "seller2")
}
WORLD_ORGS = {"acme": "buyer", "zed": "buyer", "seller": "seller", "seller2": "seller"}
WORLD_STATES = {"acme": "CA", "zed": "TX"}  # acme buys the seller's leads, zed the outsider seller's


def _world_keys(slug: str) -> list[dict[str, Any]]:
    scopes = ["leads"] if WORLD_ORGS[slug] == "seller" else ["contracts", "purchases", "reports"]
    keys = [{"name": scope, "scopes": [scope], "key": WORLD_KEYS[slug][scope]} for scope in WORLD_KEYS[slug]]
    keys[-1]["scopes"] = [*scopes, "reports"] if "reports" not in scopes else scopes
    return keys


def world_market() -> dict[str, Any]:
    """Two buyers (acme, and zed its outsider) and two sellers (seller, and seller2), each with API
    keys of one scope each and one with all of its side's scopes (``WORLD_KEYS[slug]["all"]``)."""
    organizations: list[dict[str, Any]] = []
    for slug, side in WORLD_ORGS.items():
        row: dict[str, Any] = {"slug": slug, "name": slug.title(), "roles": [side], "api_keys": _world_keys(slug)}
        if side == "buyer":
            row |= {"balance": "1000.00"}
            row["contracts"] = [
                {
                    "slug": f"{slug}-c",
                    "id": f"ctr_{slug}",
                    "offer": "auto",
                    "price": "20.00",
                    "return_window_hours": 72,
                    "filters": {"field": "state", "op": "in", "value": [WORLD_STATES[slug]]},
                }
            ]
        else:
            row["campaigns"] = [
                {
                    "slug": f"{slug}-auto",
                    "id": f"cmp_{slug}",
                    "offer": "auto",
                    "postback_url": f"http://127.0.0.1:9/pb/{slug}",
                }
            ]
        organizations.append(row)
    return {
        "offers": [
            {"slug": "auto", "name": "Auto", "margin_percent": "20", "floor": "1.00", "fields": FIELDS},
        ],
        "organizations": organizations,
    }


def world_build() -> dict[str, dict[str, Any]]:
    """Load the world and make one row of every kind for each organization, through the API and the
    portal as their users would. Answers ``{slug: {kind: id}}``; kinds: contract, campaign, lead,
    sale, return, conversion, suppression, upload, privacy, postback, webhook, delivery, key,
    member (an analyst's membership), spare (a manager's membership), invitation."""
    market_load(world_market())
    ids: dict[str, dict[str, Any]] = {slug: {} for slug in WORLD_ORGS}
    for slug, side in WORLD_ORGS.items():
        organization = org(slug)
        for role in ("owner", "manager", "analyst"):
            membership_set(
                user=user_upsert(email=f"{role}@{slug}.test", password=PASSWORD), organization=organization, role=role
            )
        with market_scope():
            endpoint, _ = endpoint_create(organization=organization, url=f"http://127.0.0.1:9/{slug}")
            event_emit(organization_id=organization.pk, type="balance.low", data={"organization": slug})
            owner = Membership.objects.get(organization=organization, role="owner")
            ids[slug]["member"] = Membership.objects.get(organization=organization, role="analyst").pk
            ids[slug]["spare"] = Membership.objects.get(organization=organization, role="manager").pk
            ids[slug]["key"] = ApiKey.objects.filter(organization=organization).order_by("pk").first().pk  # type: ignore[union-attr]
        invitation_create(actor=owner, email=f"new@{slug}.test", role="analyst", site_url="http://testserver")
        with market_scope():
            ids[slug]["invitation"] = Invitation.objects.get(organization=organization).pk
        ids[slug]["webhook"] = endpoint.public_id
        keys = WORLD_KEYS[slug]
        portal = login(f"owner@{slug}.test")
        upload = portal.post(
            "/portal/suppressions/upload",
            {"file": _csv(f"upload@{slug}.test"), "scope": "exchange", "reason": "matrix"},
        )
        assert upload.status_code == 302, upload.content
        with market_scope():
            ids[slug]["upload"] = SuppressionUpload.objects.get(organization=organization).public_id
        # A buyer's own list (which it may remove from), a seller's opt-out.
        key, scope = (keys["all"], "organization") if side == "buyer" else (keys["leads"], "exchange")
        answer = client(key).post(
            "/api/v1/suppressions", {"email": f"opted-out@{slug}.test", "scope": scope}, format="json"
        )
        assert answer.status_code == 201, answer.content
        ids[slug]["suppression"] = answer.json()["suppression_id"]
        ids[slug]["suppression_hash"] = answer.json()["consumer_sha256"]
        ids[slug]["organization"] = organization.pk
        ids[slug]["postback_url"] = f"http://127.0.0.1:9/pb/{slug}"
        if side == "seller":
            ids[slug]["campaign"] = f"cmp_{slug}"
            state = "CA" if slug == "seller" else "TX"
            n = 0 if slug == "seller" else 50
            sold = [sell(n + i, key=keys["leads"], campaign=f"cmp_{slug}", state=state) for i in range(3)]
            assert [s["status"] for s in sold] == ["sold"] * 3, sold
            ids[slug]["lead"] = sold[0]["lead_id"]
            ids[slug]["leads"] = [s["lead_id"] for s in sold]
            answer = client(keys["leads"]).post(
                "/api/v1/privacy-requests", {"kind": "access", "email": f"consumer{n + 1}@example.com"}, format="json"
            )
            assert answer.status_code in (200, 201), answer.content
            ids[slug]["privacy"] = answer.json()["request_id"]
    for buyer_slug, seller_slug in (("acme", "seller"), ("zed", "seller2")):
        keys = WORLD_KEYS[buyer_slug]
        with market_scope():
            sales = list(
                Sale.objects.filter(lead__public_id__in=ids[seller_slug]["leads"])
                .order_by("pk")
                .values_list("public_id", flat=True)
            )
        assert len(sales) == 3, sales
        ids[buyer_slug]["sale"] = sales[0]
        ids[buyer_slug]["contract"] = f"ctr_{buyer_slug}"
        answer = client(keys["all"]).post(
            f"/api/v1/purchases/{sales[1]}/return", {"reason": "bad_phone"}, format="json"
        )
        assert answer.status_code in (200, 201, 202), answer.content
        ids[buyer_slug]["return"] = answer.json()["return_id"]
        answer = client(keys["all"]).post(
            "/api/v1/conversions", {"sale_id": sales[0], "event": "bound", "value": "100"}, format="json"
        )
        assert answer.status_code == 201, answer.content
        ids[buyer_slug]["conversion"] = answer.json()["conversion_id"]
    for slug in WORLD_ORGS:
        with market_scope():
            postback = Postback.objects.filter(organization__slug=slug).order_by("pk").first()
            delivery = EventDelivery.objects.filter(endpoint__public_id=ids[slug]["webhook"]).order_by("pk").first()
        if postback is not None:
            ids[slug]["postback"] = postback.public_id
        if delivery is not None:
            ids[slug]["delivery"] = delivery.public_id
    return ids


def _csv(email: str) -> Any:
    return SimpleUploadedFile("list.csv", f"email\n{email}\n".encode(), content_type="text/csv")
