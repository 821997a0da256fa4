"""Delivery: hand a sold lead to the buyer's system and decide whether the buyer accepted it.

``method: none`` — the buyer takes its leads from the portal and API: accepted at once.
``method: webhook`` — POST the full lead, signed; accepted when the answer is 2xx and the
contract's ``accept`` rule holds (``{path, equals}`` on the JSON body, ``{regex}`` on the text,
``{status: [...]}`` on the status code); otherwise rejected, with the reason read at
``reason_path``. A timeout is a rejection. Never called inside a database transaction.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from exchange.outbound import run_sync, session_get
from exchange.signing import UnsafeUrl, signed_headers, url_check

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


def accepted_by_rule(rule: dict[str, Any] | None, status: int, text: str) -> bool:
    if not 200 <= status < 300:
        return False
    if not rule:
        return True
    if "status" in rule:
        codes = rule["status"] if isinstance(rule["status"], list) else [rule["status"]]
        if status not in codes:
            return False
    if "regex" in rule and re.search(str(rule["regex"]), text) is None:
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


async def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> tuple[int, str]:
    async with asyncio.timeout(timeout_s):
        async with session_get().post(url, data=body, headers=headers) as response:
            raw = await response.content.read(64 * 1024)
            return response.status, raw.decode("utf-8", errors="replace")


def delivery_send(*, config: dict[str, Any], payload: dict[str, Any], secret: str) -> DeliveryResult:
    """POST the lead to the buyer and judge the answer by the contract's rule."""
    url = str(config.get("url", ""))
    timeout_s = int(config.get("timeout_ms", 5000)) / 1000
    try:
        url_check(url)
    except UnsafeUrl as exc:
        return DeliveryResult(False, "error", f"refused URL: {exc}"[:200])
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    headers = {
        **signed_headers(secret=secret, body=body),
        **{str(k): str(v) for k, v in (config.get("headers") or {}).items()},
    }
    started = time.perf_counter()
    try:
        status, text = run_sync(_post(url, body, headers, timeout_s), timeout=timeout_s + 0.5)
    except TimeoutError:
        return DeliveryResult(False, "timeout", "timeout", latency_ms=(time.perf_counter() - started) * 1000)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return DeliveryResult(
            False, "error", f"{type(exc).__name__}: {exc}"[:200], latency_ms=(time.perf_counter() - started) * 1000
        )
    latency = (time.perf_counter() - started) * 1000
    if accepted_by_rule(config.get("accept"), status, text):
        return DeliveryResult(True, "accepted", "", status, text[:RESPONSE_LIMIT], latency)
    reason = rejection_reason(config.get("reason_path"), text, status)
    return DeliveryResult(False, "rejected", reason, status, text[:RESPONSE_LIMIT], latency)


def redacted(payload: dict[str, Any], pii_fields: set[str]) -> dict[str, Any]:
    """The payload as stored in the delivery log: PII values replaced."""
    lead = {k: (REDACTED if k in pii_fields else v) for k, v in payload.get("lead", {}).items()}
    return {**payload, "lead": lead}
