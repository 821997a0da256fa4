"""Who may open a portal page: one decorator for every app's pages.

``portal_page(side="buyer", role="manager")`` requires a logged-in member of an organization that is
a buyer, with at least the manager's rights. A page the organization's side or the member's role
lacks is a 403 page that says what it needs (a buyer opening the seller's campaigns learns the page
is for sellers, not that it has "no campaigns yet").
The view gets ``request.organization`` and ``request.membership`` set by the tenant middleware.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Literal

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponseBase
from django.shortcuts import render

from accounts.models import Membership

Side = Literal["buyer", "seller"]
Level = Literal["analyst", "manager", "owner"]

# What each role may do, lowest first: an analyst reads, a manager also changes terms, an owner also
# manages members and keys.
_RANK = {Membership.Role.ANALYST: 0, Membership.Role.MANAGER: 1, Membership.Role.OWNER: 2}
_NEEDS = {"analyst": "read", "manager": "change terms", "owner": "manage the team and API keys"}


def role_allows(membership: Membership | None, level: Level) -> bool:
    """Whether ``membership`` has at least ``level``'s rights."""
    return membership is not None and _RANK[Membership.Role(membership.role)] >= _RANK[Membership.Role(level)]


def portal_page(
    *, side: Side | None = None, role: Level = "analyst"
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    # HttpResponseBase: a page may answer with a streamed download (the lists' CSV exports).
    def decorate(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @login_required
        @wraps(view)
        def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
            organization = getattr(request, "organization", None)
            if organization is None:
                raise Http404("No organization.")
            if side is not None and side not in organization.roles:
                return render(request, "accounts/forbidden.html", {"side": side}, status=403)
            membership = getattr(request, "membership", None)
            if not role_allows(membership, role):
                return render(
                    request,
                    "accounts/forbidden.html",
                    {"needed": role, "needs": _NEEDS[role], "role": getattr(membership, "role", "")},
                    status=403,
                )
            return view(request, *args, **kwargs)

        return guarded

    return decorate
