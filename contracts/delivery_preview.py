"""What a contract's delivery sends, shown on its page: a sample lead built from the offer's
schema, written by the same builder the exchange sends with (:func:`contracts.delivery_format.delivery_render`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.delivery_format import DeliveryTermsError, delivery_render, delivery_validate
from contracts.models import BuyerContract
from contracts.posting import CONSENT, field_example

# Stand-ins for what only a real sale has; the signature headers are made when the lead is sent.
SIGNATURE_HEADERS = {
    "webhook-id": "msg_… (new for each delivery)",
    "webhook-timestamp": "… (the time it is sent)",
    "webhook-signature": "v1,… (signed with your organization's secret)",
}


@dataclass(frozen=True)
class DeliveryPreview:
    method: str
    url: str = ""
    content_type: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    error: str = ""  # terms saved before a check that now refuses them


def sample_payload(contract: BuyerContract) -> dict[str, Any]:
    """A sale of a sample lead to ``contract``, in the exchange's own document shape."""
    price = contract.price if contract.price is not None else contract.max_price
    return {
        "lead_id": "led_example",
        "sale_id": "sal_example",
        "ping_id": "png_example",
        "offer": contract.offer.slug,
        "price": f"{price:.2f}" if price is not None else "25.00",
        "ref": "",
        "quality_score": 80,
        "test": False,
        "lead": {spec.name: field_example(spec) for spec in contract.offer.field_specs.values()},
        "consent": dict(CONSENT),
    }


def delivery_preview(contract: BuyerContract) -> DeliveryPreview:
    """The exact body and headers the contract's delivery would send for a sample lead."""
    config = contract.delivery or {}
    method = str(config.get("method", "none"))
    if method != "webhook":
        return DeliveryPreview(method=method)
    try:
        delivery_validate(config, fields=contract.offer.field_specs)
    except DeliveryTermsError as exc:
        return DeliveryPreview(method=method, url=str(config.get("url", "")), error=str(exc))
    content_type, body, headers = delivery_render(config, sample_payload(contract))
    return DeliveryPreview(
        method=method,
        url=str(config.get("url", "")),
        content_type=content_type,
        headers=tuple({**headers, **SIGNATURE_HEADERS}.items()),
        body=body.decode("utf-8"),
    )
