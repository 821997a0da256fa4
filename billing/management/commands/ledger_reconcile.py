"""``manage.py ledger_reconcile``: check the ledger now, print what drifted, exit 1 if anything did."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.services import ledger_reconcile, reconciliation_record


class Command(BaseCommand):
    help = "Reconcile the ledger: cached balances against entries, transactions summing to zero, holds."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-record", action="store_true", help="Do not keep the run as a ReconciliationRun.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = ledger_reconcile()
        if not options["no_record"]:
            reconciliation_record(report, key=f"manual:{uuid.uuid4()}")
        for problem in report.problems():
            self.stderr.write(problem)
        if not report.clean:
            raise CommandError(f"ledger drift: {len(report.problems())} problem(s)")
        self.stdout.write(f"ledger clean: {report.accounts} accounts, {report.transactions} transactions")
