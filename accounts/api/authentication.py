"""API-key authentication: ``Authorization: Bearer gvl_…`` or ``X-API-Key: gvl_…``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.services import api_key_authenticate


def raw_api_key(meta: Mapping[str, Any]) -> str | None:
    """The API key a request sends ("" if none), or None when its Authorization header is not a
    bearer token."""
    header = meta.get("HTTP_AUTHORIZATION", "")
    if header:
        parts = header.split()
        return parts[1] if len(parts) == 2 and parts[0].lower() == "bearer" else None
    return str(meta.get("HTTP_X_API_KEY", "")).strip()


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        raw = raw_api_key(request.META)
        if raw is None:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
        if not raw:
            return None
        key = api_key_authenticate(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("This API key is not valid or has been revoked.")
        if key.organization.status != key.organization.Status.ACTIVE:
            raise exceptions.AuthenticationFailed("This organization is suspended.")
        return (key.organization, key)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
