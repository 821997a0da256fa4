"""Reads for tenants and people."""

from __future__ import annotations

import datetime as dt

from django.db.models import Case, Q, QuerySet, When
from django.utils.timezone import now

from accounts.models import AUDIT_KINDS, ApiKey, AuditEntry, Invitation, Membership, Organization, User


def memberships_of(*, user: User) -> QuerySet[Membership]:
    """The active organizations a user may act for, by name."""
    return (
        Membership.objects.filter(user=user, organization__status=Organization.Status.ACTIVE)
        .select_related("organization")
        .order_by("organization__name")
    )


def api_keys_of(*, organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization).order_by("-created_at")


def members_of(*, organization: Organization) -> QuerySet[Membership]:
    """The organization's members, owners first, then by email."""
    order = Case(When(role=Membership.Role.OWNER, then=0), When(role=Membership.Role.MANAGER, then=1), default=2)
    return Membership.objects.filter(organization=organization).select_related("user").order_by(order, "user__email")


def invitations_pending_of(*, organization: Organization) -> QuerySet[Invitation]:
    """The organization's invitations that can still be accepted, newest first."""
    return Invitation.objects.filter(
        organization=organization, accepted_at__isnull=True, cancelled_at__isnull=True, expires_at__gt=now()
    ).order_by("-created_at")


def audit_entries_of(
    *,
    organization: Organization | None,
    kind: str = "",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[AuditEntry]:
    """The audit trail, newest first: ``organization``'s own entries (None: all, for operators),
    of one kind of thing (a key of ``AUDIT_KINDS``), from ``since`` and before ``until``."""
    entries = AuditEntry.objects.select_related("content_type", "api_key").order_by("-timestamp", "-id")
    if organization is not None:
        entries = entries.filter(organization=organization)
    if kind:
        match = Q(pk__in=[])
        for app_label, model in AUDIT_KINDS[kind][1]:
            match |= Q(content_type__app_label=app_label, content_type__model=model)
        entries = entries.filter(match)
    if since is not None:
        entries = entries.filter(timestamp__gte=since)
    if until is not None:
        entries = entries.filter(timestamp__lt=until)
    return entries
