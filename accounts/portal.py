"""Who may open a portal page: one decorator for every app's pages.

``portal_page(side="buyer", role="manager")`` requires a logged-in member of an organization that is
a buyer, with at least the manager's rights. A page the organization's side or the member's role
lacks is a 403 page that says what it needs (a buyer opening the seller's campaigns learns the page
is for sellers, not that it has "no campaigns yet"); one thing's page (a URL with an id) of the other
side is a 404, as any other organization's thing is.
The view gets ``request.organization`` and ``request.membership`` set by the tenant middleware.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Literal

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render

from accounts.roles import NEEDS, Level, role_allows

Side = Literal["buyer", "seller"]

__all__ = ["Level", "Side", "portal_page", "role_allows", "role_refused_page"]


def role_refused_page(request: HttpRequest, level: Level) -> HttpResponse:
    """The 403 page that tells a member which role a page or an action needs."""
    membership = getattr(request, "membership", None)
    return render(
        request,
        "accounts/forbidden.html",
        {"needed": level, "needs": NEEDS[level], "role": getattr(membership, "role", "")},
        status=403,
    )


def portal_page(
    *, side: Side | None = None, role: Level = "analyst"
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    # HttpResponseBase: a page may answer with a streamed download (the lists' CSV exports).
    def decorate(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @login_required
        @wraps(view)
        def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
            organization = getattr(request, "organization", None)
            if organization is None:  # a user in no active organization: the home page's answer
                return render(request, "accounts/no_organization.html", status=403)
            if side is not None and side not in organization.roles:
                if kwargs:  # one thing's page: not theirs, so not found, as for any outsider
                    raise Http404(f"No such {side}'s page.")
                return render(request, "accounts/forbidden.html", {"side": side}, status=403)
            if not role_allows(getattr(request, "membership", None), role):
                return role_refused_page(request, role)
            return view(request, *args, **kwargs)

        return guarded

    return decorate
