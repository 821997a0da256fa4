"""``manage.py demo_serve``: print the demo logins, serve the exchange on 127.0.0.1, and sell.

Unless ``--no-traffic`` is given, a background thread waits (up to 20 s) for the server to answer
``/login/``, then sends simulated publisher traffic through the real HTTP API
(:func:`demo.traffic.traffic_run`) and prints a one-line summary, so the portal and the
admin show offers, pings with their waterfalls, bids, sales and ledger entries within seconds.
The server keeps serving normally during and after the traffic; a failure of the traffic is
printed and never stops the server. While the traffic runs, the request log lines of the
simulated sellers' API calls are hidden (answers of 500 and above always show). The traffic is
only sent when the port was free, i.e. to this command's own server. On a database that already
holds pings (an earlier ``make demo``) the seed changes, so the second run meets new consumers
instead of only duplicates.

Unless ``--no-tasks`` is given, a Celery worker and beat run beside the server as child processes,
on the configured broker (with no ``REDIS_URL``, the embedded one: a SQLite file beside the
database), so delayed and periodic tasks run as in production: re-auction cycles after their
delay, webhook retries, the market sweep, return windows, ledger reconciliation. Their output goes
to ``worker.log`` and ``beat.log`` in ``--logs`` (``var/log``). They stop with the demo: on Ctrl-C
and SIGTERM the command stops them before it exits, and on Linux the kernel sends them SIGTERM if
the command dies any other way.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import signal
import socket
import subprocess  # nosec B404  # only our own commands
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.tenancy import market_scope
from contracts.models import Campaign
from demo.buyers import Behaviour, BuyerSimulator
from demo.traffic import DEFAULT_LEADS, DEFAULT_SEED, MAX_LEADS, USER_AGENT, server_wait, traffic_run
from exchange.celery import app as celery_app
from exchange.models import Ping

DEMO_PASSWORD = "gavel-demo-pass"  # noqa: S105 - the demo market's published password  # nosec B105
LOGINS = [
    ("operator (admin)", "operator@gavel.test"),
    ("buyer", "owner@acme.test"),
    ("buyer", "owner@bluebird.test"),
    ("buyer, real-time bidding", "owner@cardinal.test"),
    ("seller", "owner@leadgen.test"),
    ("seller", "owner@quoteforge.test"),
]
SERVER_WAIT_S = 20.0
TASKS_STOP_S = 15.0
PR_SET_PDEATHSIG = 1  # prctl(2)
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


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when the command dies, even by SIGKILL.

    libc is loaded here, before the fork: the child only makes the one call.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return preexec


class _Tasks:
    """The demo's Celery worker and beat, child processes of the command, each logging to its file."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()

    def commands(self) -> dict[str, list[str]]:
        celery = [sys.executable, "-m", "celery", "-A", "exchange"]
        schedule = getattr(settings, "CELERY_BEAT_SCHEDULE_FILENAME", None) or str(self.logs / "beat-schedule")
        return {
            # One task at a time is plenty for the demo's traffic; events and the workers' gossip
            # are for a cluster's monitoring, and would only poll the embedded broker.
            "worker": [
                *celery,
                "worker",
                "--pool",
                "solo",
                "-Q",
                settings.CELERY_TASK_DEFAULT_QUEUE,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            "beat": [*celery, "beat", "--schedule", schedule, "--loglevel", "INFO"],
        }

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        broker = str(settings.CELERY_BROKER_URL)
        if broker.startswith("sqla+sqlite:///"):
            # SQLite makes the file, not its folder (var/ on a fresh checkout). The broker's tables
            # are made here, once: the server, the worker and beat would race to create them.
            Path(broker.removeprefix("sqla+sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            with celery_app.connection_for_write() as connection:
                connection.default_channel.queue_declare(queue=settings.CELERY_TASK_DEFAULT_QUEUE)
        preexec = _parent_death_signal()
        for name, command in self.commands().items():
            with open(self.logs / f"{name}.log", "wb") as log:
                self.processes[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments  # nosec B603
                    command,
                    cwd=settings.BASE_DIR,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},  # each line in the log as it is written
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=preexec,  # started before this process has threads
                    # Out of the terminal's process group: Ctrl-C reaches the command alone, which
                    # then stops them with SIGTERM (one warm shutdown, and no "stopped" alarm).
                    start_new_session=True,
                )

    def watch(self, say: Callable[..., None]) -> None:
        """Say so, once, if a process ends while the demo runs (its log tells why)."""
        for name, process in self.processes.items():
            threading.Thread(target=self._watch, args=(name, process, say), name=f"demo-{name}", daemon=True).start()

    def _watch(self, name: str, process: subprocess.Popen[bytes], say: Callable[..., None]) -> None:
        code = process.wait()
        if not self.stopping.is_set():
            say(f"Celery {name} stopped (exit {code}); see {self.logs / f'{name}.log'}", error=True)

    def stop(self) -> None:
        """SIGTERM (Celery's warm shutdown: a task running finishes, a delayed one goes back to the
        broker), then SIGKILL what is still there after :data:`TASKS_STOP_S`."""
        self.stopping.set()
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=TASKS_STOP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _broker_shown() -> str:
    """The broker's URL without a password."""
    url = str(settings.CELERY_BROKER_URL)
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so the command stops its worker and beat before it exits."""
    raise SystemExit(128 + signum)


class Command(BaseCommand):
    help = "Serve the demo exchange on 127.0.0.1, print how to log in, and send simulated seller traffic."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-traffic", action="store_true", help="Serve only; do not send simulated seller traffic."
        )
        parser.add_argument("--buyers-port", type=int, default=8900, help="Port of the simulated buyers.")
        parser.add_argument("--no-tasks", action="store_true", help="Start no Celery worker and beat (run your own).")
        parser.add_argument(
            "--logs",
            type=Path,
            default=None,
            help="Folder of the worker's and beat's logs (default var/log in the repository).",
        )
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
        tasks = None
        if not options["no_tasks"]:
            # First, before any thread of this process starts: the children are forked.
            tasks = _Tasks(options["logs"] or Path(settings.BASE_DIR) / "var" / "log")
            tasks.start()
            worker, beat = tasks.processes["worker"], tasks.processes["beat"]
            self._say(
                f"Celery worker (pid {worker.pid}) and beat (pid {beat.pid}) run the delayed and periodic "
                f"tasks on {_broker_shown()}; logs in {tasks.logs / 'worker.log'} and {tasks.logs / 'beat.log'}"
            )
            tasks.watch(self._say)
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
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            # runserver loads exchange.wsgi (exchange.startup.process_warm) before it opens the port.
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
        finally:
            signal.signal(signal.SIGTERM, previous)
            if tasks is not None:
                tasks.stop()

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
