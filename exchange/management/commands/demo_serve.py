"""``manage.py demo_serve``: print the demo logins, serve the exchange on 127.0.0.1, and sell.

Unless ``--no-traffic`` is given, a background thread waits (up to 20 s) for the server to answer
``/login/``, then sends simulated publisher traffic through the real HTTP API
(:func:`exchange.demo_traffic.traffic_run`) and prints a one-line summary, so the portal and the
admin show offers, pings with their waterfalls, bids, sales and ledger entries within seconds.
The server keeps serving normally during and after the traffic; a failure of the traffic is
printed and never stops the server. While the traffic runs, the request log lines of the
simulated sellers' API calls are hidden (answers of 500 and above always show). The traffic is
only sent when the port was free, i.e. to this command's own server. On a database that already
holds pings (an earlier ``make demo``) the seed changes, so the second run meets new consumers
instead of only duplicates.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.tenancy import market_scope
from contracts.models import Campaign
from exchange.buyersim import Behaviour, BuyerSimulator
from exchange.demo_traffic import DEFAULT_LEADS, DEFAULT_SEED, MAX_LEADS, USER_AGENT, server_wait, traffic_run
from exchange.models import Ping

DEMO_PASSWORD = "gavel-demo-pass"  # noqa: S105 - the demo market's published password
LOGINS = [
    ("operator (admin)", "operator@gavel.test"),
    ("buyer", "owner@acme.test"),
    ("buyer", "owner@bluebird.test"),
    ("buyer, real-time bidding", "owner@cardinal.test"),
    ("seller", "owner@leadgen.test"),
    ("seller", "owner@quoteforge.test"),
]
SERVER_WAIT_S = 20.0
LOG_FILTER_GRACE_S = 2.0
_SELLER_API_LINE = re.compile(r"^(POST /api/v1/(ping|post|leads)|GET /api/v1/leads/)\S* HTTP/")


def _port_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound right now (runserver binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver does
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _TrafficLogFilter(logging.Filter):
    """Hides the request log lines of the simulated sellers' calls while the traffic runs.

    ``django.request`` records (4xx warnings) are recognized by the traffic's User-Agent;
    ``django.server`` lines carry no headers, so while the traffic runs they are recognized by
    the seller API paths. Answers of 500 and above are always shown.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 0) >= 500:
            return True
        request = getattr(record, "request", None)
        meta = getattr(request, "META", None)
        if isinstance(meta, dict):
            return not str(meta.get("HTTP_USER_AGENT", "")).startswith(USER_AGENT)
        line = record.args[0] if isinstance(record.args, tuple) and record.args else ""
        return not (isinstance(line, str) and _SELLER_API_LINE.match(line))


# The buyers' own systems in the demo market (exchange/fixtures/demo_market.yaml points at them).
DEMO_BUYERS = {
    "cardinal": Behaviour(bid="26.00", latency_ms=40),
    "acme": Behaviour(reject_rate=0.35, reject_reason="Already in our CRM", delivery_latency_ms=30, seed=3),
    "bluebird": Behaviour(delivery_latency_ms=20),
}


class Command(BaseCommand):
    help = "Serve the demo exchange on 127.0.0.1, print how to log in, and send simulated seller traffic."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-traffic", action="store_true", help="Serve only; do not send simulated seller traffic."
        )
        parser.add_argument("--buyers-port", type=int, default=8900, help="Port of the simulated buyers.")
        parser.add_argument("--traffic-leads", type=int, default=DEFAULT_LEADS, help="Leads the traffic sends.")
        parser.add_argument(
            "--traffic-seed",
            type=int,
            default=None,
            help=f"Seed of the simulated consumers (default {DEFAULT_SEED} on a fresh database, another "
            "one when earlier traffic is there, so a second run meets new consumers).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 <= options["traffic_leads"] <= MAX_LEADS:
            raise CommandError(f"--traffic-leads must be from 0 to {MAX_LEADS}.")
        port = options["port"]
        base = f"http://127.0.0.1:{port}"
        with market_scope():
            campaigns = list(Campaign.objects.order_by("public_id").values_list("public_id", flat=True))
            earlier_pings = Ping.objects.count()
        lines = [
            "",
            f"Gavel demo exchange on {base}",
            f"  portal:   {base}/login/",
            f"  admin:    {base}/admin/",
            f"  API docs: {base}/api/docs",
            f"Logins (password '{DEMO_PASSWORD}'):",
            *[f"  {role:<17} {email}" for role, email in LOGINS],
            "Seller API key (scope leads): gvl_demo_leadgen_0000000000000",
            f"Campaigns: {', '.join(campaigns)}",
            "",
        ]
        self._say("\n".join(lines))
        # Only traffic for our own server: if the port is taken, runserver fails, and the server
        # answering on it is someone else's.
        if not options["no_traffic"] and options["traffic_leads"] > 0 and _port_free(port):
            seed = options["traffic_seed"]
            if seed is None:
                seed = DEFAULT_SEED + earlier_pings
            threading.Thread(
                target=self._traffic,
                args=(base, options["traffic_leads"], seed),
                name="demo-traffic",
                daemon=True,
            ).start()
        self._buyers(options["buyers_port"])
        # runserver loads exchange.wsgi (exchange.startup.process_warm) before it opens the port.
        call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)

    def _buyers(self, port: int) -> None:
        """The demo market's RTB and webhook buyers answer here (their URLs name this port)."""
        if not _port_free(port):
            self._say(f"Simulated buyers: port {port} is taken; RTB and webhook buyers may not answer.")
            return
        BuyerSimulator(dict(DEMO_BUYERS), port=port).start()
        self._say(
            f"Simulated buyers on http://127.0.0.1:{port}: Cardinal bids by RTB, Acme and Bluebird take "
            "deliveries by webhook (Acme rejects about a third)."
        )

    def _say(self, line: str, *, error: bool = False) -> None:
        """Write a line and flush it at once: the output may be a pipe (``make demo | tee``)."""
        stream = self.stderr if error else self.stdout
        stream.write(line)
        stream.flush()

    @staticmethod
    def _unfilter(loggers: list[logging.Logger], log_filter: logging.Filter) -> None:
        for logger in loggers:
            logger.removeFilter(log_filter)

    def _traffic(self, base: str, leads: int, seed: int) -> None:
        """Wait for the server, send the traffic, print its summary; never raises."""
        try:
            if not server_wait(f"{base}/login/", timeout=SERVER_WAIT_S):
                self._say(
                    f"Demo traffic: the server did not answer within {SERVER_WAIT_S:.0f} s; none sent.", error=True
                )
                return
            self._say(f"Demo traffic: {leads} simulated leads on their way through {base}/api/v1/ …")
            log_filter = _TrafficLogFilter()
            loggers = [logging.getLogger("django.server"), logging.getLogger("django.request")]
            for logger in loggers:
                logger.addFilter(log_filter)
            try:
                report = traffic_run(base, leads=leads, seed=seed, log=lambda line: None)
            finally:
                # The server logs a request after answering it: let the last lines pass the filter.
                unfilter = threading.Timer(LOG_FILTER_GRACE_S, self._unfilter, args=(loggers, log_filter))
                unfilter.daemon = True
                unfilter.start()
            self._say(f"Demo traffic: {report.summary()}; open {base}/admin/ to see them")
            for problem in report.problems:
                self._say(f"  problem: {problem}", error=True)
        except Exception as exc:  # the server must keep serving whatever happens here
            self._say(f"Demo traffic failed: {exc!r}", error=True)
