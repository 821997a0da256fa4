"""DRF base classes that authenticate an API key and scope the request to its organization."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any, ClassVar, NoReturn

from django.http import HttpRequest
from rest_framework import exceptions, permissions, throttling
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import raw_api_key
from accounts.models import ApiKey, Organization
from accounts.services import api_key_cache_key, api_key_digest
from accounts.tenancy import tenant_scope
from core.api.parsers import json_body_require
from core.audit import audit_context_update
from core.cache import cache_counted, cache_prefetch

# The rate-limit window: one calendar second of the web node's clock (NTP keeps nodes within
# milliseconds of each other). Redis drops a window's counter RATE_COUNTER_SECONDS after its last
# count: a few bytes per active key, and a node whose clock lags (or a test's frozen clock) still
# finds its window's count.
RATE_WINDOW_SECONDS = 1
RATE_COUNTER_SECONDS = 10


def rate_counter_key(digest: str, window: int) -> str:
    """The counter of the requests the key with this digest sent in this window."""
    return f"gavel:rate:{digest}:{window}"


class HasKeyScope(permissions.BasePermission):
    """The API key carries the view's ``required_scope`` and its organization has the role."""

    message = "This API key does not have the scope this endpoint needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False
        required = getattr(view, "required_scope", None)
        if required is not None and required not in key.scopes:
            return False
        role = getattr(view, "required_role", None)
        organization: Organization = key.organization
        return role is None or role in organization.roles


class ApiKeyRateThrottle(throttling.BaseThrottle):
    """Each API key is held to its organization's ``rate_limit_per_second``: a fixed one-second
    window counted atomically in the request's cache prefetch (:class:`TenantViewMixin`), so of N
    concurrent requests in a window, exactly ``min(N, limit)`` are let through. On the embedded
    default (no Redis) the count is the process's own, so each process admits the limit."""

    def allow_request(self, request: Request, view: Any) -> bool:
        count = cache_counted()
        key = request.auth
        if count is None or not isinstance(key, ApiKey):
            return True
        organization: Organization = key.organization
        return count <= organization.rate_limit_per_second

    def wait(self) -> float:
        return RATE_WINDOW_SECONDS - time.time() % RATE_WINDOW_SECONDS  # until the next window


class TenantViewMixin:
    """Every tenant endpoint: API-key auth, a key scope, and the key's tenant scope around the handler."""

    required_scope: ClassVar[str | None] = None
    required_role: ClassVar[str | None] = None
    throttle_classes: Sequence[type[throttling.BaseThrottle]] = (ApiKeyRateThrottle,)
    _scope_stack: ExitStack
    key_digest: str | None = None  # the request's API key's digest (cache_prefetch_keys)

    @property
    def organization(self) -> Organization:
        request: Request = self.request  # type: ignore[attr-defined]
        return request.auth.organization  # type: ignore[union-attr,no-any-return]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Response:
        with ExitStack() as stack:
            self._scope_stack = stack
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc,no-any-return]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        keys = self.cache_prefetch_keys(request)
        # The key's rate-limit count rides on the same round trip (ApiKeyRateThrottle).
        counter = None
        if self.key_digest is not None:
            counter = rate_counter_key(self.key_digest, int(time.time()) // RATE_WINDOW_SECONDS)
        self._scope_stack.enter_context(cache_prefetch(keys, counter=counter, counter_timeout=RATE_COUNTER_SECONDS))
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        json_body_require(request)
        audit_context_update(api_key_id=request.auth.pk)  # the audit trail's actor: this key
        # Authentication and permissions have run: from here on, only this tenant's rows exist.
        self._scope_stack.enter_context(tenant_scope(self.organization))

    def throttled(self, request: Request, wait: float) -> NoReturn:
        organization: Organization = request.auth.organization  # type: ignore[union-attr]
        limit = organization.rate_limit_per_second
        raise exceptions.Throttled(
            wait=math.ceil(wait or RATE_WINDOW_SECONDS),
            detail=f"Too many requests: this API key may make {limit} a second. Retry after the Retry-After "
            "header's seconds.",
        )

    def cache_prefetch_keys(self, request: Request) -> list[str]:
        """The cache keys the request will read, fetched in one round trip before it is
        authenticated: its API key's record; a view adds those its handler reads. Keeps the key's
        digest (``key_digest``; None when the request sends no possible key)."""
        self.key_digest = api_key_digest(raw_api_key(request.META) or "")
        return [] if self.key_digest is None else [api_key_cache_key(self.key_digest)]


class TenantAPIView(TenantViewMixin, APIView):
    permission_classes = [HasKeyScope]


class TenantGenericAPIView(TenantViewMixin, GenericAPIView):  # type: ignore[type-arg]
    permission_classes = [HasKeyScope]
