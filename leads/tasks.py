"""Celery tasks of the leads app: thin wrappers around its services (acks late, idempotent)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from accounts.tenancy import market_scope
from leads.models import PrivacyRequest, SuppressionUpload
from leads.privacy import PROCESS_TASK, privacy_request_process
from leads.services import suppression_upload_process

# Work whose task never ran (the broker was down when it was queued) is picked up after this.
WORK_GRACE = timedelta(minutes=5)

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


@shared_task(name="leads.work_due", acks_late=True, ignore_result=True)
def work_due_task() -> dict[str, int]:
    """Celery beat, every 5 minutes: confirmed privacy requests and queued suppression uploads whose
    own task never ran (queued while the broker was down, or lost), done now. Both are idempotent,
    so one that is merely slow is not done twice."""
    cutoff = timezone.now() - WORK_GRACE
    with market_scope():
        requests = list(
            PrivacyRequest.objects.filter(status=PrivacyRequest.Status.CONFIRMED, confirmed_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:100]
        )
        uploads = list(
            SuppressionUpload.objects.filter(status=SuppressionUpload.Status.QUEUED, created_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:10]
        )
    for request_id in requests:
        privacy_request_process(request_id=request_id)
    for upload_id in uploads:
        with market_scope():
            suppression_upload_process(upload_id=upload_id)
    return {"privacy_requests": len(requests), "uploads": len(uploads)}
