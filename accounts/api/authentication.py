"""API-key authentication: ``Authorization: Bearer gvl_…`` or ``X-API-Key: gvl_…``."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.services import api_key_authenticate


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        raw = ""
        if header:
            parts = header.split()
            if len(parts) != 2 or parts[0].lower() != "bearer":
                raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
            raw = parts[1]
        else:
            raw = request.META.get("HTTP_X_API_KEY", "").strip()
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
