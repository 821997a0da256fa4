"""A real HTTP server for outbound tests: records every request and answers from a script."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"


@dataclass
class Receiver:
    """Serves on ``host`` (any of 127.0.0.0/8 works on Linux), a free port; answers each request
    with the next scripted (status, body, headers), then 200 "ok"."""

    host: str = "127.0.0.1"
    scheme: str = "http"
    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, bytes, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0

    def __post_init__(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers_in = {k.lower(): v for k, v in self.headers.items()}
                with lock:
                    receiver.requests.append(Received(self.path, headers_in, body, self.command))
                    status, payload, headers = receiver.script.pop(0) if receiver.script else (200, b"ok", {})
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = _answer  # noqa: N815 — the http.server API

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up on a slow answer (the timeout tests)

        self.server = Server((self.host, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def tls(self, *, cert: str, key: str) -> Receiver:
        """Serve HTTPS with this certificate (call before :meth:`start`)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https"
        return self

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/hooks/gavel"

    def answer(self, *statuses: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.script.extend((status, body, headers or {}) for status in statuses)
