"""Build small markets for auction tests through the real market loader, act in them through the
API (ping, post, sell), and read back what the exchange told their organizations."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

from django.db import connections
from rest_framework.test import APIClient

from accounts.models import Organization
from accounts.tenancy import market_scope
from exchange.market import market_load
from exchange.webhooks import Event

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
                "api_keys": [{"name": "k", "scopes": ["leads"], "key": SELLER_KEY}],
                "campaigns": [{"slug": "seller-auto", "id": "cmp_seller", "offer": "auto", **(campaign or {})}],
            },
            {
                "slug": "seller2",
                "name": "Seller Two",
                "roles": ["seller"],
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
