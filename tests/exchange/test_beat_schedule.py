"""Every periodic task is on ``CELERY_BEAT_SCHEDULE`` in the settings, and nothing else schedules one."""

from __future__ import annotations

import inspect

from celery import Task
from django.apps import apps
from django.conf import settings

from exchange.celery import app

PERIODIC = {
    "exchange.webhook_deliveries_due",
    "reporting.postbacks_due",
    "exchange.market_sweep",
    "exchange.idempotency_records_purge",
    "billing.ledger_reconcile",
    "exchange.return_windows_close",
    "exchange.pings_prune",
    "exchange.leads_pii_purge",
    "exchange.campaign_rates_refresh",
    "reporting.rollups_fold",
    "leads.work_due",
}


def our_tasks() -> dict[str, Task]:
    """The project's tasks, every app's modules imported as a worker imports them."""
    app.loader.import_default_modules()
    labels = {config.name for config in apps.get_app_configs() if not config.name.startswith("django")}
    return {name: task for name, task in app.tasks.items() if name.split(".")[0] in labels}


def takes_no_arguments(task: Task) -> bool:
    """What beat can call: a task whose parameters all have defaults (``bind``'s self excluded)."""
    return all(
        param.default is not param.empty or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
        for param in inspect.signature(task.run).parameters.values()
    )


def test_every_task_without_arguments_is_scheduled_and_only_those():
    tasks = our_tasks()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert {name for name, task in tasks.items() if takes_no_arguments(task)} == PERIODIC == scheduled
    assert {"exchange.lead_reauction", "exchange.webhook_deliver"} <= set(tasks) - scheduled


def test_each_entry_is_named_after_its_task_and_runs_at_least_hourly():
    assert {name: entry["task"] for name, entry in settings.CELERY_BEAT_SCHEDULE.items()} == {
        name: name for name in PERIODIC
    }
    assert all(0 < entry["schedule"] <= 3600 for entry in settings.CELERY_BEAT_SCHEDULE.values())


def test_no_module_adds_a_schedule_of_its_own():
    our_tasks()  # every module that could register one at import time is imported

    assert app.conf.beat_schedule == settings.CELERY_BEAT_SCHEDULE
