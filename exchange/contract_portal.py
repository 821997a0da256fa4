"""The contract page's *Send test lead*: a sample lead of the offer, sent to the contract's delivery
URL through the real delivery code (signed, the contract's headers, its timeout and accept rule),
and what was sent and answered shown to the buyer. Nothing is sold, billed or stored.

Here and not in the contracts app: delivery is the exchange's (the layer above the contracts)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.portal import portal_page
from contracts.models import BuyerContract
from contracts.selectors import contract_get
from core.ids import public_id_new
from core.outbound import http_send
from core.schema import FieldSpec
from exchange.delivery import DeliveryResult, delivery_judge, delivery_request

SAMPLE_TEXT = {"first_name": "Test", "last_name": "Lead", "city": "Springfield", "address": "1 Test Street"}


def _sample_value(spec: FieldSpec) -> Any:
    """A value of ``spec`` a buyer's system would take for a real one (within its bounds)."""
    if spec.choices:
        return spec.choices[0]
    if spec.type in ("integer", "decimal"):
        low = spec.min if spec.min is not None else Decimal(30)
        number = max(low, min(Decimal(30), spec.max if spec.max is not None else Decimal(30)))
        return int(number) if spec.type == "integer" else f"{number:.2f}"
    value: Any = {
        "boolean": True,
        "date": "1990-01-15",
        "state": "CA",
        "zip": "94107",
        "email": "test.lead@example.com",
        "phone": "+12015550123",
    }.get(spec.type, SAMPLE_TEXT.get(spec.name, "Test"))
    if isinstance(value, str) and spec.max_length:
        return value[: spec.max_length]
    return value


def sample_payload(contract: BuyerContract) -> dict[str, Any]:
    """The body of a delivery, as a sale sends it, for a made-up lead marked as a test."""
    lead = {name: _sample_value(spec) for name, spec in contract.offer.field_specs.items()}
    return {
        "lead_id": public_id_new("led_test_", length=12),
        "sale_id": public_id_new("sal_test_", length=12),
        "ping_id": None,
        "offer": contract.offer.slug,
        "price": f"{contract.price or Decimal(0):.2f}",
        "ref": "",
        "quality_score": 50,
        "test": True,
        "lead": lead,
        "consent": {
            "text": "Test lead sent from the Gavel portal.",
            "captured_at": timezone.now().isoformat(timespec="seconds"),
            "ip": "203.0.113.9",
        },
    }


def reason_words(result: DeliveryResult, timeout_ms: int) -> str:
    """Why a delivery was not accepted, in words."""
    reason = result.reason
    if result.outcome == "timeout":
        return f"Your server did not answer within {timeout_ms} ms."
    if reason == "redirect":
        return "Your server answered with a redirect; deliveries never follow one."
    if reason.startswith("refused URL"):
        return f"The exchange will not call this address ({reason.partition(': ')[2]})."
    if result.outcome == "error":
        return f"The request failed: {reason}."
    if reason.startswith("HTTP "):
        return f"Your server answered {reason}, not 2xx."
    if reason == "not accepted":
        return "The answer did not meet your accept rule."
    return f"Your server rejected it: {reason}"


@require_POST
@portal_page(side="buyer", role="manager")
def contract_test_delivery(request: HttpRequest, public_id: str) -> HttpResponse:
    contract = contract_get(organization=request.organization, public_id=public_id)  # type: ignore[attr-defined]
    config = dict(contract.delivery or {})
    context: dict[str, Any] = {"contract": contract}
    if config.get("method", "none") != "webhook":
        context["nothing"] = True
    else:
        payload = sample_payload(contract)
        outbound = delivery_request(config=config, payload=payload, secret=contract.organization.signing_secret)
        result = delivery_judge(config=config, response=http_send(outbound))
        context.update(
            url=outbound.url,
            headers=sorted(outbound.headers.items()),
            body=json.dumps(payload, indent=2),
            result=result,
            reason=None if result.accepted else reason_words(result, int(config.get("timeout_ms", 5000))),
        )
    template = "exchange/test_delivery_result.html" if request.htmx else "exchange/test_delivery.html"  # type: ignore[attr-defined]
    return render(request, template, context)
