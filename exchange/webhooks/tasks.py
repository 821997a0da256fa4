"""Celery tasks: thin wrappers around the webhook services."""

from __future__ import annotations

import logging
from typing import Any

from accounts.tenancy import TenantTask
from exchange.celery import app
from exchange.webhooks import services

logger = logging.getLogger(__name__)


@app.task(
    name="exchange.webhook_deliver",
    bind=True,
    base=TenantTask,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def webhook_deliver(self: Any, *, delivery_id: int, organization_id: int) -> str:
    """Attempt one delivery; on failure queue the next attempt with its backoff as ``countdown``.

    Run in-process (eagerly, or by the sweeper through ``apply``) it does not queue itself: the
    delivery waits, pending, for :func:`webhook_deliveries_due`.
    """
    outcome = services.delivery_attempt(delivery_id=delivery_id)
    if outcome.retry_in is not None and not self.request.is_eager:
        self.apply_async(
            kwargs={"delivery_id": delivery_id, "organization_id": organization_id},
            countdown=outcome.retry_in,
        )
    return outcome.status


@app.task(name="exchange.webhook_deliveries_due", acks_late=True, ignore_result=True)
def webhook_deliveries_due(*, limit: int | None = None) -> int:
    """Attempt every delivery that is due (the periodic safety net for lost or eager tasks); returns how many ran.

    Each runs in this process under its tenant's scope; the claim makes overlap with a queued
    task or another sweep harmless.
    """
    due = services.deliveries_due(limit=limit)
    for delivery_id, organization_id in due:
        try:
            webhook_deliver.apply(kwargs={"delivery_id": delivery_id, "organization_id": organization_id}, throw=True)
        except Exception:
            # One broken delivery must not starve the others in the batch.
            logger.exception("webhook delivery %s failed", delivery_id)
    return len(due)
