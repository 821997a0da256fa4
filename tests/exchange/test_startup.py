"""A web process is ready before its first request, and a ping's deadline counts from its arrival."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.db import connection
from django.test import RequestFactory

from accounts.tenancy import market_scope
from exchange.arrival import ARRIVED, ArrivalStamp, request_arrival
from exchange.models import Ping
from tests.exchange.builder import SELLER_KEY, buyer, client, load, ping_body
from tests.exchange.served import Gunicorn, SilentBuyer
from tests.exchange.test_settings import settings_run

PING_TIMEOUT_MS = 500


def silent_market(silent: SilentBuyer) -> None:
    """A buyer that is asked and never answers (longer allowed than the ping's deadline), and one
    with a fixed price that wins."""
    load(
        buyer("silent", None, rtb_url=silent.url, max_price="50.00", rtb_timeout_ms=5000),
        buyer("fixed", "10.00"),
        ping_timeout_ms=PING_TIMEOUT_MS,
    )


def waterfall_of(ping_id: str) -> dict[str, str]:
    with market_scope():
        ping = Ping.objects.get(public_id=ping_id)
    return {step["contract"]: step["reason"] for step in ping.waterfall}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="gunicorn needs a database it can reach")
@pytest.mark.parametrize(
    "redis",
    [
        pytest.param(False, id="default-local-cache"),
        pytest.param(True, id="redis", marks=pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")),
    ],
)
def test_the_first_ping_after_gunicorn_starts_answers_within_its_deadline(tmp_path, redis):
    silent = SilentBuyer()
    server = None
    try:
        silent_market(silent)
        server = Gunicorn(tmp_path, workers=2, redis=redis)
        server.wait_listening()
        started = time.monotonic()
        status, answer = server.call("POST", "/api/v1/ping", SELLER_KEY, ping_body(1))
        elapsed_ms = (time.monotonic() - started) * 1000
        assert status == 200, answer
        assert (answer["status"], answer["payout"]) == ("accepted", "8.00")
        assert elapsed_ms < PING_TIMEOUT_MS + 100, server.log.read_text()
        # The silent buyer was asked: the ping waited for it until its deadline.
        assert silent.requests == 1
        assert waterfall_of(answer["ping_id"]) == {"ctr_silent": "rtb_timeout", "ctr_fixed": "won"}
    finally:
        if server is not None:
            server.stop()
        silent.stop()


@pytest.mark.django_db
def test_a_pings_deadline_counts_from_when_the_request_arrived_not_from_its_view():
    silent = SilentBuyer()
    try:
        silent_market(silent)
        client().post("/api/v1/ping", ping_body(0), format="json")  # build the book: not this test's time
        arrived = time.perf_counter() - 0.3  # it waited 300 ms for a thread before its view ran
        response = client().post("/api/v1/ping", ping_body(1), format="json", **{ARRIVED: arrived})
        answered = time.perf_counter()
        assert response.status_code == 200
        # Answered at the deadline counted from the arrival (500 ms), not 500 ms after the view began.
        assert PING_TIMEOUT_MS / 1000 <= answered - arrived < PING_TIMEOUT_MS / 1000 + 0.2
        assert waterfall_of(response.json()["ping_id"]) == {"ctr_silent": "rtb_timeout", "ctr_fixed": "won"}
    finally:
        silent.stop()


def test_the_arrival_stamp_is_taken_before_the_application_runs():
    seen: list[float] = []

    def application(environ, start_response):
        seen.append(environ[ARRIVED])
        return [b""]

    before = time.perf_counter()
    assert list(ArrivalStamp(application)({}, lambda *a: None)) == [b""]
    assert before <= seen[0] <= time.perf_counter()


def test_a_request_that_came_in_unstamped_counts_from_now():
    """The test client's requests, and those of a server that does not load exchange.wsgi."""
    before = time.perf_counter()
    assert before <= request_arrival(RequestFactory().post("/api/v1/ping")) <= time.perf_counter()


def test_the_wsgi_application_stamps_arrivals_and_loads_what_the_first_request_would():
    result = settings_run(
        {"DEBUG": "1"},
        "import sys; import exchange.wsgi; "
        "print(type(exchange.wsgi.application).__name__, "
        "all(m in sys.modules for m in ('exchange.api.views', 'django.contrib.messages.storage.fallback', "
        "'django.contrib.sessions.serializers')))",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ArrivalStamp", "True"]
