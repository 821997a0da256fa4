"""The RTB transport (libcurl's multi interface, one per thread) against real local HTTP buyers:
what reaches the engine when answers are too big, connections go stale, addresses are private,
and many threads ask at once."""

from __future__ import annotations

import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from demo.buyers import Behaviour, BuyerSimulator
from exchange.auction.rtb import MAX_ANSWER_BYTES, RtbCall, rtb_collect, rtb_start
from tests.exchange.receiver import Receiver


@dataclass(frozen=True)
class Contract:
    """The part of a compiled contract the transport reads."""

    id: int
    rtb_url: str
    organization_id: int = 1
    rtb_timeout_ms: int = 1000


SECRETS = {1: "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}


def ask(*urls: str, timeout_s: float = 1.0) -> dict[int, tuple[str | None, Decimal | None]]:
    calls = [RtbCall(Contract(n, url), b'{"ping_id":"png_t"}', timeout_s) for n, url in enumerate(urls)]  # type: ignore[arg-type]
    answers = rtb_collect(rtb_start(calls, SECRETS), timeout_s + 0.1)
    return {a.contract_id: (a.reason, a.bid) for a in answers}


def test_answers_come_back_per_call(buyers):
    buyers.behaviours.update(a=Behaviour(bid="21.00"), b=Behaviour(bid=None), c=Behaviour(failure_rate=1.0))
    assert ask(buyers.url("a"), buyers.url("b"), buyers.url("c")) == {
        0: (None, Decimal("21.00")),
        1: ("rtb_no_bid", None),
        2: ("rtb_error", None),
    }


def test_an_answer_over_the_size_limit_is_cut_and_so_invalid(buyers):
    buyers.behaviours["big"] = Behaviour(answer={"bid": "20.00", "pad": "x" * (MAX_ANSWER_BYTES * 2)})
    buyers.behaviours["small"] = Behaviour(answer={"bid": "20.00", "pad": "x" * (MAX_ANSWER_BYTES // 2)})
    assert ask(buyers.url("big"), buyers.url("small")) == {0: ("rtb_invalid", None), 1: (None, Decimal("20.00"))}


def test_a_refused_connection_is_an_error_at_once():
    server = BuyerSimulator().start()
    url = server.url("gone")
    server.stop()  # nothing listens on that port any more
    started = time.perf_counter()
    assert ask(url, timeout_s=2.0) == {0: ("rtb_error", None)}
    assert time.perf_counter() - started < 1.0


def test_a_call_past_its_timeout_is_a_timeout_and_the_wait_ends_with_it(buyers):
    buyers.behaviours.update(slow=Behaviour(bid="30.00", latency_ms=1000), quick=Behaviour(bid="10.00"))
    started = time.perf_counter()
    assert ask(buyers.url("slow"), buyers.url("quick"), timeout_s=0.15) == {
        0: ("rtb_timeout", None),
        1: (None, Decimal("10.00")),
    }
    assert time.perf_counter() - started < 0.5
    # The connection the timed-out call held is dropped, not handed to the next ping.
    buyers.behaviours["slow"] = Behaviour(bid="31.00")
    assert ask(buyers.url("slow")) == {0: (None, Decimal("31.00"))}


def test_a_kept_alive_connection_the_buyer_closed_is_opened_again():
    server = BuyerSimulator({"b": Behaviour(bid="12.00")}).start()
    port = server.port
    try:
        assert ask(server.url("b")) == {0: (None, Decimal("12.00"))}
        server.stop()  # closes the connection this thread keeps to it
        server = BuyerSimulator({"b": Behaviour(bid="13.00")}, port=port).start()
        assert ask(server.url("b")) == {0: (None, Decimal("13.00"))}
    finally:
        server.stop()


def test_calls_dropped_by_a_failed_ping_do_not_leak_into_the_next(buyers):
    buyers.behaviours.update(a=Behaviour(bid="1.00", latency_ms=50), b=Behaviour(bid="2.00"))
    rtb_start([RtbCall(Contract(7, buyers.url("a")), b"{}", 1.0)], SECRETS)  # type: ignore[arg-type]
    # ... the ping failed before collecting; the thread's next ping sees only its own calls.
    assert ask(buyers.url("b")) == {0: (None, Decimal("2.00"))}


def test_threads_asking_at_once_each_get_their_own_answers(buyers):
    for n in range(4):
        buyers.behaviours[f"t{n}"] = Behaviour(bid=f"{n + 1}.00", latency_ms=5 * n)
    urls = [buyers.url(f"t{n}") for n in range(4)]
    wrong: list[object] = []

    def work(shift: int) -> None:
        for _ in range(25):
            order = urls[shift:] + urls[:shift]
            expected = {i: (None, Decimal(f"{(i + shift) % 4 + 1}.00")) for i in range(4)}
            got = ask(*order)
            if got != expected:
                wrong.append(got)

    threads = [threading.Thread(target=work, args=(n % 4,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert wrong == []
    assert len(buyers.requests()) == 8 * 25 * 4


def test_a_redirect_is_an_error_and_is_not_followed(buyers):
    hop = Receiver().start()
    try:
        buyers.behaviours["elsewhere"] = Behaviour(bid="40.00")
        hop.answer(307, body=b'{"bid": "35.00"}', headers={"location": buyers.url("elsewhere")})

        assert ask(hop.url) == {0: ("rtb_error", None)}
        assert len(hop.requests) == 1
        assert buyers.requests("elsewhere") == []
    finally:
        hop.stop()


@pytest.mark.django_db
def test_private_addresses_are_refused_at_connect_time(settings):
    settings.GAVEL_ALLOW_PRIVATE_URLS = False
    server = BuyerSimulator({"inside": Behaviour(bid="50.00")}).start()  # a new port: no kept connection
    try:
        assert ask(server.url("inside")) == {0: ("rtb_error", None)}
        assert server.requests() == []
    finally:
        server.stop()


def test_a_buyer_whose_certificate_does_not_verify_is_never_sent_the_ping(certificate):
    """TLS is verified: a self-signed certificate fails the handshake, before any request."""
    cert, key = certificate
    received: list[str] = []

    class Buyer(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            received.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"bid": "9.00"}')

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Buyer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_port}/rtb"
        assert ask(url) == {0: ("rtb_error", None)}
        assert received == []
        # The server itself works for a client that trusts its certificate.
        trusting = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(urllib.request.Request(url, data=b"{}"), context=trusting, timeout=5) as answer:
            assert answer.read() == b'{"bid": "9.00"}'
        assert received == ["/rtb"]
    finally:
        server.shutdown()
        server.server_close()
