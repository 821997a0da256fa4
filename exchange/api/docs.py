"""The API's OpenAPI document as a publisher's engineer reads it (``/api/docs``, ``/api/v1/schema``).

One postprocessing hook (``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``) instead of texts spread
over every view: each operation gets a description written for the reader (never the view's
docstring), every error answer is typed as the one error envelope of :mod:`exchange.api.errors`
with an example, and every operation without an example gets one, request and answer.
"""

from __future__ import annotations

import re
from typing import Any

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every 4xx and 5xx answer has this shape. A business outcome (no buyer, a duplicate) is "
    "never an error: it is a 200 with a `status` and a `reason`.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable, machine-readable: branch on it.",
                    "example": "validation_error",
                },
                "message": {
                    "type": "string",
                    "description": "For people; may change.",
                    "example": "The lead is not valid.",
                },
                "fields": {
                    "type": "object",
                    "description": "Only when the input is not valid: each bad field's path in your body "
                    "(`lead.zip`, `consent.captured_at`, `caps.day`) or `non_field_errors`, with its messages.",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}

# What each status means, and an example answer, for any endpoint that can give it.
ERRORS: dict[str, tuple[str, str, str, dict[str, list[str]] | None]] = {
    "400": (
        "The body is missing or is not a JSON object Gavel accepts.",
        "malformed_json",
        "The request body is not valid JSON. Expecting ',' delimiter: line 1 column 30.",
        None,
    ),
    "401": (
        "No API key, an unknown or revoked key, or a suspended organization.",
        "authentication_failed",
        "This API key is not valid or has been revoked.",
        None,
    ),
    "403": (
        "The key lacks this endpoint's scope, or your organization does not have its role (seller or buyer).",
        "permission_denied",
        "This API key does not have the scope this endpoint needs.",
        None,
    ),
    "404": ("No such object — or another organization's, which is answered the same.", "not_found", "Not found.", None),
    "409": ("A conflict: see the code.", "ping_already_posted", "This ping has already been posted.", None),
    "410": (
        "The ping's bids expired (`expires_at`): ping again.",
        "ping_expired",
        "The bids of this ping have expired; ping again.",
        None,
    ),
    "413": ("The body is larger than 256 KiB.", "payload_too_large", "The request body is too large.", None),
    "422": (
        "The input is not valid: `error.fields` names each bad field.",
        "validation_error",
        "The lead is not valid.",
        {"lead.zip": ["Must be a 5-digit ZIP code."]},
    ),
    "429": (
        "Too many requests: each API key may make its organization's `rate_limit_per_second` requests in "
        "one second (50 unless agreed otherwise). Wait the `Retry-After` header's seconds and retry.",
        "rate_limited",
        "Too many requests: this API key may make 50 a second. Retry after the Retry-After header's seconds. "
        "Expected available in 1 second.",
        None,
    ),
}
BODY_ERRORS = ("400", "413", "422")
RETRY_AFTER = {
    "description": "Whole seconds to wait before the key's next request is let through.",
    "schema": {"type": "integer", "minimum": 1},
}

PING_ANSWER = {
    "ping_id": "png_drasuuunviasflrkjf3s",
    "status": "accepted",
    "reason": None,
    "payout": "28.00",
    "bids": [{"bid_id": "bid_cxp5jsdkhkz2fkvbhwx7", "payout": "28.00"}],
    "expires_at": "2026-12-07T17:55:21.609550Z",
    "test": False,
}
LEAD_ANSWER = {
    "lead_id": "led_a3j4xc2rarsf77qwoacz",
    "ping_id": "png_drasuuunviasflrkjf3s",
    "status": "sold",
    "reason": None,
    "payout": "20.80",
    "redirect_url": None,
    "test": False,
}
LEAD = {
    "state": "CA",
    "zip": "94107",
    "age": 34,
    "email": "jane@example.com",
    "phone": "+12015550123",
    "first_name": "Jane",
}
CONSENT = {
    "text": "I agree to be contacted by Acme and its partners.",
    "captured_at": "2026-12-07T17:50:00Z",
    "ip": "203.0.113.9",
}
CAMPAIGN = {
    "id": "cmp_leadgen_auto",
    "slug": "leadgen-auto",
    "name": "LeadGen auto",
    "offer": "auto-insurance",
    "status": "active",
    "margin_percent": None,
    "floor": "5.00",
    "webhook_url": "",
    "created_at": "2026-12-01T09:00:00Z",
}
PORTAL = (
    "Your campaign's page in the portal (Campaigns → your campaign) shows these calls with your own fields and ids."
)

