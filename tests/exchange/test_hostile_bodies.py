"""No 5xx from any body (issue 12, item 5): every POST, PUT and PATCH endpoint of the API, as the
OpenAPI schema lists them (so a new endpoint is covered without touching this file), gets hostile
bodies and answers each with a 4xx in the API's error format, changing nothing."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient
from rest_framework.views import APIView

from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from contracts.rules import RuleError, modifiers_validate, rule_validate
from core.json_document import MAX_DEPTH, JsonDocumentError, json_depth, json_document_parse
from core.schema import offer_fields_parse
from exchange.auction import book
from tests.billing.conftest import ACME_KEY, sold
from tests.exchange.builder import CONSENT, SELLER_KEY, buyer, full_lead, load, ping_body
from tests.exchange.test_admin import form_data

BODY_METHODS = ("post", "put", "patch")
PROJECT_APPS = ("accounts", "exchange", "contracts", "leads", "billing", "reporting")


def _schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


SCHEMA = _schema()
ENDPOINTS = sorted(
    (method.upper(), path, operation["operationId"])
    for path, operations in SCHEMA["paths"].items()
    for method, operation in operations.items()
    if method in BODY_METHODS
)

# A body each endpoint takes, so a hostile value in one of its fields reaches the handler's own
# checks. An endpoint not named here is still covered, from an empty object.
GOOD_BODIES: dict[str, dict[str, Any]] = {
    "v1_ping_create": ping_body(7),
    "v1_post_create": {"ping_id": "png_missing", "lead": full_lead(7), "consent": CONSENT},
    "v1_leads_create": {"campaign": "cmp_seller", "lead": full_lead(7), "consent": CONSENT},
    "contracts_update": {"price": "12.00", "filters": {"field": "state", "op": "in", "value": ["CA"]}},
    "purchases_return": {"reason": "fraud", "note": "A bot."},
}


def _deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


# Each one a body no endpoint may take: (what it is, the bytes, the Content-Type, the status).
HOSTILE_BODIES: list[tuple[str, bytes, str | None, int]] = [
    ("20000 nested [", b"[" * 20_000, "application/json", 400),
    ("20000 nested [ closed", b"[" * 20_000 + b"]" * 20_000, "application/json", 400),
    ('20000 nested {"a":', b'{"a":' * 20_000 + b"1" + b"}" * 20_000, "application/json", 400),
    # Within the interpreter's recursion limit, so the standard library would parse it.
    ("900 nested [", b"[" * 900 + b"]" * 900, "application/json", 400),
    (f"{MAX_DEPTH + 1} nested [", json.dumps({"a": _deep(MAX_DEPTH)}).encode(), "application/json", 400),
    ("oversized", b'{"a": "' + b"x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b'"}', "application/json", 413),
    ("invalid UTF-8", b'{"a": "\xff\xfe"}', "application/json", 400),
    ("UTF-8 encoded surrogate", b'{"a": "\xed\xa0\x80"}', "application/json", 400),
    ("escaped lone surrogate", b'{"a": "\\ud800"}', "application/json", 400),
    ("escaped lone low surrogate in a key", b'{"\\udc00": 1}', "application/json", 400),
    ("raw NUL", b'{"a": "\x00"}', "application/json", 400),
    ("escaped NUL", b'{"a": "x\\u0000y"}', "application/json", 400),
    ("escaped NUL in a key", b'{"\\u0000": 1}', "application/json", 400),
    ("1e400", b'{"a": 1e400}', "application/json", 400),
    ("-1e400", b'{"a": [-1e400]}', "application/json", 400),
    ("NaN", b'{"a": NaN}', "application/json", 400),
    ("Infinity", b'{"a": -Infinity}', "application/json", 400),
    # Past Python's int-string conversion limit (4300 digits by default).
    ("10**5000", b'{"a": 1' + b"0" * 5000 + b"}", "application/json", 400),
    ("duplicate keys", b'{"a": 1, "a": 2}', "application/json", 400),
    ("nested duplicate keys", b'{"lead": {"state": "CA", "state": "TX"}}', "application/json", 400),
    ("byte order mark", b'\xef\xbb\xbf{"a": 1}', "application/json", 400),
    ("not JSON", b"{not json", "application/json", 400),
    ("two documents", b'{"a": 1}{"a": 2}', "application/json", 400),
    ("empty body", b"", "application/json", 400),
    ("whitespace body", b" \r\n", "application/json", 400),
    ("empty body, no Content-Type", b"", None, 400),
    ("JSON, no Content-Type", b'{"a": 1}', None, 415),
    ("text/plain", b'{"a": 1}', "text/plain", 415),
    ("form", b"a=1&b=2", "application/x-www-form-urlencoded", 415),
    (
        "multipart",
        b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--\r\n",
        "multipart/form-data; boundary=x",
        415,
    ),
    ("latin-1 charset", '{"a": "é"}'.encode("latin-1"), "application/json; charset=latin-1", 400),
    ("top-level list", b"[]", "application/json", 422),
    ("top-level string", b'"x"', "application/json", 422),
    ("top-level number", b"1", "application/json", 422),
    ("top-level null", b"null", "application/json", 422),
]


@pytest.fixture
def hostile_market(db: None) -> dict[str, str]:
    """Acme buys California at 30.00 and has bought one lead: the path parameters' values."""
    load(buyer("acme", "30.00", filters={"field": "state", "op": "in", "value": ["CA"]}))
    sale = sold(1)
    return {
        "contract_id": "ctr_acme",
        "campaign_id": "cmp_seller",
        "sale_id": sale.public_id,
        "lead_id": sale.lead.public_id,
    }


