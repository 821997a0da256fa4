"""The API's docs are written for a publisher's engineer: every operation summarized, described
and exemplified, every error typed as the one error envelope, and the docs page works offline."""

from __future__ import annotations

import re

import pytest
import yaml
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def schema() -> dict:
    response = Client().get("/api/v1/schema")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def test_every_error_answer_is_the_error_envelope(schema):
    assert schema["components"]["schemas"]["Error"]["properties"]["error"]["required"] == ["code", "message"]
    for name, operation in operations(schema):
        errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
        assert {"401", "403", "429"} <= set(errors), name
        assert errors["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}, name
        if "{" in name:
            assert "404" in errors, name
        if name.startswith(("POST", "PATCH")):
            assert {"400", "422"} <= set(errors), name
        for status, response in errors.items():
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (name, status)
            (example,) = content["examples"].values()
            assert set(example["value"]) == {"error"} and re.fullmatch(r"[a-z_]+", example["value"]["error"]["code"])
            assert response["description"] and not re.fullmatch(r"[a-z_]+", response["description"]), (name, status)


def test_no_response_is_typed_as_a_bare_string(schema):
    for name, operation in operations(schema):
        for status, response in operation["responses"].items():
            for media_type, content in response.get("content", {}).items():
                if media_type == "text/csv":  # a CSV report is text, as it says
                    continue
                assert content["schema"].get("type") != "string", (name, status, media_type)


def test_every_operation_has_a_summary_a_description_for_the_reader_and_examples(schema):
    found = 0
    for name, operation in operations(schema):
        found += 1
        assert operation.get("summary"), name
        description = operation.get("description", "")
        assert len(description) > 20, name
        for internal in ("Every tenant endpoint", "Idempotency-Key`` support", "class ", "Mixin", "ATOMIC_REQUESTS"):
            assert internal not in description, (name, internal)
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            assert body.get("examples"), name
        ok = [r for s, r in operation["responses"].items() if s.startswith("2")]
        assert ok and all(r["content"]["application/json"].get("examples") for r in ok), name
    assert found >= 14


def test_the_ping_example_is_the_documented_shape(schema):
    ping = schema["paths"]["/api/v1/ping"]["post"]
    (answer,) = ping["responses"]["200"]["content"]["application/json"]["examples"].values()
    assert answer["value"]["status"] == "accepted" and answer["value"]["payout"] == "28.00"
    assert "Back to the portal](/portal/)" in schema["info"]["description"]


def test_the_docs_page_is_served_offline_with_a_way_back():
    page = Client().get("/api/docs")
    assert page.status_code == 200
    text = page.content.decode()
    assert "swagger-ui" in text
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", text) + re.findall(r"""["'](https?://[^"']+)""", text)
    assert urls
    assert not [u for u in urls if re.match(r"(https?:)?//", u) and "testserver" not in u], urls
    scripts = re.findall(r"""src\s*=\s*["']([^"']+\.js)""", text)
    assert scripts
    for url in scripts:  # the vendored assets are there to serve
        assert finders.find(url.removeprefix(settings.STATIC_URL)), url
