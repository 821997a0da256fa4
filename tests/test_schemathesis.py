"""Schemathesis against the API's own schema: every operation, 100 derandomized examples, each sent
with a valid key of the operation's side and scope (from the authorization matrix). No answer may
be a 5xx, and every answer must be documented and match its documented body and content type.

Each generated case goes through Django's test ``Client`` (inside the test's transaction, as every
other API test), not through schemathesis' WSGI transport: the request schemathesis would send is
prepared as ``requests`` would (URL with path parameters and query, headers, JSON body), replayed
through the client, and its answer handed back to schemathesis' checks as its own ``Response``.
"""

from __future__ import annotations

import json
import re
import time
from http import HTTPStatus
from typing import Any

import pytest
import requests
import schemathesis
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.urls import get_resolver
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import Organization
from tests.exchange.builder import WORLD_KEYS, world_build
from tests.test_authz_matrix import MATRIX, SUBJECT, Api

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

BASE_URL = "http://testserver"
# The document /api/v1/schema serves, made by the same generator and renderer.
DOCUMENT = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
schema = schemathesis.openapi.from_dict(DOCUMENT)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: Any) -> Any:
    with django_db_blocker.unblock(), transaction.atomic():
        ids = world_build()
        # The rate limit is tested in tests/accounts; here it would only turn examples into 429s.
        Organization.objects.filter(slug__in=set(SUBJECT.values())).update(rate_limit_per_second=1_000_000)
        cache.clear()  # the keys' cached records carry their organization
        yield ids
        transaction.set_rollback(True)


def key_for(path: str) -> str:
    """A key of the operation's side with every scope of that side."""
    match = get_resolver().resolve(re.sub(r"\{[^}]+\}", "x", path))
    spec = MATRIX[f"{':'.join(match.namespaces)}:{match.url_name}"]
    assert isinstance(spec, Api)
    return WORLD_KEYS[SUBJECT[spec.side]]["all"]


def send(case: Any) -> Response:
    """The case as ``requests`` would send it, through Django's test client; the answer as schemathesis'."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    kwargs.pop("cookies", None)
    prepared = requests.Request(**kwargs).prepare()
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body or b""
    headers = {name: value for name, value in prepared.headers.items() if name.lower() != "content-length"}
    content_type = headers.pop("Content-Type", "application/octet-stream")
    path, _, query = prepared.path_url.partition("?")
    started = time.perf_counter()
    answer = Client().generic(
        prepared.method or "GET",
        path,
        data=body,
        content_type=content_type,
        headers=headers,
        QUERY_STRING=query,
    )
    return Response(
        status_code=answer.status_code,
        headers={name: [value] for name, value in answer.headers.items()},
        content=answer.content,
        request=prepared,
        elapsed=time.perf_counter() - started,
        verify=True,
        message=HTTPStatus(answer.status_code).phrase,
        encoding=answer.charset,
    )


@schema.parametrize()
@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_matches_its_schema(case: Any, world: dict[str, Any]) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key_for(case.operation.path)}"}
    case.validate_response(send(case), checks=CHECKS)
