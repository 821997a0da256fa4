"""The rollups' fold on the embedded default (SQLite, no Redis), as ``make demo`` runs it: the
seller's and the buyer's report figures, and a second fold and a rebuild changing nothing.

The suite runs on PostgreSQL; these run the same tests of test_reports.py (the same trade, the same
exact figures) in a pytest of their own on a fresh SQLite database, as test_embedded_tasks.py runs
the demo. The fold reads its facts through the ORM there and unnests the waterfalls in Python
(exchange/sql.py), and its upsert targets the grain's COALESCE index (reporting/sql.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
TESTS = (
    "test_seller_report_equals_the_ledger_and_the_raw_rows",
    "test_buyer_report_equals_the_ledger_and_the_waterfalls",
    "test_folding_again_changes_nothing_and_a_rebuild_gives_the_same",
    "test_a_late_return_changes_the_leads_hour",
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor == "sqlite", reason="on SQLite, test_reports.py itself is this test"),
]


def test_seller_and_buyer_reports_on_sqlite(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'reports.sqlite3'}")
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "tests/reporting/test_reports.py",
            "-k",
            " or ".join(TESTS),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    assert f"{len(TESTS)} passed" in ran.stdout, ran.stdout[-2000:]
