"""``GET /metrics``: the exchange's figures in Prometheus' text format, for staff sessions and for
``Authorization: Bearer <GAVEL_METRICS_TOKEN>``.

Computed from the database on each scrape, not counted in the web processes: gunicorn runs several
processes (and several nodes), whose in-memory counters would each hold a part. So the figures are
exact and the same whichever process answers (decision "Metrics from the database"):

* counters of pings, contract evaluations, bids, wins and RTB failures: the hourly rollups' totals
  up to the fold's cursor plus the pings stored since (the same facts the fold will add), so they
  never go back when pings age out and never lag the fold;
* sales by status, and the webhook and postback backlogs: counts of their rows now;
* the ping latency as a histogram over the latest pings, as the operator's page reads it;
* the Celery queue's length on the broker (``exchange.probes``);
* the answering process's resident memory, CPU time and open files (``process_*``).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from accounts.tenancy import market_scope
from exchange.probes import broker_queue_length
from exchange.selectors import (
    ping_facts_buyer,
    ping_facts_seller,
    ping_latency_buckets,
    sales_by_status,
    webhook_backlog,
)
from reporting.models import Postback
from reporting.sql import rollup_ping_totals

LATENCY_BOUNDS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 2000.0, 5000.0)
LATENCY_WINDOW = 10_000
LAST_ID = 2**63 - 1


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refused = _refused(request)
    if refused is not None:
        return refused
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExchangeCollector())
    # The answering process's own: resident memory, CPU seconds, open files (Linux's /proc). Each
    # scrape reaches one worker; the soak (tests/bench/soak.py) watches every one of them.
    ProcessCollector(registry=registry)
    # Text format 0.0.4, which every Prometheus reads (generate_latest writes it; names are plain ASCII).
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def _refused(request: HttpRequest) -> HttpResponse | None:
    """None when the caller may read the metrics: staff, or the bearer of the metrics token."""
    token = settings.GAVEL_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, given = header.partition(" ")
        if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        return _text("Invalid metrics token.\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'})
    user = request.user
    if user.is_authenticated and user.is_active and user.is_staff:
        return None
    if user.is_authenticated:
        return _text("Staff only.\n", 403)
    return _text("Log in as staff or send the metrics token.\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'})


def _text(body: str, status: int, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8", headers=headers)


def ping_totals() -> dict[str, int]:
    """All-time ping figures: the rollups' up to the fold's cursor, plus the pings after it."""
    last_id, totals = rollup_ping_totals()
    for row in ping_facts_seller(after_id=last_id, upto_id=LAST_ID):
        totals["pings"] += int(row[-2])
        totals["accepted"] += int(row[-1])
    for row in ping_facts_buyer(after_id=last_id, upto_id=LAST_ID):
        for column, value in zip(("evaluated", "bids", "wins", "rtb_timeouts", "rtb_errors"), row[-5:], strict=True):
            totals[column] += int(value)
    return totals


class ExchangeCollector:
    """Reads every figure once per scrape (prometheus_client's custom collector protocol)."""

    def collect(self) -> Iterator[Metric]:
        totals = ping_totals()
        pings = CounterMetricFamily(
            "gavel_pings", "Sellers' pings answered (re-auctions left out), by outcome.", labels=["outcome"]
        )
        pings.add_metric(["accepted"], totals["accepted"])
        pings.add_metric(["rejected"], totals["pings"] - totals["accepted"])
        yield pings
        yield _counter("gavel_contract_evaluations", "Contracts evaluated in auctions.", totals["evaluated"])
        yield _counter("gavel_bids", "Bids made in auctions (a contract that ranked).", totals["bids"])
        yield _counter("gavel_auction_wins", "Auction steps won.", totals["wins"])
        rtb = CounterMetricFamily("gavel_rtb_failures", "RTB bid requests that failed, by kind.", labels=["kind"])
        rtb.add_metric(["timeout"], totals["rtb_timeouts"])
        rtb.add_metric(["error"], totals["rtb_errors"])
        yield rtb

        sales = GaugeMetricFamily("gavel_sales", "Sales by status (test sales included).", labels=["status"])
        for status, count in sales_by_status().items():
            sales.add_metric([status], count)
        yield sales

        cumulative, count, total_ms = ping_latency_buckets(bounds_ms=LATENCY_BOUNDS_MS, window=LATENCY_WINDOW)
        buckets: list[tuple[str, Any]] = [
            (_seconds(bound), n) for bound, n in zip(LATENCY_BOUNDS_MS, cumulative, strict=True)
        ]
        buckets.append(("+Inf", count))
        yield GaugeHistogramMetricFamily(
            "gavel_ping_latency_recent_seconds",
            f"Answer times of the latest {LATENCY_WINDOW} pings (re-auctions left out).",
            buckets=buckets,
            gsum_value=total_ms / 1000,
        )

        yield _gauge("gavel_webhook_backlog", "Webhook deliveries pending or being sent.", webhook_backlog())
        with market_scope():
            backlog = Postback.objects.filter(status__in=[Postback.Status.PENDING, Postback.Status.SENDING]).count()
        yield _gauge("gavel_postback_backlog", "Postbacks pending or being sent.", backlog)

        try:
            queued = broker_queue_length(timeout=float(settings.GAVEL_READYZ_TIMEOUT_S))
        except Exception:  # the broker is down: say so, and report no length
            yield _gauge("gavel_broker_up", "1 when Celery's broker answered this scrape.", 0)
        else:
            yield _gauge("gavel_broker_up", "1 when Celery's broker answered this scrape.", 1)
            queue = GaugeMetricFamily("gavel_celery_queue_length", "Tasks waiting on the broker.", labels=["queue"])
            queue.add_metric([settings.CELERY_TASK_DEFAULT_QUEUE], queued)
            yield queue


def _counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _seconds(bound_ms: float) -> str:
    return repr(bound_ms / 1000)
