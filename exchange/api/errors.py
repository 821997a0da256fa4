"""The one place where errors become the API error format.

``{"error": {"code": "...", "message": "...", "fields": {"zip": ["..."]}}}`` — a business outcome
(no buyer, duplicate) is never an error; see DESIGN.md §6.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.api.parsers import MalformedBody, PayloadTooLarge
from core.errors import ExchangeError

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """A domain error with its own code, e.g. ``ping_expired`` (410) or ``ping_mismatch`` (422)."""

    def __init__(
        self,
        *,
        code: str,
        message: str,
        status_code: int = status.HTTP_422_UNPROCESSABLE_ENTITY,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.fields = fields


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def _flatten(detail: Any) -> dict[str, list[str]]:
    """DRF's nested validation detail as ``{"field.sub": ["message"]}``."""
    flat: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
            for index, sub in enumerate(value):
                walk(f"{prefix}[{index}]", sub)
        else:
            messages = value if isinstance(value, list) else [value]
            flat.setdefault(prefix or "non_field_errors", []).extend(str(m) for m in messages)

    walk("", detail)
    return flat


_CODES = {
    # A body the API's parser refused: its message says why (nesting, a duplicate key...).
    MalformedBody: ("malformed_json", None),
    PayloadTooLarge: ("payload_too_large", None),
    exceptions.ParseError: ("malformed_json", "The request body is not valid JSON."),
    exceptions.AuthenticationFailed: ("authentication_failed", None),
    exceptions.NotAuthenticated: ("authentication_failed", "Send an API key: 'Authorization: Bearer <key>'."),
    exceptions.PermissionDenied: ("permission_denied", None),
    exceptions.NotFound: ("not_found", "Not found."),
    exceptions.MethodNotAllowed: ("method_not_allowed", None),
    exceptions.NotAcceptable: ("not_acceptable", None),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", "Send JSON with 'Content-Type: application/json'."),
    exceptions.Throttled: ("rate_limited", None),
}


# The database could not be reached (restarting, failing over) or gave a statement up (a deadlock,
# a timeout): a moment's fault, which the same request is likely to get past shortly.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
UNAVAILABLE_MESSAGE = "The exchange could not reach its database for a moment; retry shortly."
RETRY_AFTER_S = "1"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler, answering every error in the one format."""
    if isinstance(exc, DATABASE_UNAVAILABLE):
        logger.warning("database unavailable: %s", exc)
        set_rollback()
        return Response(
            error_body("unavailable", UNAVAILABLE_MESSAGE), status=503, headers={"Retry-After": RETRY_AFTER_S}
        )
    if isinstance(exc, ExchangeError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("payload_too_large", "The request body is too large."), status=413)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    headers: dict[str, str] = {}
    status_code = exc.status_code
    if isinstance(exc, ApiError):
        body = error_body(exc.error_code, exc.message, exc.fields)
    elif isinstance(exc, exceptions.ValidationError):
        body = error_body("validation_error", "The request is not valid.", _flatten(exc.detail))
        status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    else:
        code, message = next(
            ((c, m) for kind, (c, m) in _CODES.items() if isinstance(exc, kind)),
            (str(exc.default_code), None),
        )
        body = error_body(code, message or str(exc.detail))
        wait = getattr(exc, "wait", None)
        if isinstance(exc, exceptions.Throttled) and wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(wait)))  # whole seconds (RFC 9110)
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    set_rollback()
    return Response(body, status=status_code, headers=headers)


def api_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def api_server_error(request: HttpRequest, exc: BaseException | None = None) -> JsonResponse:
    """The answer to an error no view handled (``exc``, when the caller knows it)."""
    if isinstance(exc, DATABASE_UNAVAILABLE):
        response = JsonResponse(error_body("unavailable", UNAVAILABLE_MESSAGE), status=503)
        response["Retry-After"] = RETRY_AFTER_S
        return response
    logger.error("unhandled error on %s", request.path)
    return JsonResponse(error_body("server_error", "Something went wrong on our side; it has been logged."), status=500)
