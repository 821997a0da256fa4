"""Tenant scoping: every query of a tenant model runs inside exactly one scope.

Tenant models use django-scopes' ``ScopedManager``: outside a scope a query raises
``ScopeError`` instead of quietly returning every tenant's rows. Entry points set the scope:
the portal middleware (the session's current organization), the API base view (the API key's
organization), the Celery base task (the task's ``organization_id``). The market — where a
seller's ping meets every buyer's contracts — runs under :func:`market_scope`, named so that
each cross-tenant read is easy to find.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Task
from django_scopes import scope, scopes_disabled

from accounts.models import Organization


@contextmanager
def tenant_scope(organization: Organization) -> Iterator[None]:
    """Scope every tenant query to ``organization`` (never to "all": None is refused)."""
    if organization is None or organization.pk is None:
        raise ValueError("tenant_scope needs a saved organization")
    with scope(organization=organization):
        yield


@contextmanager
def market_scope() -> Iterator[None]:
    """The one cross-tenant scope: the auction, the sale and the operator's tools.

    Code under it must cut what it hands back to each party to what that party may see.
    """
    with scopes_disabled():
        yield


class TenantTask(Task):  # type: ignore[misc]
    """A Celery task that runs in the scope of its ``organization_id`` keyword argument.

    Tasks without ``organization_id`` (market-wide jobs) must open :func:`market_scope`
    themselves; anything else fails loudly on its first tenant query.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        organization_id = kwargs.get("organization_id")
        if organization_id is None:
            return super().__call__(*args, **kwargs)
        organization = Organization.objects.get(pk=organization_id)
        with tenant_scope(organization):
            return super().__call__(*args, **kwargs)
