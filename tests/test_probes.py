"""The operations endpoints: /healthz, /readyz naming what is down (PostgreSQL, Redis, the broker,
each on a real closed port), and /metrics in Prometheus' text format with exact figures, for staff
and the metrics token only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connections
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts.services import user_upsert
from reporting.rollups import rollups_fold
from tests.exchange.builder import buyer, load, ping, sell
from tests.sessions import PASSWORD, login, member

pytestmark = pytest.mark.django_db

CLOSED = "127.0.0.1:1"  # nothing listens on port 1
TOKEN = "metrics-token-0123456789abcdef"
CA_ONLY = {"field": "state", "op": "in", "value": ["CA"]}


def _database() -> str:
    return connections["default"].vendor


def test_healthz_answers_ok_without_touching_anything() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readyz_answers_ok_when_every_part_answers() -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    expected = {_database(), "broker"} | ({"redis"} if settings.REDIS_URL else set())
    assert body == {"status": "ok", "checks": dict.fromkeys(expected, "ok")}


def test_readyz_names_redis_when_the_cache_does_not_answer() -> None:
    cache = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": f"redis://{CLOSED}/0"}}
    with override_settings(CACHES=cache):
        response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["down"] == ["redis"]
    assert body["checks"]["redis"].startswith("down: ConnectionError")
    assert body["checks"][_database()] == "ok"


@pytest.mark.skipif(not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), reason="PostgreSQL")
def test_readyz_names_a_postgresql_database_that_does_not_answer() -> None:
    host, port = CLOSED.split(":")
    connections.settings["replica"] = {**connections["default"].settings_dict, "HOST": host, "PORT": port}
    try:
        response = Client().get("/readyz")
    finally:
        del connections["replica"]
        del connections.settings["replica"]
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["postgresql:replica"]
    assert "OperationalError" in body["checks"]["postgresql:replica"]
    assert body["checks"]["postgresql"] == "ok"


def test_readyz_names_the_broker_when_it_does_not_answer() -> None:
    with override_settings(CELERY_BROKER_URL=f"redis://{CLOSED}/0", CELERY_BROKER_TRANSPORT_OPTIONS={}):
        response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]


def test_readyz_counts_the_embedded_broker_as_the_broker(tmp_path: Any) -> None:
    url = f"sqla+sqlite:///{tmp_path / 'tasks.sqlite3'}"
    with override_settings(CELERY_BROKER_URL=url, CELERY_BROKER_TRANSPORT_OPTIONS={"connect_args": {"timeout": 2}}):
        response = Client().get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["broker"] == "ok"


def test_probes_take_only_get() -> None:
    assert Client().post("/healthz").status_code == 405
    assert Client().post("/readyz").status_code == 405


# --- /metrics ------------------------------------------------------------------------------------


def _staff() -> Client:
    user = user_upsert(email="ops@gavel.test", password=PASSWORD)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return login("ops@gavel.test")


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and labels (the official parser reads it)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return _samples(response.content.decode())


def test_metrics_count_exactly_what_was_traded_before_and_after_the_fold() -> None:
    load(buyer("a", "30.00", filters=CA_ONLY), buyer("b", "20.00", filters=CA_ONLY))
    assert sell(0)["status"] == "sold"
    assert sell(1)["status"] == "sold"
    rollups_fold(now=timezone.now() + timedelta(minutes=1))  # these two are now in the rollups
    assert sell(2)["status"] == "sold"  # this one and the next ping are not yet
    assert ping(3, state="NY")["status"] == "rejected"
    staff = _staff()

    samples = _scrape(staff)

    expected = {
        ("gavel_pings_total", (("outcome", "accepted"),)): 3,
        ("gavel_pings_total", (("outcome", "rejected"),)): 1,
        # Two contracts on each Californian ping; the NY ping's were left out by the offer's index.
        ("gavel_contract_evaluations_total", ()): 6,
        ("gavel_bids_total", ()): 6,  # both bid on the three Californian pings
        ("gavel_auction_wins_total", ()): 3,
        ("gavel_rtb_failures_total", (("kind", "error"),)): 0,
        ("gavel_rtb_failures_total", (("kind", "timeout"),)): 0,
        ("gavel_sales", (("status", "sold"),)): 3,
        ("gavel_sales", (("status", "reserved"),)): 0,
        ("gavel_sales", (("status", "released"),)): 0,
        ("gavel_sales", (("status", "returned"),)): 0,
        ("gavel_ping_latency_recent_seconds_bucket", (("le", "+Inf"),)): 4,
        ("gavel_ping_latency_recent_seconds_gcount", ()): 4,
        ("gavel_broker_up", ()): 1,
    }
    assert {key: samples[key] for key in expected} == expected
    buckets = [v for (name, _labels), v in samples.items() if name == "gavel_ping_latency_recent_seconds_bucket"]
    assert buckets == sorted(buckets) and len(buckets) == 13  # cumulative, twelve bounds and +Inf
    assert samples[("gavel_webhook_backlog", ())] >= 0
    assert samples[("gavel_postback_backlog", ())] == 0
    # The answering process's own figures (Linux's /proc): this test process is well over 10 MB.
    assert samples[("process_resident_memory_bytes", ())] > 10 * 2**20
    assert samples[("process_cpu_seconds_total", ())] > 0
    if settings.REDIS_URL:
        waiting = redis.Redis.from_url(settings.REDIS_URL).llen(settings.CELERY_TASK_DEFAULT_QUEUE)
        assert samples[("gavel_celery_queue_length", (("queue", settings.CELERY_TASK_DEFAULT_QUEUE),))] == waiting

    # Folding the rest moves figures from the tail to the rollups: the counters stay as they were.
    rollups_fold(now=timezone.now() + timedelta(minutes=1))
    again = _scrape(staff)
    assert {key: again[key] for key in expected} == expected


def test_metrics_refuse_anonymous_visitors_members_and_wrong_tokens() -> None:
    load(buyer("a", "30.00"))
    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert member("owner@a.test", "a", "owner").get("/metrics").status_code == 403
    # No token configured: a bearer gets nothing, whatever it sends.
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 401
    with override_settings(GAVEL_METRICS_TOKEN=TOKEN):
        assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
        allowed = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert allowed.status_code == 200
    assert ("gavel_pings_total", (("outcome", "accepted"),)) in _samples(allowed.content.decode())


def test_metrics_report_a_broker_that_does_not_answer_as_down() -> None:
    with override_settings(CELERY_BROKER_URL=f"redis://{CLOSED}/0", CELERY_BROKER_TRANSPORT_OPTIONS={}):
        samples = _scrape(_staff())
    assert samples[("gavel_broker_up", ())] == 0
    assert not any(name == "gavel_celery_queue_length" for name, _ in samples)
