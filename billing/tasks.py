"""Celery tasks of the ledger: thin wrappers around services (acks late, idempotent)."""

from __future__ import annotations

import uuid
from typing import Any

from celery import Task, shared_task

from billing.services import ledger_reconcile, reconciliation_record


@shared_task(name="billing.ledger_reconcile", bind=True, acks_late=True)
def ledger_reconcile_task(self: Task) -> dict[str, Any]:
    """Celery beat, every 15 minutes (drift found is logged at ERROR and kept as a ReconciliationRun).

    Reconcile the whole ledger (read-only) and record the run once per task id: a redelivered
    or retried message replaces its own record instead of adding one."""
    report = ledger_reconcile()
    reconciliation_record(report, key=f"task:{self.request.id or uuid.uuid4()}")
    return report.as_dict()
