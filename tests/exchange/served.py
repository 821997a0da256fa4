"""Real servers for end-to-end tests: gunicorn serving the exchange on the test database (as
docs/deployment.md runs it, with the repository's gunicorn.conf.py), and a buyer that never answers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings

from tests.waiting import free_port

ROOT = Path(__file__).resolve().parents[2]


class SilentBuyer:
    """An RTB endpoint that takes connections and reads requests but never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self.requests = 0  # connections that sent a request
        self._thread = threading.Thread(target=self._serve, name="silent-buyer", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/rtb"

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed: stop
                return
            self._held.append(connection)
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        try:
            if connection.recv(65536):
                with self._lock:
                    self.requests += 1
            while connection.recv(65536):
                pass
        except OSError:
            pass

    def stop(self) -> None:
        self._listener.close()
        for connection in self._held:
            connection.close()
        self._thread.join(5)


class Gunicorn:
    """``gunicorn exchange.wsgi`` (gthread) on a free local port, on the test database. ``redis``:
    with the suite's REDIS_URL, else on the default local-memory cache. Each answer's worker is in
    the access log (``pids_since``)."""

    def __init__(self, tmp_path: Path, *, workers: int, threads: int = 4, redis: bool) -> None:
        db = settings.DATABASES["default"]
        env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
        env.update(
            DJANGO_SETTINGS_MODULE="tests.settings",
            DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        )
        if redis:
            env["REDIS_URL"] = settings.REDIS_URL
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "gunicorn.log"
        self.access_log = tmp_path / "access.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "exchange.wsgi:application"]
                + ["--bind", f"127.0.0.1:{self.port}", "--workers", str(workers), "--worker-class", "gthread"]
                + ["--threads", str(threads), "--log-level", "warning", "--error-logfile", "-"]
                + ["--access-logfile", str(self.access_log), "--access-logformat", "%(p)s %(m)s %(U)s %(s)s"],
                cwd=ROOT,  # gunicorn reads gunicorn.conf.py from here
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stopping it signals the master and its workers only
            )

    def wait_listening(self, timeout: float = 60) -> None:
        """Until the port takes a connection (no request is sent: the first one is the test's)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"gunicorn did not listen within {timeout} s:\n{self.log.read_text()}")

    def call(self, method: str, path: str, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own server
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def access_log_size(self) -> int:
        return self.access_log.stat().st_size if self.access_log.exists() else 0

    def pids_since(self, offset: int, path: str) -> list[int]:
        """The worker of each request to ``path`` logged after ``offset`` (access_log_size)."""
        with self.access_log.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode().splitlines()
        return [int(line.split()[0].strip("<>")) for line in lines if line.split()[2:3] == [path]]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
