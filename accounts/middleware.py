"""Sets the tenant scope for every portal request."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from accounts.selectors import memberships_of
from accounts.tenancy import market_scope, tenant_scope
from core.audit import audit_context

SESSION_ORGANIZATION_KEY = "gavel_organization_id"


class TenantScopeMiddleware:
    """Portal pages run in the scope of the session's current organization.

    The admin is the operator's cross-tenant tool (staff only, enforced by the admin itself).
    The API sets its scope after key authentication (``accounts.api.base``). Anything else,
    anonymous pages included, runs with no scope, so a stray tenant query fails loudly.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.organization = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        request.memberships = []  # type: ignore[attr-defined]
        if request.path.startswith("/admin/") or request.path.startswith("/ops/"):
            if request.user.is_authenticated and request.user.is_staff:
                with market_scope():
                    return self.get_response(request)
            return self.get_response(request)
        if request.path.startswith("/api/") or not request.user.is_authenticated:
            return self.get_response(request)
        memberships = list(memberships_of(user=request.user))  # type: ignore[arg-type]
        request.memberships = memberships  # type: ignore[attr-defined]
        if not memberships:
            return self.get_response(request)
        wanted = request.session.get(SESSION_ORGANIZATION_KEY)
        current = next((m for m in memberships if m.organization_id == wanted), memberships[0])
        request.organization = current.organization  # type: ignore[attr-defined]
        request.membership = current  # type: ignore[attr-defined]
        with tenant_scope(current.organization):
            return self.get_response(request)


class AuditContextMiddleware:
    """Names who acts in every request for the audit trail (``core.audit``): the logged-in user
    on portal and admin pages; on the API, the key, once authenticated (``accounts.api.base``).

    The API's requests do not read the session (no query added to the ping's path).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        remote_addr = request.META.get("REMOTE_ADDR") or None
        if path.startswith("/api/"):
            with audit_context(source="api", actor_id=None, actor_email=None, remote_addr=remote_addr):
                return self.get_response(request)
        user = request.user
        source = "admin" if path.startswith(("/admin/", "/ops/")) else "portal"
        actor_id = user.pk if user.is_authenticated else None
        actor_email = user.email if user.is_authenticated else None  # type: ignore[union-attr]
        with audit_context(source=source, actor_id=actor_id, actor_email=actor_email, remote_addr=remote_addr):
            return self.get_response(request)
