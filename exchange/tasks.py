"""Celery tasks of the market: thin wrappers around services (acks late, idempotent)."""

from __future__ import annotations

from exchange.celery import app
from exchange.services import lead_reauction_run, market_sweep


@app.task(name="exchange.lead_reauction", acks_late=True, reject_on_worker_lost=True)
def lead_reauction(*, lead_id: int, cycle: int) -> str:
    return lead_reauction_run(lead_id=lead_id, cycle=cycle)


@app.task(name="exchange.market_sweep", acks_late=True)
def market_sweep_task() -> dict[str, int]:
    return market_sweep()


app.add_periodic_task(300.0, market_sweep_task.s(), name="exchange.market_sweep")
