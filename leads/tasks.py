"""Celery tasks of the leads app: thin wrappers around its services."""

from __future__ import annotations

from celery import shared_task

from leads.privacy import PROCESS_TASK, privacy_request_process


@shared_task(name=PROCESS_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def privacy_request_process_task(*, request_id: int) -> str:
    """Complete a confirmed privacy request (queued when it is confirmed; idempotent)."""
    return privacy_request_process(request_id=request_id)
