"""Reads for tenants and people."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import ApiKey, Membership, Organization, User


def memberships_of(*, user: User) -> QuerySet[Membership]:
    """The active organizations a user may act for, by name."""
    return (
        Membership.objects.filter(user=user, organization__status=Organization.Status.ACTIVE)
        .select_related("organization")
        .order_by("organization__name")
    )


def api_keys_of(*, organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization).order_by("-created_at")
