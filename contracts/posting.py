"""A campaign's posting instructions, generated from its offer's field schema.

One place makes every example a seller's engineer copies from the campaign page (the ping, the
post and the full lead, as JSON and as curl) and the table of fields beside them; the test console
starts from the same examples, and a test sends them to the real API, so the page cannot drift
from what the API accepts (tests/contracts/test_campaign_page.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from contracts.models import Campaign

API_KEY = "$GAVEL_API_KEY"  # the key is never shown on a page: the seller's shell holds it
PING_ID = "$PING_ID"  # the post's ping id, from the ping's answer
ENDPOINTS = {"ping": "/api/v1/ping", "post": "/api/v1/post", "lead": "/api/v1/leads"}

# Example values by field type; a few common names get a likelier value than the type's.
_BY_TYPE: dict[str, Any] = {
    "string": "example",
    "boolean": True,
    "date": "1990-06-15",
    "state": "CA",
    "zip": "94107",
    "email": "jane.doe@example.com",
    "phone": "+12015550123",  # a fictional number that phone validation accepts
}
_BY_NAME = {
    "first_name": "Jane",
    "last_name": "Doe",
    "name": "Jane Doe",
    "city": "San Francisco",
    "address": "1 Market St",
    "street": "1 Market St",
}
_ALLOWED = {
    "string": "Text",
    "integer": "A whole number",
    "decimal": 'A number (send it as a string to keep the cents: "1250.50")',
    "boolean": "true or false",
    "date": "A date, YYYY-MM-DD",
    "state": "A US state, DC or territory code (CA, TX…)",
    "zip": "A 5-digit ZIP code or ZIP+4 (94107, 94107-1234)",
    "email": "An email address",
    "phone": "A US phone number, or an international one with its + code; no extension",
}
CONSENT = {
    "text": "I agree to be contacted by phone and email about my request.",
    "captured_at": "2026-01-15T17:50:00Z",
    "ip": "203.0.113.9",
    "user_agent": "Mozilla/5.0",
    "page_url": "https://quotes.example/form",
}
TRACKING = {"sub_id1": "your-traffic-source"}


@dataclass(frozen=True)
class FieldGuide:
    """One field as the page lists it."""

    name: str
    type: str
    ping: str  # "required", "optional" or "no" (post only)
    post: str  # "required" or "optional"
    pii: bool
    allowed: str
    example: Any

    @property
    def example_json(self) -> str:
        return json.dumps(self.example)


@dataclass(frozen=True)
class PostingGuide:
    """Everything the campaign page shows a seller's engineer, for one campaign."""

    campaign_id: str
    fields: tuple[FieldGuide, ...]
    ping: dict[str, Any]
    post: dict[str, Any]  # its ping_id is :data:`PING_ID`, to be replaced by the ping's answer
    lead: dict[str, Any]

    def json(self, kind: str) -> str:
        return json.dumps(getattr(self, kind), indent=2)

    @property
    def ping_json(self) -> str:
        return self.json("ping")

    @property
    def post_json(self) -> str:
        return self.json("post")

    def curl(self, kind: str, *, base_url: str) -> str:
        """A curl command that sends the example; the key comes from the shell, as does the ping id."""
        return (
            f"curl -sS -X POST {base_url}{ENDPOINTS[kind]} \\\n"
            f'  -H "Authorization: Bearer {API_KEY}" \\\n'
            '  -H "Content-Type: application/json" \\\n'
            f"  --data-binary @- <<JSON\n{self.json(kind)}\nJSON"
        )

    def post_for(self, ping_id: str) -> dict[str, Any]:
        """The post example, for the ping ``ping_id``."""
        return {**self.post, "ping_id": ping_id}


def _example(spec: Any) -> Any:
    if spec.type == "choice":
        return spec.choices[0]
    if spec.type in ("integer", "decimal"):
        number = Decimal(35) if spec.type == "integer" else Decimal("1000.00")
        if spec.min is not None and number < spec.min:
            number = spec.min
        if spec.max is not None and number > spec.max:
            number = spec.max
        return int(number) if spec.type == "integer" else f"{number:.2f}"
    value = _BY_NAME.get(spec.name, _BY_TYPE[spec.type]) if spec.type == "string" else _BY_TYPE[spec.type]
    if spec.max_length is not None and isinstance(value, str):
        value = value[: spec.max_length]
    return value


def field_example(spec: Any) -> Any:
    """The example value of one offer field, as every page that shows a sample lead uses it."""
    return _example(spec)


def _allowed(spec: Any) -> str:
    if spec.type == "choice":
        return "One of: " + ", ".join(spec.choices)
    text = _ALLOWED[spec.type]
    if spec.min is not None and spec.max is not None:
        text += f" from {spec.min} to {spec.max}"
    elif spec.min is not None:
        text += f", at least {spec.min}"
    elif spec.max is not None:
        text += f", at most {spec.max}"
    if spec.max_length is not None:
        text += f", up to {spec.max_length} characters"
    return text


def _sha256(value: str) -> str:
    # The ping's consumer hashes are of the normalized email (trimmed, lower case) and of the
    # E.164 phone; the example values already are.
    return hashlib.sha256(value.encode()).hexdigest()


def posting_guide(*, campaign: Campaign) -> PostingGuide:
    """The campaign's posting instructions and examples, from its offer's field schema."""
    specs = campaign.offer.field_specs
    fields = tuple(
        FieldGuide(
            name=spec.name,
            type=spec.type,
            ping=spec.ping,
            post="required" if spec.required else "optional",
            pii=spec.pii,
            allowed=_allowed(spec),
            example=_example(spec),
        )
        for spec in specs.values()
    )
    whole = {f.name: f.example for f in fields}
    ping: dict[str, Any] = {
        "campaign": campaign.public_id,
        "test": True,
        "lead": {f.name: f.example for f in fields if f.ping != "no"},
    }
    consumer = {
        f"{name}_sha256": _sha256(str(whole[name]).lower())
        for name in ("email", "phone")
        if name in specs and specs[name].type == name
    }
    if consumer:
        ping["consumer"] = consumer
    ping["tracking"] = TRACKING
    return PostingGuide(
        campaign_id=campaign.public_id,
        fields=fields,
        ping=ping,
        post={"ping_id": PING_ID, "lead": whole, "consent": CONSENT},
        lead={"campaign": campaign.public_id, "test": True, "lead": whole, "consent": CONSENT, "tracking": TRACKING},
    )
