"""Celery tasks of the market: thin wrappers around services (acks late, idempotent)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from exchange.api.idempotency import idempotency_records_purge
from exchange.celery import app
from exchange.returns.services import return_windows_close
from exchange.services import lead_reauction_run, market_sweep
from exchange.services.quality import campaign_rates_refresh
from exchange.services.retention import leads_pii_purge_older, pings_prune
from exchange.services.selling import LEAD_REAUCTION_TASK


@app.task(name=LEAD_REAUCTION_TASK, acks_late=True, reject_on_worker_lost=True)
def lead_reauction(*, lead_id: int, cycle: int) -> str:
    return lead_reauction_run(lead_id=lead_id, cycle=cycle)


@app.task(name="exchange.market_sweep", acks_late=True)
def market_sweep_task() -> dict[str, int]:
    return market_sweep()


@app.task(name="exchange.idempotency_records_purge", acks_late=True, ignore_result=True)
def idempotency_records_purge_task() -> int:
    """Celery beat, hourly: drop the Idempotency-Key records past their 24 h, so the table stays small."""
    return idempotency_records_purge()


@app.task(name="exchange.return_windows_close", acks_late=True, ignore_result=True)
def return_windows_close_task() -> int:
    """Celery beat, hourly: :func:`return_windows_close` (market-wide; it opens its own scope)."""
    return return_windows_close()


@app.task(name="exchange.pings_prune", acks_late=True, ignore_result=True)
def pings_prune_task() -> int:
    """Celery beat, hourly: delete unreferenced pings older than GAVEL_PING_RETENTION_DAYS (90)."""
    return pings_prune(before=timezone.now() - timedelta(days=settings.GAVEL_PING_RETENTION_DAYS))


@app.task(name="exchange.leads_pii_purge", acks_late=True, ignore_result=True)
def leads_pii_purge_task() -> int:
    """Celery beat, hourly: purge the personal data of leads older than GAVEL_PII_RETENTION_DAYS
    (365; 0 keeps it forever)."""
    days = settings.GAVEL_PII_RETENTION_DAYS
    if days <= 0:
        return 0
    return leads_pii_purge_older(before=timezone.now() - timedelta(days=days))


@app.task(name="exchange.campaign_rates_refresh", acks_late=True, ignore_result=True)
def campaign_rates_refresh_task() -> int:
    """Celery beat, every 15 minutes: each campaign's return and reject rates for the quality score."""
    return campaign_rates_refresh()
