"""The one outbound client and its SSRF guard, against real HTTP servers on loopback addresses.

The tests that need an address to count as public treat exactly the test server's loopback
address as public (``treat_as_public``); every other address meets the real guard, at connect
time, with ``GAVEL_ALLOW_PRIVATE_URLS`` off.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time

import pytest

from core import outbound
from core.outbound import (
    FAILED,
    REFUSED,
    TIMEOUT,
    OutboundRequest,
    OutboundResponse,
    UnsafeUrl,
    address_unsafe,
    http_send,
    http_send_all,
    url_check,
)
from tests.exchange.receiver import Receiver

BODY = json.dumps({"id": "evt_1", "type": "lead.sold", "data": {"payout": "24.00"}}).encode()


@pytest.fixture
def guarded(settings):
    """The guard as in production: private addresses refused."""
    settings.GAVEL_ALLOW_PRIVATE_URLS = False


def treat_as_public(monkeypatch, *addresses: str) -> None:
    """Only for a test: these loopback addresses count as public; the guard judges every other."""
    real = outbound.address_unsafe
    monkeypatch.setattr(outbound, "address_unsafe", lambda address: str(address) not in addresses and real(address))


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> None:
    """Python's resolver (which :func:`url_check` uses) answers from ``answers``; libcurl's is not touched."""

    def getaddrinfo(host, port, *args, **kwargs):
        if host[0].isdigit():  # an address literal resolves to itself
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, port))]
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(outbound.socket, "getaddrinfo", getaddrinfo)


def post(url: str, *, timeout_s: float = 5.0, max_body: int = 64 * 1024, keep_headers: bool = False):
    request = OutboundRequest(url, BODY, {"content-type": "application/json"}, timeout_s, max_body, keep_headers)
    return http_send(request)


# --- sending --------------------------------------------------------------------------------------


def test_sends_the_body_signed_headers_and_reads_a_capped_answer(receiver):
    receiver.answer(201, body=b"x" * 5000, headers={"retry-after": "7"})

    response = post(receiver.url + "?a=1", max_body=2048, keep_headers=True)

    assert (response.status, response.body, response.truncated) == (201, b"x" * 2048, True)
    assert response.headers["retry-after"] == "7"
    (request,) = receiver.requests
    assert (request.method, request.path, request.body) == ("POST", "/hooks/gavel?a=1", BODY)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Gavel/")
    assert "expect" not in request.headers


def test_an_answer_within_the_cap_is_whole_and_headers_are_kept_only_when_asked(receiver):
    receiver.answer(200, body=b"y" * 2048, headers={"retry-after": "7"})

    response = post(receiver.url, max_body=2048)

    assert (response.status, response.body, response.truncated, response.headers) == (200, b"y" * 2048, False, {})


def test_a_request_without_a_body_is_a_get(receiver):
    response = http_send(OutboundRequest(receiver.url + "?event=sale", None, {}, 5.0))

    assert response.status == 200
    assert [(r.method, r.path, r.body) for r in receiver.requests] == [("GET", "/hooks/gavel?event=sale", b"")]


def test_a_get_after_a_post_on_the_same_handle_is_a_get_and_back(receiver):
    post(receiver.url)
    http_send(OutboundRequest(receiver.url, None, {}, 5.0))
    post(receiver.url)

    assert [r.method for r in receiver.requests] == ["POST", "GET", "POST"]


def test_gives_up_at_its_timeout(receiver):
    receiver.delay = 1.5
    started = time.monotonic()

    response = post(receiver.url, timeout_s=0.3)

    assert (response.status, response.error) == (None, TIMEOUT)
    assert time.monotonic() - started < 1.2


def test_requests_sent_together_travel_together_and_answer_in_order():
    servers = [Receiver(delay=0.4).start() for _ in range(3)]
    try:
        for n, server in enumerate(servers):
            server.answer(200 + n)
        started = time.monotonic()

        responses = http_send_all([OutboundRequest(s.url, BODY, {}, 5.0) for s in servers])

        assert [r.status for r in responses] == [200, 201, 202]
        assert time.monotonic() - started < 1.0  # not 3 × 0.4 s
        assert [len(s.requests) for s in servers] == [1, 1, 1]
    finally:
        for server in servers:
            server.stop()


def test_a_refused_connection_fails_at_once():
    server = Receiver().start()
    url = server.url
    server.stop()  # nothing listens on that port any more

    response = post(url)

    assert (response.status, response.error) == (None, FAILED)
    assert response.detail


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "gopher://x/", "dict://x:11211/", ""])
def test_only_http_and_https_are_sent_whatever_the_setting(settings, url):
    for allowed in (False, True):
        settings.GAVEL_ALLOW_PRIVATE_URLS = allowed

        response = post(url)

        assert (response.status, response.error) == (None, REFUSED)


def test_a_proxy_in_the_environment_is_not_used(receiver, monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")

    assert post(receiver.url).status == 200
    assert len(receiver.requests) == 1


# --- redirects ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_an_inside_address_is_not_followed(guarded, monkeypatch, status):
    first, inside = Receiver().start(), Receiver(host="127.0.0.2").start()
    try:
        treat_as_public(monkeypatch, "127.0.0.1")
        first.answer(status, body=b"moved", headers={"location": inside.url})

        response = post(first.url)

        assert (response.status, response.redirect, response.location) == (status, True, inside.url)
        assert len(first.requests) == 1
        assert inside.requests == []
        # Called directly, the guard refuses the inside address when connecting.
        direct = post(inside.url)
        assert (direct.status, direct.error, direct.detail) == (
            None,
            REFUSED,
            "127.0.0.2 is a private or reserved address",
        )
        assert inside.requests == []
    finally:
        first.stop()
        inside.stop()


@pytest.mark.parametrize("status", [302, 307])
def test_a_redirect_to_a_public_address_is_not_followed_either(guarded, monkeypatch, status):
    first, public = Receiver().start(), Receiver(host="127.0.0.3").start()
    try:
        treat_as_public(monkeypatch, "127.0.0.1", "127.0.0.3")
        first.answer(status, headers={"location": public.url})

        response = post(first.url)

        assert (response.status, response.location) == (status, public.url)
        assert public.requests == []
        # The target was reachable: only the no-redirect rule kept the body from it.
        assert post(public.url).status == 200
        assert len(public.requests) == 1
    finally:
        first.stop()
        public.stop()


# --- the address connected to ---------------------------------------------------------------------


def test_dns_rebinding_is_refused_when_connecting(guarded, monkeypatch, receiver):
    """The name resolves to a public address when the URL is checked, to loopback when called."""
    fake_dns(monkeypatch, {"localhost": ["93.184.215.14"]})
    url = f"http://localhost:{receiver.port}/hooks/gavel"
    url_check(url)  # what a check on saving sees: a public address

    response = post(url)  # libcurl's own lookup: localhost is 127.0.0.1 (and ::1)

    assert (response.status, response.error) == (None, REFUSED)
    assert response.detail in ("127.0.0.1 is a private or reserved address", "::1 is a private or reserved address")
    assert receiver.requests == []
    # The same call with that loopback address taken as public goes through: the guard refused it.
    treat_as_public(monkeypatch, "127.0.0.1", "::1")
    assert post(url).status == 200
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"


def test_a_private_address_passes_when_private_urls_are_allowed(settings, receiver):
    settings.GAVEL_ALLOW_PRIVATE_URLS = True

    assert post(receiver.url).status == 200


@pytest.mark.parametrize(
    "address",
    [
        "2002:c0a8:1::1",  # 6to4 of 192.168.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254 (cloud metadata)
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "::ffff:127.0.0.1",  # IPv4-mapped
    ],
)
def test_an_ipv6_address_with_an_inside_ipv4_in_it_is_refused_when_connecting(guarded, address):
    response = post(f"http://[{address}]:8080/hook", timeout_s=2.0)

    assert (response.status, response.error) == (None, REFUSED)
    assert response.detail.endswith("is a private or reserved address")


@pytest.mark.parametrize(
    "address",
    [
        "2002:c0a8:1::1",
        "2002:7f00:1::",
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "2002:6440:1::",  # 6to4 of 100.64.0.1 (carrier-grade NAT)
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::c0a8:1",
        "64:ff9b:1::5db8:d70e",  # local-use NAT64
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "2001:0:5db8:d70e:0:ffff:a2b7:eaf1",  # Teredo, server and client public: 2001::/32 is not global
        "::ffff:10.0.0.1",
        "::ffff:0:7f00:1",  # IPv4-translated
        "::7f00:1",  # IPv4-compatible (deprecated)
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00::2",
        "ff02::1",
        "2001:db8::1",
        "127.0.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
    ],
)
def test_inside_addresses_are_unsafe(address):
    assert address_unsafe(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "8.8.8.8",
        "2606:4700:4700::1111",
        "::ffff:93.184.215.14",
        "2002:5db8:d70e::1",  # 6to4 of 93.184.215.14: a public IPv4 inside
        "2002:808:808::",  # 6to4 of 8.8.8.8
        "64:ff9b::5db8:d70e",  # NAT64 of 93.184.215.14
    ],
)
def test_public_addresses_are_safe(address):
    assert not address_unsafe(ipaddress.ip_address(address))


# --- TLS ------------------------------------------------------------------------------------------


def in_a_new_thread(call):
    """Run ``call`` in a thread of its own: a fresh multi handle and fresh easy handles."""
    result: list[OutboundResponse] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    thread.join(10)
    return result[0]


def test_a_certificate_the_system_does_not_trust_fails_before_any_request(certificate):
    cert, key = certificate
    server = Receiver().tls(cert=cert, key=key).start()
    try:
        response = in_a_new_thread(lambda: post(server.url))

        assert (response.status, response.error) == (None, FAILED)
        assert server.requests == []
    finally:
        server.stop()


def test_a_certificate_the_system_trusts_verifies(certificate, monkeypatch):
    """The CA bundle is the system's as OpenSSL finds it, ``SSL_CERT_FILE`` honoured (libcurl on
    its own would ignore that variable)."""
    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    server = Receiver().tls(cert=cert, key=key).start()
    try:
        response = in_a_new_thread(lambda: post(server.url))

        assert response.status == 200
        assert len(server.requests) == 1
    finally:
        server.stop()


# --- url_check: the guard on a URL being saved ----------------------------------------------------

INSIDE_URLS = [
    "http://127.0.0.1/hook",
    "http://10.1.2.3/hook",
    "https://169.254.169.254/latest/meta-data/",
    "http://[::1]:8080/hook",
    "http://localhost:8000/hook",
    "http://192.168.1.10/",
    "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/",
    "http://[2002:c0a8:1::1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
]


@pytest.mark.parametrize("url", INSIDE_URLS)
def test_inside_addresses_are_refused(guarded, url):
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


def test_a_public_host_passes_and_one_inside_address_among_its_answers_fails(guarded, monkeypatch):
    fake_dns(monkeypatch, {"hooks.example.com": ["93.184.215.14"], "mixed.example.com": ["93.184.215.14", "10.0.0.7"]})

    url_check("https://hooks.example.com/gavel")
    url_check("https://93.184.215.14/gavel")
    with pytest.raises(UnsafeUrl, match="10.0.0.7"):
        url_check("https://mixed.example.com/gavel")
    with pytest.raises(UnsafeUrl, match="Cannot resolve"):
        url_check("https://nowhere.example.com/gavel")
