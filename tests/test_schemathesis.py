"""Schemathesis against the API's own schema: every operation, 100 derandomized examples, each sent
with a valid key of the operation's side and scope (from the authorization matrix). No answer may
be a 5xx, and every answer must be documented and match its documented body."""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.urls import get_resolver
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.exchange.builder import WORLD_KEYS, world_build
from tests.test_authz_matrix import MATRIX, SUBJECT, Api

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.slow,
    # Unfinished: through the WSGI app every request answers 500 "the connection is closed" (the
    # test's transaction is lost after the first request); to be found before this runs in CI.
    pytest.mark.skip(reason="WSGI calls lose the test database connection; unfinished"),
]

APP = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/v1/schema", APP)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: Any) -> Any:
    # As Django's test client does: a request through the WSGI app must not close the test's
    # connection (and with it the transaction the world lives in) when it finishes.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        with django_db_blocker.unblock(), transaction.atomic():
            yield world_build()
            transaction.set_rollback(True)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def key_for(path: str) -> str:
    """A key of the operation's side with every scope of that side."""
    match = get_resolver().resolve(re.sub(r"\{[^}]+\}", "x", path))
    spec = MATRIX[f"{':'.join(match.namespaces)}:{match.url_name}"]
    assert isinstance(spec, Api)
    return WORLD_KEYS[SUBJECT[spec.side]]["all"]


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
    response = case.call(app=APP)
    case.validate_response(response, checks=CHECKS)