# Per operation: the description for the reader, and examples of the request and of the answer.
OPERATIONS: dict[str, dict[str, Any]] = {
    "v1_ping_create": {
        "description": "Offer a lead **without contact details** and get buyers' bids at once. Send your campaign id, "
        "the offer's ping fields (`lead`), and the SHA-256 hashes of the consumer's email and phone so buyers that "
        "already bought this consumer step aside. The answer is `accepted` with what you earn if you post "
        "(`payout`) and the time to post by (`expires_at`), or `rejected` with a `reason` (`no_buyers`, "
        "`duplicate`, `suppressed`, `below_min_score`, `campaign_paused`, `offer_paused`) — a 200 either way. "
        'Send `"test": true` while integrating: nothing is charged or paid. ' + PORTAL,
        "response": PING_ANSWER,
    },
    "v1_post_create": {
        "description": "Sell a lead you pinged: the `ping_id`, the whole lead (the same ping fields and the contact "
        "details that hash to the ping's `consumer` hashes) and the consumer's consent, before the ping's "
        "`expires_at`. The answer is `sold` with your `payout`, `unsold`, `rejected`, or `pending` (the lead is "
        "being offered again in the background: the final state comes by webhook and by `GET /api/v1/leads/{id}`).",
        "request": {"ping_id": "png_drasuuunviasflrkjf3s", "lead": LEAD, "consent": CONSENT},
        "response": LEAD_ANSWER,
        "errors": {
            "409": (
                "The ping was already posted (`ping_already_posted`), or a request with the same "
                "`Idempotency-Key` is still running (`idempotency_in_progress`).",
                "ping_already_posted",
                "This ping has already been posted.",
                None,
            )
        },
    },
    "v1_leads_create": {
        "description": "Sell a lead in one call, without pinging first: your campaign id, the whole lead with its "
        "contact details, and the consent. Buyers bid as for a ping and the lead is sold at once; the answer is a "
        "post's. " + PORTAL,
        "request": {
            "campaign": "cmp_leadgen_auto",
            "test": True,
            "lead": LEAD,
            "consent": CONSENT,
            "tracking": {"sub_id1": "google"},
        },
        "response": {**LEAD_ANSWER, "ping_id": "png_i2ur5js2ffjfs4mzhq4z", "test": True},
    },
    "v1_leads_retrieve": {
        "description": "A lead you sent: its state (`sold`, `unsold`, `pending`…), your payout, and each sale "
        "(buyers are never named). Poll this for a `pending` lead, or take the `lead.sold` / `lead.unsold` webhook.",
        "response": {
            **LEAD_ANSWER,
            "campaign": "cmp_leadgen_auto",
            "offer": "auto-insurance",
            "created_at": "2026-12-07T17:54:02.120000Z",
            "sales": [
                {
                    "sale_id": "sal_k2m4q7w9x3z5b8c1d6f0",
                    "status": "sold",
                    "payout": "20.80",
                    "sold_at": "2026-12-07T17:54:02.480000Z",
                }
            ],
        },
    },
    "campaigns_list": {
        "description": "Your organization's campaigns: the ids to ping and post with, their offer, status and "
        "payout floor.",
        "response": [CAMPAIGN],
    },
    "campaigns_get": {"description": "One of your campaigns by its id (`cmp_…`).", "response": CAMPAIGN},
    "contracts_list": {"description": "Your organization's buyer contracts, with their terms."},
    "contracts_get": {"description": "One of your buyer contracts by its id (`ctr_…`), with its terms."},
    "contracts_update": {
        "description": "Change some terms of one of your contracts (only what you send changes): pause or resume "
        "it, its price or RTB URL, caps, budget, filters, schedule. Refused terms are named in `error.fields` "
        "and nothing changes.",
        "request": {"status": "paused", "caps": {"day": 50}},
    },
    "purchases_list": {"description": "The leads you bought, newest first, with their full data and consent."},
    "purchases_get": {"description": "One lead you bought (`sal_…`), with its full data, consent and return state."},
    "purchases_return": {
        "description": "Return a lead you bought, within the contract's return window, with a "
        "reason. The exchange's operator approves or denies it; an approved return is refunded."
    },
    "returns_list": {"description": "The returns you asked for, newest first, with their state."},
    "returns_get": {"description": "One of your returns (`ret_…`)."},
    "privacy_requests_create": {
        "description": "File a consumer's deletion (`delete`) or access (`access`) request by their `email` and/or "
        "`phone`. Filed by API, it is confirmed at once (your organization vouches for the consumer) and completed "
        "in the background within minutes: a deletion erases their contact details everywhere on the exchange, "
        "suppresses them and sends `lead.erased` to the buyers that received their leads (sales and money stay); "
        "an access request produces a JSON export. Deadlines: confirm within 10 business days, answer within 45 days.",
        "request": {"kind": "delete", "email": "jane.doe@example.com"},
    },
    "privacy_requests_get": {
        "description": "A privacy request your organization filed (`prv_…`): its status and deadlines, and once "
        "completed its `result` (a deletion's counts under `erased`, an access request's JSON under `export`)."
    },
    "reports_get": {
        "description": "Your figures from `from` to `to` (inclusive days of your organization's time zone, at most "
        "366), one row per combination of `group_by` and the totals. Sellers group by `day`, `hour`, `offer`, "
        "`campaign`, `sub_id1`…`sub_id5`; buyers by `day`, `hour`, `offer`, `contract`, `source`. An organization "
        "that both sells and buys chooses with `side` (default: seller). `format=csv` answers the rows as CSV. "
        "Figures after a post count in the hour the lead was posted. A bad parameter is a 422 naming it.",
        "response": {
            "from": "2026-12-01",
            "to": "2026-12-07",
            "timezone": "America/New_York",
            "side": "seller",
            "group_by": ["day", "campaign"],
            "rows": [
                {
                    "day": "2026-12-07",
                    "campaign": "cmp_8Xk2Lm",
                    "pings": 310,
                    "accepted": 240,
                    "posted": 200,
                    "sold": 156,
                    "unsold": 44,
                    "returned": 6,
                    "conversions": 30,
                    "amount": "1248.00",
                    "returned_amount": "48.00",
                    "conversion_value": "600.00",
                }
            ],
            "totals": {
                "pings": 310,
                "accepted": 240,
                "posted": 200,
                "sold": 156,
                "unsold": 44,
                "returned": 6,
                "conversions": 30,
                "amount": "1248.00",
                "returned_amount": "48.00",
                "conversion_value": "600.00",
            },
        },
    },
    "conversions_create": {
        "description": "Tell the exchange that a lead you bought converted: its purchase (`sale_id`), what happened "
        "(`event`, your own lower-case name such as `sale` or `policy_bound`; `sale` when left out), what it was "
        "worth to you (`value`) and when (`occurred_at`, now when left out). It counts in your conversion rates by "
        "source, and the seller hears of it by postback (never who you are). There is one conversion per purchase "
        "and event: reporting the same purchase and event again answers the first one (200, unchanged), so a retry "
        "never counts twice. A returned lead may still convert.",
        "request": {
            "sale_id": "sal_b4hpdhmvcosfd54rszfz",
            "event": "sale",
            "value": "120.00",
            "occurred_at": "2026-12-08T15:20:00Z",
        },
        "response": {
            "conversion_id": "cnv_q3k7m2x9w4z8b5c1d6f0",
            "sale_id": "sal_b4hpdhmvcosfd54rszfz",
            "lead_id": "led_egozhd5xjiwftpnfyfk7",
            "event": "sale",
            "value": "120.00",
            "test": False,
            "occurred_at": "2026-12-08T15:20:00Z",
            "created_at": "2026-12-08T15:21:04.118000Z",
        },
        "errors": {
            "422": (
                "The input is not valid (`error.fields` names each bad field: `event`, `value`, `occurred_at`, "
                "`sale_id` for a purchase that was not bought), or an `Idempotency-Key` reused with another body "
                "(`idempotency_key_reused`). Nothing is recorded.",
                "validation_error",
                "The conversion is not valid.",
                {"value": ['An amount from 0.00 to 1,000,000.00, as a string such as "120.00".']},
            )
        },
    },
    "suppressions_create": {
        "description": "Suppress a consumer. Name them with exactly one of `email`, `phone`, `email_sha256`, "
        "`phone_sha256` (emails are trimmed and lower-cased, phones read as US numbers unless they start with `+` "
        "and written in E.164; only the hash is kept). `scope` `exchange` is the consumer's opt-out, honoured by "
        "every buyer; `organization` is your own do-not-contact list, honoured for your contracts only (buyers). "
        "The same consumer and scope again answers the existing suppression (200, unchanged).",
        "request": {"email": "jane.doe@example.com", "scope": "exchange", "reason": "asked by phone"},
        "response": {
            "suppression_id": "sup_q3k7m2x9w4z8b5c1d6f0",
            "kind": "email",
            "scope": "exchange",
            "consumer_sha256": "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f",
            "reason": "asked by phone",
            "created_at": "2026-12-07T17:54:02.120000Z",
        },
        "errors": {
            "422": (
                "The input is not valid (`error.fields` names each bad field: none or two identifiers, an email or "
                "phone that is not one, a bad hash, `scope`), or an `Idempotency-Key` reused with another body. "
                "Nothing is filed.",
                "validation_error",
                "The request is not valid.",
                {"phone": ["Phone is not a valid number."]},
            )
        },
    },
    "suppressions_list": {
        "description": "The suppressions your organization filed, newest first, cursor-paginated, hashes only; "
        "`scope` and `consumer_sha256` narrow them. An unknown parameter is a 422."
    },
    "conversions_list": {
        "description": "The conversions you reported, newest first, cursor-paginated; `sale_id` lists one purchase's. "
        "An unknown parameter is a 422."
    },
}


