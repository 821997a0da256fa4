"""Delivery: hand a sold lead to the buyer's system and decide whether the buyer accepted it.

``method: none`` — the buyer takes its leads from the portal and API: accepted at once.
``method: webhook`` — POST the full lead, signed; accepted when the answer is 2xx and the
contract's ``accept`` rule holds (``{path, equals}`` on the JSON body, ``{regex}`` on the text,
``{status: [...]}`` on the status code); otherwise rejected, with the reason read at
``reason_path``. A timeout is a rejection; so is a redirect (reason ``redirect``), which is
never followed. Sent through the one outbound client (:mod:`core.outbound`), which vets the
address it connects to. Never called inside a database transaction.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from contracts.rules import BuyerRegex, BuyerRegexError, buyer_regex_compile
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


def json_path(document: Any, path: str) -> Any:
    """The value at a dotted path (``result.status``, ``errors.0.message``), or None."""
    current = document
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


@functools.lru_cache(maxsize=256)
def _accept_regex(pattern: str) -> BuyerRegex:
    """The contract's ``accept.regex``, on RE2 as every buyer regex (checked when saved); one saved
    before that check and no longer valid accepts nothing."""
    try:
        return buyer_regex_compile(pattern)
    except BuyerRegexError:
        return buyer_regex_compile(r"[^\s\S]")


def accepted_by_rule(rule: dict[str, Any] | None, status: int, text: str) -> bool:
    if not 200 <= status < 300:
        return False
    if not rule:
        return True
    if "status" in rule:
        codes = rule["status"] if isinstance(rule["status"], list) else [rule["status"]]
        if status not in codes:
            return False
    if "regex" in rule and _accept_regex(str(rule["regex"])).search(text) is None:
        return False
    if "path" in rule:
        try:
            document = json.loads(text)
        except ValueError:
            return False
        if json_path(document, str(rule["path"])) != rule.get("equals"):
            return False
    return True


def rejection_reason(reason_path: str | None, text: str, status: int) -> str:
    if reason_path:
        try:
            value = json_path(json.loads(text), reason_path)
        except ValueError:
            value = None
        if value not in (None, ""):
            return str(value)[:200]
    return f"HTTP {status}" if not 200 <= status < 300 else "not accepted"


def delivery_request(*, config: dict[str, Any], payload: dict[str, Any], secret: str) -> OutboundRequest:
    """The signed POST of the lead to the buyer's delivery URL, with the contract's extra headers."""
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    headers = {
        **signed_headers(secret=secret, body=body),
        **{str(k): str(v) for k, v in (config.get("headers") or {}).items()},
    }
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
    reason = rejection_reason(config.get("reason_path"), text, status)
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
