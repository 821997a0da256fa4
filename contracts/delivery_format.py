"""A contract's delivery terms: how a sold lead is written for the buyer's system, and how its
answer is read.

ONE builder, :func:`delivery_render`, makes the body and headers of a delivery: the exchange sends
what it returns (``exchange/delivery.py`` signs it and posts it), and the contract page previews
it for a sample lead (``templates/contracts/_delivery_preview.html``), so the preview is what the
buyer receives. :func:`delivery_validate` checks the terms when they are saved, naming the bad key
(``delivery.fields.zip``); :func:`delivery_accepted` and :func:`delivery_reason` read the answer.

The terms (all optional but ``method`` and ``url``)::

    method: webhook               # or none: the buyer reads its leads from the portal and API
    url: https://crm.example/leads
    timeout_ms: 5000
    format: json                  # json (default) | form (application/x-www-form-urlencoded) | xml
    root: lead                    # xml: the root element's name
    fields: {zip: ZipCode, email: Email, price: Cost}   # our name → the buyer's; only these are sent
    constants: {Source: gavel}    # fixed values, sent as given
    values: {state: {CA: California}}                   # per field (ours): value → the buyer's value
    headers: {Authorization: "Bearer …"}
    accept: {path: status, equals: accepted}            # JSON answer; or {xpath: result/status,
                                                        # equals: ok}; or {regex: …}; or {status: [200]}
    reason_path: message          # or reason_xpath: result/message

Without ``fields`` a JSON delivery is the exchange's own document (the lead under ``lead``, the
consent under ``consent``); a form or XML one is flat: the sale's keys, every lead field by its
own name, the consent's as ``consent_<key>``. Our names for ``fields`` and ``values``: a lead
field of the offer, a sale key (:data:`SALE_KEYS`), or ``consent.<key>``.

XML is built with the standard library (every value escaped, characters XML cannot carry
dropped); an XML answer is parsed with defusedxml (no DTD, no entity expansion) and read with a
limited ElementTree path (``a/b``, ``.//b``, ``*``, ``.``). Regexes run on RE2, as every buyer regex.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode
from xml.etree.ElementTree import Element, SubElement, tostring  # noqa: S405 - building only; parsing is defusedxml  # nosec B405

from defusedxml import ElementTree as SafeElementTree

from contracts.rules import BuyerRegex, BuyerRegexError, buyer_regex_compile
from core.schema import FieldSpec

METHODS = ("none", "webhook")
FORMATS = ("json", "form", "xml")
CONTENT_TYPES = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
    "xml": "application/xml; charset=utf-8",
}
# What a sale adds to the lead, in the order a flat body lists them.
SALE_KEYS = ("lead_id", "sale_id", "ping_id", "offer", "price", "ref", "quality_score", "test")
CONSENT_KEYS = ("text", "captured_at", "ip", "user_agent", "page_url", "trusted_form_cert_url", "jornaya_leadid")
KEYS = {
    "method",
    "url",
    "timeout_ms",
    "format",
    "root",
    "fields",
    "constants",
    "values",
    "headers",
    "accept",
    "reason_path",
    "reason_xpath",
}
ACCEPT_KEYS = {"path", "xpath", "equals", "regex", "status"}
# Headers the exchange sets itself (the signature, the framing): a contract cannot replace them.
RESERVED_HEADERS = {
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
}
MAX_ENTRIES = 200  # fields, constants, each value map
MAX_HEADERS = 20
MAX_TEXT = 1000
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
# An XML element name as we allow it: ASCII, no colon (no namespaces), not starting with "xml".
_XML_NAME = re.compile(r"(?!xml)[A-Za-z_][A-Za-z0-9_.-]{0,99}", re.IGNORECASE)
_XPATH_STEP = r"(?:[A-Za-z_][A-Za-z0-9_.-]{0,99}|\*)"
_XPATH = re.compile(rf"\.|(?:\.//)?{_XPATH_STEP}(?:/{_XPATH_STEP}){{0,19}}")
# Characters XML 1.0 cannot carry (most control characters): dropped from values.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class DeliveryTermsError(ValueError):
    """A delivery config that cannot be used; ``path`` names the key (``delivery.fields.zip``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


# --- checking the terms -------------------------------------------------------------------------


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str) and len(str(value)) <= MAX_TEXT


