"""``manage.py demo_traffic``: send simulated seller traffic to a running demo exchange.

``manage.py demo_traffic --base-url http://127.0.0.1:8000 --leads 60`` acts as the demo market's
three sellers over real HTTP (:func:`demo.traffic.traffic_run`), prints a short summary
(one line per lead with ``-v 2``) and exits non-zero when any answer was unexpected (a 5xx, an
undocumented shape, a bad input not refused with its documented 4xx). It needs no database: only
the server at ``--base-url``, loaded with ``exchange/fixtures/demo_market.yaml``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.traffic import DEFAULT_LEADS, DEFAULT_SEED, MAX_LEADS, server_wait, traffic_run


class Command(BaseCommand):
    help = "Send simulated seller traffic (pings, posts, full leads, duplicates, bad inputs) to a demo exchange."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="The exchange, e.g. http://127.0.0.1:8000"
        )
        parser.add_argument("--leads", type=int, default=DEFAULT_LEADS, help=f"How many leads (0 to {MAX_LEADS}).")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Same seed, same consumers and mix.")
        parser.add_argument("--wait", type=float, default=0.0, help="Wait up to this many seconds for the server.")

    def handle(self, *args: Any, **options: Any) -> None:
        base = options["base_url"].rstrip("/")
        if not 0 <= options["leads"] <= MAX_LEADS:
            raise CommandError(f"--leads must be from 0 to {MAX_LEADS}.")
        if options["wait"] > 0 and not server_wait(f"{base}/login/", timeout=options["wait"]):
            raise CommandError(f"{base} did not answer within {options['wait']:g} s.")
        verbose = options["verbosity"] >= 2
        try:
            report = traffic_run(
                base,
                leads=options["leads"],
                seed=options["seed"],
                log=self.stdout.write if verbose else (lambda line: None),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Demo traffic: {report.summary()} ({report.requests} requests in {report.seconds:.1f} s)")
        if report.problems:
            for problem in report.problems:
                self.stderr.write(f"  problem: {problem}")
            raise CommandError(f"{len(report.problems)} unexpected answer(s) from {base}.")
