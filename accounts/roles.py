"""What each member's role may do, checked by the portal's pages and again by the services they call.

An analyst reads, a manager also changes terms (contracts, campaigns, billing alerts, webhooks), an
owner also manages the team and the API keys. A view refuses a role that lacks the rights with a
page that says so (``accounts.portal``); the service behind it checks again with
:func:`role_require`, so a crafted request that slips past a view still changes nothing.
"""

from __future__ import annotations

from typing import Literal

from django.core.exceptions import PermissionDenied

from accounts.models import Membership

Level = Literal["analyst", "manager", "owner"]

_RANK = {Membership.Role.ANALYST: 0, Membership.Role.MANAGER: 1, Membership.Role.OWNER: 2}
NEEDS = {"analyst": "read", "manager": "change terms", "owner": "manage the team and API keys"}


class RoleRefused(PermissionDenied):
    """The member's role lacks the rights this change needs (a 403 wherever it surfaces)."""


def role_allows(membership: Membership | None, level: Level) -> bool:
    """Whether ``membership`` has at least ``level``'s rights."""
    return membership is not None and _RANK[Membership.Role(membership.role)] >= _RANK[Membership.Role(level)]


def role_require(actor: Membership | None, level: Level, *, organization_id: int) -> None:
    """Refuse unless ``actor`` is a member of the organization ``organization_id`` with at least
    ``level``'s rights. Services a portal page calls take the member as ``actor``; the operator's
    tools and the market file act without one and do not call this."""
    if actor is None or actor.organization_id != organization_id or not role_allows(actor, level):
        raise RoleRefused(f"This needs the {level} role or higher (to {NEEDS[level]}).")
