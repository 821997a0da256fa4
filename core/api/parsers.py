"""The API's one body parser: every request body is read here, whatever the endpoint.

A body is a JSON object of at most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes, read by the strict
reader of :mod:`core.json_document`: anything else is a 400 ``malformed_json``, a 413
``payload_too_large`` or (valid JSON but not an object) a 422 ``validation_error`` in the API's
error format, never a 5xx (DESIGN.md §6, docs/decisions.md 15).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser
from rest_framework.request import Request

from core.json_document import JsonDocumentError, json_document_parse

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class MalformedBody(exceptions.ParseError):
    """A body that is not a JSON object the API takes; the message says what is wrong with it."""

    default_detail = "The request body is not valid JSON."


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class JsonObjectParser(BaseParser):
    """``application/json`` (any ``charset`` parameter is ignored: JSON is UTF-8, RFC 8259 §8.1)."""

    media_type = "application/json"

    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        # Read one byte past the limit, whatever Content-Length said, so a body is never held whole.
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise PayloadTooLarge()
        try:
            document = json_document_parse(body)
        except JsonDocumentError as exc:
            raise MalformedBody(f"{MalformedBody.default_detail} {exc.message}") from exc
        if not isinstance(document, dict):
            # Valid JSON of the wrong shape, as a serializer would answer it: a 422.
            raise exceptions.ValidationError({"non_field_errors": ["The request body must be a JSON object."]})
        return document


def json_body_require(request: Request) -> None:
    """Parse a POST, PUT or PATCH body now, before the handler runs (so its errors come first and
    are never stored as an idempotent answer), and refuse a request without one: DRF reads a
    missing body as an empty object."""
    if request.method not in BODY_METHODS:
        return
    request.data  # noqa: B018 - parsing raises the body's error here
    if request.stream is None:
        raise MalformedBody("The request body is empty: send a JSON object.")