def _error(description: str, code: str, message: str, fields: dict[str, list[str]] | None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"},
                "examples": {code: {"value": {"error": error}}},
            }
        },
    }


def _example_of(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """A plausible value for ``schema`` (for operations with no written example)."""
    if "$ref" in schema:
        return _example_of(components[schema["$ref"].rsplit("/", 1)[1]], components, depth)
    for key in ("oneOf", "allOf", "anyOf"):
        if key in schema:
            return _example_of(schema[key][0], components, depth)
    if "example" in schema:
        return schema["example"]
    if "enum" in schema:
        return next((v for v in schema["enum"] if v not in (None, "")), None)
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "object" or "properties" in schema:
        if depth > 4:
            return {}
        return {k: _example_of(v, components, depth + 1) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [_example_of(schema.get("items", {}), components, depth + 1)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return False
    return {
        "date-time": "2026-12-07T17:54:02Z",
        "date": "2026-12-07",
        "decimal": "24.00",
        "uri": "https://example.com/",
        "email": "jane@example.com",
    }.get(fmt or "", "string")


def errors_and_examples(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: descriptions, typed errors and examples for every operation."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components[ERROR_COMPONENT] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            doc = OPERATIONS.get(operation.get("operationId", ""), {})
            if "description" in doc:
                operation["description"] = doc["description"]
            responses = operation.setdefault("responses", {})
            needed = {"401", "403", "429"} | ({"404"} if re.search(r"{\w+}", path) else set())
            if method in ("post", "patch", "put"):
                needed |= set(BODY_ERRORS)
            if any(p.get("name") == "cursor" for p in operation.get("parameters", [])):
                needed.add("422")  # a cursor that is not one of ours (exchange.api.pagination)
            for status in sorted(needed | {s for s in responses if s[0] in "45"}):
                written = doc.get("errors", {}).get(status)
                shown = responses.get(status, {})
                # A view's own note on the status (``{"description": "return_exists: …"}``).
                schema = shown.get("content", {}).get("application/json", {}).get("schema", {})
                described = shown.get("description") or schema.get("description")
                if written is None:
                    written = _error_of(status, described)
                responses[status] = _error(*written)
            responses["429"]["headers"] = {"Retry-After": RETRY_AFTER}
            if "requestBody" in operation:
                operation["requestBody"]["required"] = True  # an empty body is refused (core.api.parsers)
                body = operation["requestBody"].get("content", {}).get("application/json", {})
                _closed(body.get("schema", {}), components, set())
            _examples(operation, doc, components)
    for name, rule in ONE_OF_THESE.items():
        if name in components:
            components[name].update(rule)
    return result


def _needs(kind: str, names: tuple[str, ...]) -> dict[str, Any]:
    return {kind: [{"required": [name], "properties": {name: {"minLength": 1}}} for name in names]}


# Inputs whose rule names fields of which some must be given, not blank (their serializers' ``validate``).
ONE_OF_THESE: dict[str, dict[str, Any]] = {
    "SuppressionInputRequest": _needs("oneOf", ("email", "phone", "email_sha256", "phone_sha256")),
    "PrivacyRequestInputRequest": _needs("anyOf", ("email", "phone")),
}


def _closed(schema: dict[str, Any], components: dict[str, Any], seen: set[int]) -> None:
    """Every object of a request body with declared properties refuses others, as the API's
    input serializers do (core.api.serializers.StrictSerializer: "Unknown field.")."""
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen.add(id(schema))
    if "$ref" in schema:
        _closed(components[schema["$ref"].rsplit("/", 1)[1]], components, seen)
        return
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    subs = [*schema.get("properties", {}).values(), schema.get("items")]
    for key in ("oneOf", "allOf", "anyOf"):
        subs.extend(schema.get(key, []))
    for sub in subs:
        _closed(sub, components, seen)


_CODES = {
    "malformed_json": "The request body is not valid JSON.",
    "authentication_failed": "This API key is not valid or has been revoked.",
    "permission_denied": "This API key does not have the scope this endpoint needs.",
    "not_found": "Not found.",
    "ping_already_posted": "This ping has already been posted.",
    "ping_expired": "The bids of this ping have expired; ping again.",
    "validation_error": "The request is not valid.",
    "rate_limited": "Too many requests: retry after the Retry-After header's seconds.",
    "return_exists": "This purchase already has a return.",
    "return_window_closed": "The return window has closed.",
    "return_not_allowed": "This purchase cannot be returned.",
}


def _error_of(status: str, described: str | None) -> tuple[str, str, str, dict[str, list[str]] | None]:
    """The error a status stands for: the view's own code when its note names one
    (``"return_exists: …"``), else the status's usual error."""
    default = ERRORS.get(status, ("An error.", "error", "Something went wrong.", None))
    first = re.split(r"[\s:(,]", described or "", maxsplit=1)[0]
    if first in _CODES and first != default[1]:
        return (described or default[0], first, _CODES[first], None)
    if described and not re.fullmatch(r"[a-z_]+", described):  # the view says more than a bare code
        return (described, *default[1:])
    return default


def _examples(operation: dict[str, Any], doc: dict[str, Any], components: dict[str, Any]) -> None:
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None and not body.get("examples"):
        value = doc.get("request", _example_of(body.get("schema", {}), components))
        body["examples"] = {"example": {"summary": "A request", "value": value}}
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {}).get("application/json")
        if status.startswith("2") and content is not None and not content.get("examples"):
            value = doc.get("response", _example_of(content.get("schema", {}), components))
            content["examples"] = {"example": {"summary": "An answer", "value": value}}
