"""The API's content negotiation picks what DRF's would, for every Accept header (exchange/api/negotiation.py)."""

from __future__ import annotations

import pytest
from django.http import Http404
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from exchange.api.negotiation import AnyFirstNegotiation

ACCEPTS = [None, "*/*", " */* ", "application/json", "*/*; q=0.5", "application/*", "text/html", "image/png"]


def _choice(negotiation: DefaultContentNegotiation, request: Request, renderers: list, suffix: str | None) -> object:
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, suffix)
    except exceptions.NotAcceptable:
        return "406"
    except Http404:  # a format no renderer has
        return "404"
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("path", ["/api/v1/ping", "/api/v1/ping?format=json", "/api/v1/ping?format=api"])
@pytest.mark.parametrize("suffix", [None, "json"])
def test_the_same_renderer_as_drf(accept, path, suffix):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(path, **headers))
    for renderers in (
        [JSONRenderer()],
        [JSONRenderer(), BrowsableAPIRenderer()],
        [BrowsableAPIRenderer(), JSONRenderer()],
    ):
        assert _choice(AnyFirstNegotiation(), request, renderers, suffix) == _choice(
            DefaultContentNegotiation(), request, renderers, suffix
        )


def test_a_client_that_takes_anything_gets_json_and_one_that_takes_only_html_gets_a_406(db):
    from tests.exchange.builder import client

    assert client().get("/api/v1/leads/led_nothing", HTTP_ACCEPT="*/*")["Content-Type"] == "application/json"
    refused = client().get("/api/v1/leads/led_nothing", HTTP_ACCEPT="text/html")
    assert refused.status_code == 406
