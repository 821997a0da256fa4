"""Reads of leads; the organization is always explicit."""

from __future__ import annotations

from accounts.models import Organization
from core.errors import NotFound
from leads.models import Lead


def lead_get(*, seller: Organization, public_id: str) -> Lead:
    """The seller's lead, or NotFound — another seller's lead is a missing one."""
    lead = (
        Lead.objects.filter(organization=seller, public_id=public_id)
        .select_related("campaign", "offer", "ping")
        .first()
    )
    if lead is None:
        raise NotFound("No such lead.")
    return lead
