"""Celery tasks of the leads app: thin wrappers around its services (acks late, idempotent)."""

from __future__ import annotations

from celery import shared_task

from accounts.tenancy import market_scope
from leads.privacy import PROCESS_TASK, privacy_request_process
from leads.services import suppression_upload_process

UPLOAD_TASK = "leads.suppression_upload_process"


@shared_task(name=UPLOAD_TASK, acks_late=True, ignore_result=True)
def suppression_upload_task(*, upload_id: int) -> str:
    """Process one CSV upload of suppressions (queued by the portal's Suppressions page)."""
    with market_scope():
        return suppression_upload_process(upload_id=upload_id)


@shared_task(name=PROCESS_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def privacy_request_process_task(*, request_id: int) -> str:
    """Complete a confirmed privacy request (queued when it is confirmed; idempotent)."""
    return privacy_request_process(request_id=request_id)
