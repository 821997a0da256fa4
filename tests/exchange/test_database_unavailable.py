"""A database that cannot be reached for a moment (a restart, a failover) is answered 503 with
Retry-After, in the API's error format for the API and as a page for people — not as a 500.
The real restart is tests/faults/drill_postgres_restart.sh; here the driver's error is raised
where a request meets the database."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client

import exchange.api.views as api_views
from tests.exchange.builder import buyer, client, load, ping_body

pytestmark = pytest.mark.django_db


def refuse(*args, **kwargs):
    raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_a_ping_while_the_database_is_away_is_answered_503_with_retry_after(monkeypatch, error):
    load(buyer("acme"))

    def away(*args, **kwargs):
        raise error("the connection is closed")

    monkeypatch.setattr(api_views, "ping_receive", away)
    response = client().post("/api/v1/ping", ping_body(1), format="json")

    assert (response.status_code, response["Retry-After"]) == (503, "1")
    assert response.json()["error"]["code"] == "unavailable"


@pytest.fixture
def database_away():
    """Every request fails where it first meets the database, outside any view's handler: Django's
    own error view answers (``exchange.views.server_error``)."""
    with mock.patch("django.core.handlers.base.BaseHandler._get_response", side_effect=refuse):
        yield Client(raise_request_exception=False)


def test_an_error_outside_the_api_view_is_answered_503_too(database_away):
    response = database_away.post("/api/v1/ping", ping_body(1), content_type="application/json")

    assert (response.status_code, response["Retry-After"]) == (503, "1")
    assert response.json()["error"]["code"] == "unavailable"


def test_a_page_while_the_database_is_away_says_to_come_back(database_away):
    response = database_away.get("/portal/")

    assert (response.status_code, response["Retry-After"]) == (503, "1")
    assert "Back in a moment" in response.content.decode()


def test_any_other_fault_is_still_a_500(monkeypatch):
    with mock.patch("django.core.handlers.base.BaseHandler._get_response", side_effect=RuntimeError("bug")):
        api = Client(raise_request_exception=False).get("/api/v1/campaigns")
        page = Client(raise_request_exception=False).get("/portal/")

    assert (api.status_code, api.json()["error"]["code"]) == (500, "server_error")
    assert page.status_code == 500 and "Retry-After" not in page
