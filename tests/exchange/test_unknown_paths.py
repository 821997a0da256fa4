"""An unknown API path answers in the API's JSON error format, whatever the method."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.exchange.builder import SELLER_KEY, ping_body

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
@pytest.mark.parametrize("path", ["/api/v1/ping/", "/api/v1/conversion", "/api/v1/nothing/here"])
def test_an_unknown_api_path_is_a_json_404(method, path):
    client = APIClient(enforce_csrf_checks=True)  # as a browser-less client meets the real server
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {SELLER_KEY}")
    response = getattr(client, method)(path, ping_body(1), format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}
