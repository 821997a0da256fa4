"""The embedded default runs the whole product: with no REDIS_URL, ``demo_serve`` starts a Celery
worker and beat on the embedded broker (a SQLite file beside the SQLite database), and a delayed
task and the periodic ones run there as they do on Redis.

Everything runs in subprocesses on a fresh SQLite database, as ``make demo`` does; only beat's
intervals are shortened (tests/embedded_settings.py).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.waiting import free_port, until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def runs(db: Path) -> dict[str, datetime]:
    """The recorded ledger reconciliations, by key (read with sqlite3: the test's own database is another)."""
    with sqlite3.connect(db, timeout=20) as conn:
        rows = conn.execute("SELECT key, checked_at FROM billing_reconciliationrun").fetchall()
    # Django keeps an aware datetime in SQLite as its UTC time without the offset.
    return {key: datetime.fromisoformat(checked_at).replace(tzinfo=UTC) for key, checked_at in rows}


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``demo_serve`` without traffic on a fresh SQLite database and no REDIS_URL."""
    db = tmp_path / "demo.sqlite3"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(DEBUG="1", DATABASE_URL=f"sqlite:///{db}")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    server = subprocess.Popen(
        [
            *manage,
            "demo_serve",
            "--no-traffic",
            "--port",
            str(free_port()),
            "--buyers-port",
            str(free_port()),
            "--logs",
            str(tmp_path / "log"),
        ],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "tests.embedded_settings"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    demo = {"db": db, "env": env, "logs": tmp_path / "log", "server": server}
    try:
        yield demo
    finally:
        if server.poll() is None:
            server.terminate()
            print(server.communicate(timeout=30)[0])


def test_a_delayed_task_and_the_periodic_ones_run_on_the_embedded_broker(demo):
    worker_log, beat_log = demo["logs"] / "worker.log", demo["logs"] / "beat.log"
    started = ""
    while "Celery worker (pid" not in started and demo["server"].poll() is None:
        started = demo["server"].stdout.readline()
    pids = re.search(r"Celery worker \(pid (\d+)\) and beat \(pid (\d+)\)", started)
    assert pids, started
    # The product's own producer, under the default settings, sends to the embedded broker (while
    # the worker starts: the message waits there).
    before = datetime.now(UTC)
    sent = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-v0",
            "-c",
            "from billing.tasks import ledger_reconcile_task; from django.conf import settings; "
            "print(settings.CELERY_BROKER_URL, settings.CELERY_TASK_ALWAYS_EAGER); "
            "ledger_reconcile_task.apply_async(countdown=3, task_id='delayed-1')",
        ],
        cwd=ROOT,
        env=demo["env"],
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert sent.stdout.split() == [f"sqla+sqlite:///{demo['db']}-tasks", "False"]
    until(lambda: worker_log.exists() and "ready." in worker_log.read_text(), "the worker is ready")

    # Beat sends every scheduled task; the worker runs them (the reconciliations are recorded).
    def all_sent() -> bool:
        text = beat_log.read_text()
        return all(f"Sending due task {name} ({name})" in text for name in settings.CELERY_BEAT_SCHEDULE)

    until(all_sent, "beat sends every periodic task")
    periodic = until(lambda: [k for k in runs(demo["db"]) if k != "task:delayed-1"], "a periodic reconciliation")
    assert all(key.startswith("task:") for key in periodic)

    # The delayed task ran once, and not before its countdown.
    delayed = until(lambda: runs(demo["db"]).get("task:delayed-1"), "the delayed reconciliation")
    assert delayed >= before + timedelta(seconds=3)
    assert "ERROR" not in worker_log.read_text() and "Traceback" not in worker_log.read_text()

    # Stopping the demo stops its worker and beat.
    demo["server"].terminate()
    demo["server"].communicate(timeout=30)
    for pid in map(int, pids.groups()):
        until(lambda pid=pid: not Path(f"/proc/{pid}").exists(), f"process {pid} stops")
