"""Delivery: hand a sold lead to the buyer's system and decide whether the buyer accepted it.

``method: none`` — the buyer takes its leads from the portal and API: accepted at once.
``method: webhook`` — POST the full lead, signed, written as the contract's terms say (JSON, form
or XML; its field names, fixed values and value maps; its headers: :mod:`contracts.delivery_format`,
the one builder the contract page previews with); accepted when the answer is 2xx and the
contract's ``accept`` rule holds (``{path, equals}`` on a JSON body, ``{xpath, equals}`` on an XML
one, ``{regex}`` on the text, ``{status: [...]}`` on the status code); otherwise rejected, with the
reason read at ``reason_path`` (or ``reason_xpath``). A timeout is a rejection; so is a redirect
(reason ``redirect``), which is never followed. Sent through the one outbound client
(:mod:`core.outbound`), which vets the address it connects to. Never called inside a database transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.delivery_format import delivery_accepted, delivery_reason, delivery_render
from core.outbound import REFUSED, TIMEOUT, OutboundRequest, OutboundResponse, http_send
from exchange.signing import signed_headers

RESPONSE_LIMIT = 2048
REDACTED = "[redacted]"


@dataclass(frozen=True)
class DeliveryResult:
    accepted: bool
    outcome: str  # accepted | rejected | timeout | error
    reason: str = ""
    status_code: int | None = None
    response: str = ""
    latency_ms: float = 0.0


def accepted_by_rule(rule: dict[str, Any] | None, status: int, text: str) -> bool:
    """Whether the answer passes the contract's ``accept`` rule
    (:func:`contracts.delivery_format.delivery_accepted`)."""
    return delivery_accepted(rule, status, text)


def delivery_request(*, config: dict[str, Any], payload: dict[str, Any], secret: str) -> OutboundRequest:
    """The signed POST of the lead to the buyer's delivery URL, written by the contract's terms
    (:func:`contracts.delivery_format.delivery_render`: format, field names, fixed values, value
    maps, headers — the builder the contract page previews with)."""
    _content_type, body, rendered = delivery_render(config, payload)
    signed = {k: v for k, v in signed_headers(secret=secret, body=body).items() if k != "content-type"}
    headers = {**signed, **rendered}
    return OutboundRequest(str(config.get("url", "")), body, headers, int(config.get("timeout_ms", 5000)) / 1000)


def delivery_judge(*, config: dict[str, Any], response: OutboundResponse) -> DeliveryResult:
    """The buyer's answer read by the contract's rule.

    A redirect is a rejection (reason ``redirect``): the client never follows one, so no one but
    the buyer's own endpoint has the lead, and the buyer did not accept it there. What it
    answered along with the 3xx is not kept, only where it pointed.
    """
    latency = response.latency_ms
    if response.status is None:
        if response.error == TIMEOUT:
            return DeliveryResult(False, "timeout", "timeout", latency_ms=latency)
        if response.error == REFUSED:
            return DeliveryResult(False, "error", f"refused URL: {response.detail}"[:200], latency_ms=latency)
        return DeliveryResult(False, "error", response.detail[:200], latency_ms=latency)
    status = response.status
    if response.redirect:
        shown = f"Location: {response.location}" if response.location else ""
        return DeliveryResult(False, "rejected", "redirect", status, shown[:RESPONSE_LIMIT], latency)
    text = response.body.decode("utf-8", errors="replace")
    if accepted_by_rule(config.get("accept"), status, text):
        return DeliveryResult(True, "accepted", "", status, text[:RESPONSE_LIMIT], latency)
    reason = delivery_reason(config, text, status)
    return DeliveryResult(False, "rejected", reason, status, text[:RESPONSE_LIMIT], latency)


def delivery_send(*, config: dict[str, Any], payload: dict[str, Any], secret: str) -> DeliveryResult:
    """POST the lead to the buyer and judge the answer by the contract's rule.

    Several deliveries at once: :func:`~core.outbound.http_send_all` their
    :func:`delivery_request`\\ s and :func:`delivery_judge` each answer.
    """
    response = http_send(delivery_request(config=config, payload=payload, secret=secret))
    return delivery_judge(config=config, response=response)


def redacted(payload: dict[str, Any], pii_fields: set[str]) -> dict[str, Any]:
    """The payload as stored in the delivery log: PII values replaced."""
    lead = {k: (REDACTED if k in pii_fields else v) for k, v in payload.get("lead", {}).items()}
    return {**payload, "lead": lead}
