"""Celery tasks of reporting: thin wrappers around its services (rollups, postbacks)."""

from __future__ import annotations

import logging
from typing import Any

from accounts.tenancy import TenantTask
from exchange.celery import app
from reporting import services
from reporting.rollups import rollups_fold


@app.task(name="reporting.rollups_fold", acks_late=True, ignore_result=True)
def rollups_fold_task() -> dict[str, int]:
    """Celery beat, every 30 s: fold the new pings, leads, sales, returns and conversions into the
    hourly rollups (idempotent: a replay adds nothing)."""
    folded = rollups_fold()
    return {"pings": folded.pings, "hours": folded.hours}


logger = logging.getLogger(__name__)


@app.task(
    name=services.POSTBACK_TASK,
    bind=True,
    base=TenantTask,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def postback_send(self: Any, *, postback_id: int, organization_id: int) -> str:
    """Attempt one postback; on failure queue the next attempt with its backoff as ``countdown``.

    Run in-process (eagerly, or by the sweeper) it does not queue itself: the postback waits,
    pending, for :func:`postbacks_due`.
    """
    outcome = services.postback_attempt(postback_id=postback_id)
    if outcome.retry_in is not None and not self.request.is_eager:
        self.apply_async(
            kwargs={"postback_id": postback_id, "organization_id": organization_id}, countdown=outcome.retry_in
        )
    return outcome.status


@app.task(name="reporting.postbacks_due", acks_late=True, ignore_result=True)
def postbacks_due(*, limit: int | None = None) -> int:
    """Attempt every postback that is due (the periodic safety net for lost or eager tasks); returns how many ran."""
    due = services.postbacks_due(limit=limit)
    for postback_id, organization_id in due:
        try:
            postback_send.apply(kwargs={"postback_id": postback_id, "organization_id": organization_id}, throw=True)
        except Exception:
            logger.exception("postback %s failed", postback_id)  # one broken postback must not starve the rest
    return len(due)
