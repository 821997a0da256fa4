"""Standard Webhooks signing, checked with the reference library, and the SSRF guard."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from exchange import signing
from exchange.signing import (
    SignatureInvalid,
    UnsafeUrl,
    http_post,
    secret_new,
    sign,
    signed_headers,
    url_check,
    verify,
)

BODY = json.dumps({"id": "evt_1", "type": "lead.sold", "data": {"payout": "24.00"}}).encode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1: records every POST and answers from a script (then 200)."""

    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, bytes, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0

    def __post_init__(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — the http.server API
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with lock:
                    receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    status, payload, headers = receiver.script.pop(0) if receiver.script else (200, b"ok", {})
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up on a slow answer (the timeout tests)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/gavel"

    def answer(self, *statuses: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.script.extend((status, body, headers or {}) for status in statuses)


@pytest.fixture
def receiver():
    running = Receiver().start()
    yield running
    running.stop()


# --- signing ----------------------------------------------------------------------------------


def test_secret_is_whsec_and_32_random_bytes():
    first, second = secret_new(), secret_new()

    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


def test_signature_is_what_the_reference_library_computes():
    secret = secret_new()
    ours = sign(secret=secret, msg_id="msg_1", timestamp=1_700_000_000, body=BODY)

    from datetime import UTC, datetime

    theirs = Webhook(secret).sign("msg_1", datetime.fromtimestamp(1_700_000_000, tz=UTC), BODY.decode())
    assert ours == theirs
    assert ours.startswith("v1,")


def test_signed_headers_verify_with_standardwebhooks():
    secret = secret_new()
    headers = signed_headers(secret=secret, body=BODY, msg_id="evt_abc")

    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    assert headers["webhook-id"] == "evt_abc"
    assert headers["content-type"] == "application/json"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) <= 2


def test_a_fresh_message_id_when_none_is_given():
    secret = secret_new()
    first = signed_headers(secret=secret, body=BODY)["webhook-id"]
    second = signed_headers(secret=secret, body=BODY)["webhook-id"]

    assert first.startswith("msg_") and second.startswith("msg_") and first != second


def test_one_byte_changed_fails():
    secret = secret_new()
    headers = signed_headers(secret=secret, body=BODY)
    tampered = BODY.replace(b"24.00", b"25.00")

    assert len(tampered) == len(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)
    with pytest.raises(SignatureInvalid):
        verify(secret=secret, body=tampered, headers=headers)


def test_a_timestamp_six_minutes_old_fails():
    secret = secret_new()
    headers = signed_headers(secret=secret, body=BODY, now=time.time() - 6 * 60)

    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, headers)
    with pytest.raises(SignatureInvalid):
        verify(secret=secret, body=BODY, headers=headers)


def test_a_wrong_secret_fails():
    headers = signed_headers(secret=secret_new(), body=BODY)

    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret_new()).verify(BODY, headers)


def test_a_rotated_out_secret_still_verifies_while_it_signs_too():
    old, new = secret_new(), secret_new()
    headers = signed_headers(secret=new, extra_secrets=[old], body=BODY)

    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(BODY, headers)
    Webhook(old).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_new()).verify(BODY, headers)


def test_our_verify_accepts_what_we_sign():
    secret = secret_new()
    verify(secret=secret, body=BODY, headers=signed_headers(secret=secret, body=BODY))
    with pytest.raises(SignatureInvalid, match="Missing"):
        verify(secret=secret, body=BODY, headers={"webhook-id": "x"})


# --- SSRF guard -------------------------------------------------------------------------------

INSIDE_URLS = [
    "http://127.0.0.1/hook",
    "http://10.1.2.3/hook",
    "https://169.254.169.254/latest/meta-data/",
    "http://[::1]:8080/hook",
    "http://localhost:8000/hook",
    "http://192.168.1.10/",
    "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
]


@pytest.mark.parametrize("url", INSIDE_URLS)
def test_inside_addresses_are_refused(settings, url):
    settings.GAVEL_ALLOW_PRIVATE_URLS = False

    with pytest.raises(UnsafeUrl):
        url_check(url)


@pytest.mark.parametrize("url", INSIDE_URLS)
def test_inside_addresses_are_allowed_when_the_setting_is_on(settings, url):
    settings.GAVEL_ALLOW_PRIVATE_URLS = True

    url_check(url)


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "gopher://x/", "http:///nohost"])
def test_other_schemes_and_no_host_are_always_refused(settings, url):
    for allowed in (False, True):
        settings.GAVEL_ALLOW_PRIVATE_URLS = allowed
        with pytest.raises(UnsafeUrl):
            url_check(url)


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> None:
    def getaddrinfo(host, port, *args, **kwargs):
        if host[0].isdigit():  # an address literal resolves to itself
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, port))]
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(signing.socket, "getaddrinfo", getaddrinfo)


def test_a_public_host_passes_and_one_inside_address_among_its_answers_fails(settings, monkeypatch):
    settings.GAVEL_ALLOW_PRIVATE_URLS = False
    fake_dns(monkeypatch, {"hooks.example.com": ["93.184.215.14"], "mixed.example.com": ["93.184.215.14", "10.0.0.7"]})

    url_check("https://hooks.example.com/gavel")
    url_check("https://93.184.215.14/gavel")
    with pytest.raises(UnsafeUrl, match="10.0.0.7"):
        url_check("https://mixed.example.com/gavel")
    with pytest.raises(UnsafeUrl, match="Cannot resolve"):
        url_check("https://nowhere.example.com/gavel")


# --- outbound POST ----------------------------------------------------------------------------


def test_http_post_sends_the_body_and_reads_a_capped_answer(receiver):
    receiver.answer(201, body=b"x" * 5000, headers={"retry-after": "7"})

    response = http_post(
        receiver.url + "?a=1", body=BODY, headers={"content-type": "application/json"}, timeout=5, max_body=2048
    )

    assert response.status == 201
    assert response.body == b"x" * 2048
    assert response.headers["retry-after"] == "7"
    assert receiver.requests[0].body == BODY
    assert receiver.requests[0].path == "/hooks/gavel?a=1"
    assert receiver.requests[0].headers["user-agent"].startswith("Gavel/")


def test_http_post_gives_up_at_its_deadline(receiver):
    receiver.delay = 1.5
    started = time.monotonic()

    with pytest.raises(TimeoutError):
        http_post(receiver.url, body=BODY, headers={}, timeout=0.3)
    assert time.monotonic() - started < 1.2


def test_http_post_connects_to_the_address_it_vetted_not_a_second_dns_answer(settings, monkeypatch, receiver):
    """DNS rebinding: the name resolves safely for the check, then to somewhere else."""
    settings.GAVEL_ALLOW_PRIVATE_URLS = False
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host[0].isdigit():  # an address literal resolves to itself
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, port))]
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "10.255.255.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(signing.socket, "getaddrinfo", getaddrinfo)
    # Only for this test: treat the receiver's loopback address as public.
    monkeypatch.setattr(signing, "address_unsafe", lambda address: str(address) != "127.0.0.1")
    url = receiver.url.replace("127.0.0.1", "rebind.test")

    response = http_post(url, body=BODY, headers={}, timeout=5)

    assert response.status == 200
    assert receiver.requests[0].headers["host"].startswith("rebind.test:")
    assert lookups == ["rebind.test"]


def test_http_post_refuses_an_inside_address(settings):
    settings.GAVEL_ALLOW_PRIVATE_URLS = False

    with pytest.raises(UnsafeUrl):
        http_post("http://127.0.0.1:9/", body=BODY, headers={}, timeout=1)
