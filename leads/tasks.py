"""Celery tasks of the leads app: thin wrappers around services (acks late, idempotent)."""

from __future__ import annotations

from celery import shared_task

from accounts.tenancy import market_scope
from leads.services import suppression_upload_process

UPLOAD_TASK = "leads.suppression_upload_process"


@shared_task(name=UPLOAD_TASK, acks_late=True, ignore_result=True)
def suppression_upload_task(*, upload_id: int) -> str:
    """Process one CSV upload of suppressions (queued by the portal's Suppressions page)."""
    with market_scope():
        return suppression_upload_process(upload_id=upload_id)