def _mapping(raw: Any, path: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise DeliveryTermsError(path, "must be a mapping")
    if len(raw) > MAX_ENTRIES:
        raise DeliveryTermsError(path, f"at most {MAX_ENTRIES} entries")
    return raw


def _our_name_check(name: str, path: str, fields: Mapping[str, FieldSpec] | None) -> None:
    if fields is None:
        return
    if name in fields or name in SALE_KEYS:
        return
    if name.startswith("consent.") and name.removeprefix("consent.") in CONSENT_KEYS:
        return
    known = ", ".join([*fields, *SALE_KEYS, "consent.<key>"])
    raise DeliveryTermsError(path, f"not a field of the offer nor of the sale ({known})")


def _buyer_name_check(name: Any, path: str, xml: bool) -> None:
    if not isinstance(name, str) or not name or len(name) > 100:
        raise DeliveryTermsError(path, "must be a name of 1 to 100 characters")
    if xml and not _XML_NAME.fullmatch(name):
        raise DeliveryTermsError(
            path, f"'{name}' is not an XML element name (letters, digits, _ . -; not starting with a digit or xml)"
        )


def _accept_check(accept: Any, path: str) -> None:
    if not isinstance(accept, dict) or not accept:
        raise DeliveryTermsError(path, "must be a mapping such as {path: status, equals: accepted}")
    for key in accept:
        if key not in ACCEPT_KEYS:
            raise DeliveryTermsError(f"{path}.{key}", "unknown key")
    if "path" in accept and "xpath" in accept:
        raise DeliveryTermsError(path, "'path' (a JSON answer) or 'xpath' (an XML answer), not both")
    if ("path" in accept or "xpath" in accept) != ("equals" in accept):
        raise DeliveryTermsError(path, "'path' or 'xpath' goes with 'equals'")
    if "path" in accept and (not isinstance(accept["path"], str) or not accept["path"]):
        raise DeliveryTermsError(f"{path}.path", "must be a dotted path such as result.status")
    if "xpath" in accept:
        _xpath_check(accept["xpath"], f"{path}.xpath")
        if not isinstance(accept["equals"], str | int | float) or isinstance(accept["equals"], bool):
            raise DeliveryTermsError(f"{path}.equals", "an XML answer's text is compared with a string or a number")
    if "regex" in accept:
        if not isinstance(accept["regex"], str):
            raise DeliveryTermsError(f"{path}.regex", "must be a string")
        try:
            buyer_regex_compile(accept["regex"])
        except BuyerRegexError as exc:
            raise DeliveryTermsError(f"{path}.regex", str(exc)) from exc
    if "status" in accept:
        codes = accept["status"] if isinstance(accept["status"], list) else [accept["status"]]
        if not codes or not all(isinstance(c, int) and not isinstance(c, bool) and 200 <= c < 300 for c in codes):
            raise DeliveryTermsError(f"{path}.status", "must be 2xx status codes, e.g. [200, 201]")


def _xpath_check(xpath: Any, path: str) -> None:
    if not isinstance(xpath, str) or not _XPATH.fullmatch(xpath):
        raise DeliveryTermsError(
            path, "must be an element path such as result/status, .//status or * (names, / and .// only)"
        )


def delivery_validate(raw: Any, *, path: str = "delivery", fields: Mapping[str, FieldSpec] | None = None) -> None:
    """Check a contract's delivery terms; raise :class:`DeliveryTermsError` naming the bad key.

    ``fields``: the offer's lead fields, when known, so ``fields`` and ``values`` may only name
    what a delivery carries."""
    if raw in (None, {}):
        return
    if not isinstance(raw, dict):
        raise DeliveryTermsError(path, "must be a mapping")
    for key in raw:
        if key not in KEYS:
            raise DeliveryTermsError(f"{path}.{key}", "unknown key")
    method = raw.get("method", "none")
    if method not in METHODS:
        raise DeliveryTermsError(f"{path}.method", f"must be one of {', '.join(METHODS)}")
    if method == "webhook":
        url = raw.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise DeliveryTermsError(f"{path}.url", "a webhook delivery needs an http(s) URL")
    timeout = raw.get("timeout_ms", 5000)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 10 <= timeout <= 60000:
        raise DeliveryTermsError(f"{path}.timeout_ms", "must be an integer between 10 and 60000")
    fmt = raw.get("format", "json")
    if fmt not in FORMATS:
        raise DeliveryTermsError(f"{path}.format", f"must be one of {', '.join(FORMATS)}")
    xml = fmt == "xml"
    if "root" in raw:
        if not xml:
            raise DeliveryTermsError(f"{path}.root", "goes with format: xml")
        _buyer_name_check(raw["root"], f"{path}.root", xml=True)
    sent: dict[str, str] = {}  # the buyer's name → where it was given, to refuse a name sent twice
    for ours, theirs in _mapping(raw.get("fields", {}), f"{path}.fields").items():
        _our_name_check(ours, f"{path}.fields.{ours}", fields)
        _buyer_name_check(theirs, f"{path}.fields.{ours}", xml)
        if theirs in sent:
            raise DeliveryTermsError(f"{path}.fields.{ours}", f"'{theirs}' is already sent for {sent[theirs]}")
        sent[theirs] = ours
    for theirs, value in _mapping(raw.get("constants", {}), f"{path}.constants").items():
        _buyer_name_check(theirs, f"{path}.constants.{theirs}", xml)
        if not _scalar(value):
            raise DeliveryTermsError(f"{path}.constants.{theirs}", f"must be a text, number or boolean (≤ {MAX_TEXT})")
        if theirs in sent:
            raise DeliveryTermsError(f"{path}.constants.{theirs}", f"'{theirs}' is already sent for {sent[theirs]}")
        sent[theirs] = "a constant"
    for ours, table in _mapping(raw.get("values", {}), f"{path}.values").items():
        _our_name_check(ours, f"{path}.values.{ours}", fields)
        for value, replacement in _mapping(table, f"{path}.values.{ours}").items():
            if not _scalar(replacement):
                raise DeliveryTermsError(f"{path}.values.{ours}.{value}", "must be a text, number or boolean")
    headers = _mapping(raw.get("headers", {}), f"{path}.headers")
    if len(headers) > MAX_HEADERS:
        raise DeliveryTermsError(f"{path}.headers", f"at most {MAX_HEADERS} headers")
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise DeliveryTermsError(f"{path}.headers.{name}", "not a header name (letters, digits, - and _)")
        if name.lower() in RESERVED_HEADERS:
            raise DeliveryTermsError(f"{path}.headers.{name}", "set by the exchange (signature and framing)")
        if not _scalar(value) or value is None or any(c in str(value) for c in "\r\n\0"):
            raise DeliveryTermsError(f"{path}.headers.{name}", "must be one line of text")
    if raw.get("accept") is not None:
        _accept_check(raw["accept"], f"{path}.accept")
    if raw.get("reason_path") is not None and not isinstance(raw["reason_path"], str):
        raise DeliveryTermsError(f"{path}.reason_path", "must be a string")
    if raw.get("reason_xpath") is not None:
        _xpath_check(raw["reason_xpath"], f"{path}.reason_xpath")


# --- writing the lead -----------------------------------------------------------------------------


def _source(payload: Mapping[str, Any], name: str) -> Any:
    """What our name ``name`` stands for in a delivery's payload (None if the lead lacks it)."""
    if name.startswith("consent."):
        return (payload.get("consent") or {}).get(name.removeprefix("consent."))
    lead = payload.get("lead") or {}
    if name in lead:
        return lead[name]
    return payload.get(name)


def _flat(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A flat document of the whole payload (form and XML without ``fields``)."""
    flat = {key: payload.get(key) for key in SALE_KEYS}
    flat.update(payload.get("lead") or {})
    flat.update({f"consent_{key}": value for key, value in (payload.get("consent") or {}).items()})
    return flat


def delivery_document(config: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    """The values the buyer receives, by the buyer's names, before encoding."""
    fields: Mapping[str, str] = config.get("fields") or {}
    tables: Mapping[str, Mapping[str, Any]] = config.get("values") or {}
    if not fields and not tables and not config.get("constants") and config.get("format", "json") == "json":
        return dict(payload)  # the exchange's own document (and the JSON delivery it always was)
    if fields:
        document = {theirs: _mapped(tables, ours, _source(payload, ours)) for ours, theirs in fields.items()}
    elif config.get("format", "json") == "json":
        document = dict(payload)
        document["lead"] = {k: _mapped(tables, k, v) for k, v in (payload.get("lead") or {}).items()}
    else:
        document = {name: _mapped(tables, name, value) for name, value in _flat(payload).items()}
    document.update(config.get("constants") or {})
    return document


def _mapped(tables: Mapping[str, Mapping[str, Any]], name: str, value: Any) -> Any:
    table = tables.get(name)
    if table is None:
        return value
    key = _text(value)
    return table[key] if key in table else value


def _text(value: Any) -> str:
    """A value as form and XML carry it: true/false, empty for none, else its text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def delivery_render(config: Mapping[str, Any], payload: Mapping[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    """The delivery of ``payload`` (the sale's document: its keys, ``lead`` and ``consent``) as the
    contract's terms write it: (content type, body, headers). The headers are the content type
    and the contract's own; the exchange adds its signature when it sends them."""
    fmt = config.get("format", "json")
    document = delivery_document(config, payload)
    if fmt == "form":
        body = urlencode([(name, _text(value)) for name, value in document.items()]).encode()
    elif fmt == "xml":
        root = Element(str(config.get("root") or "lead"))
        for name, value in document.items():
            SubElement(root, name).text = _NOT_XML.sub("", _text(value))
        body = tostring(root, encoding="utf-8", xml_declaration=True)
    else:
        body = json.dumps(document, separators=(",", ":"), default=str).encode()
    content_type = CONTENT_TYPES.get(fmt, CONTENT_TYPES["json"])
    headers = {"content-type": content_type}
    for name, value in (config.get("headers") or {}).items():
        headers["content-type" if name.lower() == "content-type" else str(name)] = str(value)
    return headers["content-type"], body, headers


# --- reading the answer ---------------------------------------------------------------------------


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


def xml_path(text: str, xpath: str) -> str | None:
    """The stripped text at ``xpath`` in an XML answer, or None (no such element, not XML, or XML
    that declares a DTD or entities, which is refused, never expanded)."""
    if not _XPATH.fullmatch(xpath):
        return None
    try:
        root = SafeElementTree.fromstring(text.encode())
    except Exception:  # noqa: BLE001 - malformed or hostile XML: no value, whatever the parser's error
        return None
    found = root.findtext(xpath)
    return None if found is None else found.strip()


@functools.lru_cache(maxsize=256)
def _accept_regex(pattern: str) -> BuyerRegex:
    """The contract's ``accept.regex``, on RE2 as every buyer regex (checked when saved); one saved
    before that check and no longer valid accepts nothing."""
    try:
        return buyer_regex_compile(pattern)
    except BuyerRegexError:
        return buyer_regex_compile(r"[^\s\S]")


def delivery_accepted(rule: Mapping[str, Any] | None, status: int, text: str) -> bool:
    """Whether the buyer accepted: a 2xx answer for which every key of the rule holds."""
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
    if "xpath" in rule and xml_path(text, str(rule["xpath"])) != _text(rule.get("equals")):
        return False
    return True


def delivery_reason(config: Mapping[str, Any], text: str, status: int) -> str:
    """Why the buyer turned the lead down: read at ``reason_path`` (JSON) or ``reason_xpath``
    (XML), else ``HTTP <status>`` or ``not accepted``."""
    value: Any = None
    if config.get("reason_path"):
        try:
            value = json_path(json.loads(text), str(config["reason_path"]))
        except ValueError:
            value = None
    if value in (None, "") and config.get("reason_xpath"):
        value = xml_path(text, str(config["reason_xpath"]))
    if value not in (None, ""):
        return str(value)[:200]
    return f"HTTP {status}" if not 200 <= status < 300 else "not accepted"
