"""Reads of an organization's webhook endpoints and deliveries."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Organization
from exchange.webhooks.models import EventDelivery, WebhookEndpoint


def endpoints_of(*, organization: Organization) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(organization=organization).order_by("created_at")


def deliveries_of(*, organization: Organization, limit: int = 100) -> QuerySet[EventDelivery]:
    """The organization's latest deliveries, newest first, with their event, endpoint and attempts."""
    latest = (
        EventDelivery.objects.filter(organization=organization)
        .select_related("event", "endpoint")
        .order_by("-created_at", "-pk")
    )
    return latest.prefetch_related("attempt_log")[:limit]


def endpoint_get(*, organization: Organization, public_id: str) -> WebhookEndpoint:
    """The endpoint, or ``WebhookEndpoint.DoesNotExist`` when it is missing or another tenant's."""
    return WebhookEndpoint.objects.get(organization=organization, public_id=public_id)


def delivery_get(*, organization: Organization, public_id: str) -> EventDelivery:
    """The delivery, or ``EventDelivery.DoesNotExist`` when it is missing or another tenant's."""
    return EventDelivery.objects.select_related("endpoint").get(organization=organization, public_id=public_id)