def _url(path: str, params: dict[str, str]) -> str:
    for name, value in params.items():
        path = path.replace(f"{{{name}}}", value)
    assert "{" not in path, f"give the hostile-body tests a value for the path parameter in {path}"
    return path


def _key(url: str) -> str:
    """A key of an organization of the role the endpoint serves (a seller's for the seller's
    endpoints and the ``leads`` scope), with every scope it has."""
    view = get_resolver().resolve(url).func.view_class  # type: ignore[attr-defined]
    sellers = getattr(view, "required_role", None) == "seller" or getattr(view, "required_scope", None) == "leads"
    return SELLER_KEY if sellers else ACME_KEY


def _client(url: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {_key(url)}")
    client.raise_request_exception = False  # a 500 is what these tests look for
    return client


def _rows() -> dict[str, list[dict[str, Any]]]:
    """Every row of the exchange's tables (an API key's last use aside, which any call touches)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    with market_scope():
        for app in PROJECT_APPS:
            for model in apps.get_app_config(app).get_models():
                values = list(model._base_manager.order_by("pk").values())
                for value in values:
                    value.pop("last_used_at", None)
                rows[model._meta.label] = values
    return rows


def _is_error(response: Any) -> bool:
    body = response.json()
    return (
        set(body) == {"error"}
        and {"code", "message"} <= set(body["error"])
        and all(isinstance(body["error"][k], str) and body["error"][k] for k in ("code", "message"))
    )


def test_the_schema_lists_every_endpoint_that_takes_a_body():
    """The cases below come from the schema: no view with a body method may be left out of it."""
    listed = {(method, path.removeprefix("/")) for method, path, _ in ENDPOINTS}
    found: set[tuple[str, str]] = set()

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                view = getattr(pattern.callback, "view_class", None)
                if view is None or not issubclass(view, APIView):
                    continue
                route = (prefix + str(pattern.pattern)).replace("<str:", "{").replace(">", "}")
                found.update((m.upper(), route) for m in BODY_METHODS if hasattr(view, m))

    walk(get_resolver().url_patterns, "")
    assert found == listed
    assert {op for _, _, op in ENDPOINTS} >= set(GOOD_BODIES)


@pytest.mark.parametrize(("method", "path", "operation"), ENDPOINTS)
@pytest.mark.parametrize(
    ("what", "body", "content_type", "status"), HOSTILE_BODIES, ids=[case[0] for case in HOSTILE_BODIES]
)
def test_a_hostile_body_is_a_4xx_in_the_error_format_and_changes_nothing(
    hostile_market, method, path, operation, what, body, content_type, status
):
    url = _url(path, hostile_market)
    before = _rows()
    extra = {} if content_type is None else {"content_type": content_type}

    response = _client(url).generic(method, url, body, **extra)

    assert response.status_code == status, (what, response.content[:300])
    assert _is_error(response), response.content[:300]
    assert _rows() == before


@pytest.mark.parametrize(("method", "path", "operation"), ENDPOINTS)
def test_a_hostile_body_with_an_idempotency_key_is_refused_and_stores_nothing(hostile_market, method, path, operation):
    url = _url(path, hostile_market)
    before = _rows()

    response = _client(url).generic(
        method, url, b"[" * 20_000, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1"
    )

    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_json"
    assert _rows() == before


# Values a JSON parser takes and a field may still choke on: each is put in each field of a body.
HOSTILE_VALUES: list[Any] = [
    10**4000,
    -(10**4000),
    2**63,
    -(2**63) - 1,
    2**31,
    1e308,
    -1e-308,
    0.1,
    "9" * 4000,
    "1e999999999",
    "-1E-999999999",
    "NaN",
    "-Infinity",
    "sNaN",
    "0x10",
    "x" * 100_000,
    "\u202e\U0001f600\u0301",
    "",
    " ",
    None,
    True,
    [],
    {},
    [None],
    {"": None},
    _deep(MAX_DEPTH - 3),
    {"all": [{"not": {"not": {"field": "state", "op": "in", "value": ["CA"]}}}]},
]


def _fields(operation: str) -> list[tuple[str, ...]]:
    """Every field path of an endpoint's request body: the schema's top-level properties and the
    keys of the good body's objects (the lead's fields, for instance)."""
    (method_path,) = [(m, p) for m, p, op in ENDPOINTS if op == operation]
    ref = SCHEMA["paths"][method_path[1]][method_path[0].lower()]["requestBody"]["content"]["application/json"]
    component = SCHEMA["components"]["schemas"][ref["schema"]["$ref"].rsplit("/", 1)[1]]
    paths = {(name,) for name in component.get("properties", {})}
    for name, value in GOOD_BODIES.get(operation, {}).items():
        paths.add((name,))
        if isinstance(value, dict):
            # Its keys, and one it does not know (stored as sent, if the endpoint keeps it).
            paths.update((name, key) for key in [*value, "zz_unknown"])
    return sorted(paths)


FIELD_CASES = [
    (method, path, operation, field) for method, path, operation in ENDPOINTS for field in _fields(operation)
]


@pytest.mark.parametrize(
    ("method", "path", "operation", "field"), FIELD_CASES, ids=[f"{c[2]}-{'.'.join(c[3])}" for c in FIELD_CASES]
)
def test_a_hostile_value_in_any_field_is_never_a_5xx(hostile_market, method, path, operation, field):
    url = _url(path, hostile_market)
    client = _client(url)
    for value in HOSTILE_VALUES:
        body = json.loads(json.dumps(GOOD_BODIES.get(operation, {})))
        target = body
        for key in field[:-1]:
            target = target[key]
        target[field[-1]] = value

        response = client.generic(method, url, json.dumps(body), content_type="application/json")

        assert response.status_code < 500, (field, repr(value)[:80], response.content[:300])
        if response.status_code >= 400:
            assert _is_error(response), response.content[:300]


# --- the strict reader itself: the standard library's limits and orjson's differ -----------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 20_000, f"Nested deeper than {MAX_DEPTH} levels."),  # the parser's own recursion guard
        ("[" * 900 + "]" * 900, f"Nested deeper than {MAX_DEPTH} levels."),  # parsed, then refused
        ("1" * 4301, "An integer has more than 4300 digits."),  # Python's int-string limit
        ('{"a": 1, "a": 1}', "Duplicate key 'a'."),
        ("1e400", "Number 1e400 is out of range."),
        ('"\\udfff"', "Strings must not contain lone surrogates (\\ud800-\\udfff)."),
        ('{"k\\u0000": 1}', "Strings must not contain NUL characters (\\u0000)."),
    ],
)
def test_the_strict_reader_refuses_with_a_reason(text, message):
    with pytest.raises(JsonDocumentError) as caught:
        json_document_parse(text)
    assert caught.value.message == message


def test_the_strict_reader_takes_what_the_exchange_can_hold():
    deepest = json.dumps(_deep(MAX_DEPTH))
    assert json_document_parse(deepest.encode()) == _deep(MAX_DEPTH)
    assert json_document_parse("1" * 4300) == int("1" * 4300)
    assert json_document_parse(b'{"a": "\\ud83d\\ude00 caf\\u00e9 \\\\u0000"}') == {"a": "\U0001f600 café \\u0000"}
    assert json_depth(_deep(MAX_DEPTH)) == MAX_DEPTH


def test_a_cyclic_value_ends_the_depth_walk():
    cycle: list[Any] = []
    cycle.append(cycle)
    assert json_depth(cycle, limit=10) == 11


def test_a_ping_lead_past_orjsons_limits_is_stored_through_the_standard_library(hostile_market):
    """orjson writes the stored ping document but refuses an integer beyond 64 bits (and nesting
    past 254, which the parser's 32 never reach): the standard library takes over."""
    body = ping_body(8)
    body["lead"]["zz_big"] = 2**64
    body["lead"]["zz_deep"] = _deep(MAX_DEPTH - 2)
    response = _client("/api/v1/ping").post("/api/v1/ping", json.dumps(body), content_type="application/json")
    assert response.status_code < 500, response.content
    assert orjson_refuses(2**64)


def orjson_refuses(value: object) -> bool:
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return True
    return False


# --- JSON stored, then read again: rules, the admin's JSON fields, the market file, the book -------


def _not_chain(depth: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"field": "state", "op": "in", "value": ["CA"]}
    for _ in range(depth):
        rule = {"not": rule}
    return rule


@pytest.mark.parametrize("depth", [MAX_DEPTH, 900])
def test_a_rule_nested_too_deep_is_refused_by_name(depth):
    fields = offer_fields_parse([{"name": "state", "type": "state", "ping": "required"}])
    with pytest.raises(RuleError) as caught:
        rule_validate(_not_chain(depth), fields=fields)
    assert (caught.value.path, caught.value.message) == ("filters", f"a rule nests at most {MAX_DEPTH} levels deep")
    with pytest.raises(RuleError):
        modifiers_validate([{"when": _not_chain(depth), "add": "1.00"}], fields=fields)
    rule_validate(_not_chain(MAX_DEPTH - 2), fields=fields)  # the deepest one allowed


def test_a_contract_whose_stored_filter_cannot_compile_is_left_out_not_a_5xx(hostile_market):
    with market_scope():
        BuyerContract.objects.filter(public_id="ctr_acme").update(filters=_not_chain(900))
    book._book = None

    response = _client("/api/v1/ping").post("/api/v1/ping", ping_body(9), format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "rejected"  # Acme, the only buyer, is out of the auction


@pytest.mark.parametrize("text", ["[" * 20_000, '{"a":' * 20_000, '{"a": 1, "a": 2}', '"\\ud800"', "1e400"])
def test_the_admins_json_fields_answer_a_hostile_value_with_a_form_error(hostile_market, operator_client, text):
    with market_scope():
        contract = BuyerContract.objects.get(public_id="ctr_acme")
    url = reverse("admin:contracts_buyercontract_change", args=[contract.pk])
    page = operator_client.get(url).content.decode()
    before = _rows()

    response = operator_client.post(url, form_data(page, filters=text))

    assert response.status_code == 200
    assert "Enter a valid JSON." in response.content.decode()
    assert _rows() == before


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("deep.yaml", b"offers: " + b"[" * 20_000 + b"]" * 20_000, "nested deeper than 40 levels"),
        ("deep.json", b'{"offers": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "Nested deeper than 40 levels."),
        ("latin1.yaml", "offers: café".encode("latin-1"), "'utf-8' codec can't decode"),
        ("latin1.json", '{"offers": "café"}'.encode("latin-1"), "Not UTF-8 (byte 15)."),
        ("dup.json", b'{"offers": [], "offers": []}', "Duplicate key 'offers'."),
    ],
)
def test_a_hostile_market_file_is_a_clean_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CommandError) as caught:
        call_command("load_market", str(path))
    assert f"{path}: cannot parse the file: " in str(caught.value)
    assert message in str(caught.value)
