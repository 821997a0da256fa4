"""Celery tasks of reporting: thin wrappers around its services."""

from __future__ import annotations

from exchange.celery import app
from reporting.rollups import rollups_fold


@app.task(name="reporting.rollups_fold", acks_late=True, ignore_result=True)
def rollups_fold_task() -> dict[str, int]:
    """Celery beat, every 30 s: fold the new pings, leads, sales, returns and conversions into the
    hourly rollups (idempotent: a replay adds nothing)."""
    folded = rollups_fold()
    return {"pings": folded.pings, "hours": folded.hours}
