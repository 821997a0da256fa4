"""The load balancer's and the orchestrator's probes: ``/healthz`` (the process answers) and
``/readyz`` (the parts it needs answer: each database, Redis when the cache is Redis, Celery's broker).

Each check opens its own short-lived connection with a short timeout (``GAVEL_READYZ_TIMEOUT_S``),
never the request's pooled ones, so a dead or unreachable part fails the check quickly instead of
hanging the probe; the checks run side by side. The broker's queue length (read here, cheaply: a
Redis LLEN, or a count of the embedded broker's rows) is also what ``/metrics`` reports.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from django.conf import settings
from django.db import connections
from django.db.utils import load_backend
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection
from kombu.exceptions import ChannelError

Check = Callable[[float], None]


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests (touches nothing else)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every part answers; 503 naming those that do not, each with its error."""
    results = readiness()
    down = sorted(name for name, result in results.items() if result != "ok")
    body: dict[str, Any] = {"status": "unavailable" if down else "ok", "checks": results}
    if down:
        body["down"] = down
    return JsonResponse(body, status=503 if down else 200)


def readiness() -> dict[str, str]:
    """Each check's name and ``"ok"`` or why it failed, the checks run at once."""
    timeout = float(settings.GAVEL_READYZ_TIMEOUT_S)
    checks = _checks()
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = {name: pool.submit(_run, check, timeout) for name, check in checks.items()}
        return {name: future.result() for name, future in futures.items()}


def _checks() -> dict[str, Check]:
    checks: dict[str, Check] = {}
    for alias in connections:
        vendor = connections[alias].vendor
        checks[vendor if alias == "default" else f"{vendor}:{alias}"] = _database_check(alias)
    locations = redis_cache_locations()
    if locations:
        checks["redis"] = lambda timeout: _redis_ping(locations, timeout)
    checks["broker"] = _broker_check
    return checks


def _broker_check(timeout: float) -> None:
    broker_queue_length(timeout=timeout)


def _run(check: Check, timeout: float) -> str:
    try:
        check(timeout)
    except Exception as exc:  # a probe reports every failure, whatever its kind
        return f"down: {type(exc).__name__}: {str(exc).strip()[:200]}"
    return "ok"


def _database_check(alias: str) -> Check:
    def check(timeout: float) -> None:
        params = dict(connections[alias].settings_dict)
        options = dict(params.get("OPTIONS") or {})
        if params["ENGINE"].endswith("postgresql"):
            seconds = max(2, int(timeout))  # libpq's smallest useful connect timeout
            options["connect_timeout"] = seconds
            options["options"] = f"{options.get('options', '')} -c statement_timeout={int(timeout * 1000)}".strip()
        params["OPTIONS"] = options
        # Its own connection under its own name, apart from the pooled ones.
        wrapper = load_backend(params["ENGINE"]).DatabaseWrapper(params, f"readyz:{alias}")
        try:
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        finally:
            wrapper.close()

    return check


def redis_cache_locations() -> list[str]:
    """The Redis servers of the default cache (none when the cache is not Redis)."""
    cache = settings.CACHES.get("default", {})
    if "redis" not in cache.get("BACKEND", "").lower():
        return []
    location = cache.get("LOCATION", "")
    return [u.strip() for u in location.split(",")] if isinstance(location, str) else list(location)


def _redis_ping(locations: list[str], timeout: float) -> None:
    for location in locations:
        client = redis.Redis.from_url(location, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()


def broker_queue_length(*, timeout: float) -> int:
    """The number of tasks waiting in Celery's default queue on the broker; raises when the broker
    does not answer. Redis: the LLEN of the queue's lists; the embedded broker: its rows."""
    url = settings.CELERY_BROKER_URL
    transport_options = dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}))
    if url.startswith(("redis", "rediss")):
        transport_options["socket_timeout"] = timeout
    with Connection(url, connect_timeout=timeout, transport_options=transport_options) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        try:
            declared = conn.default_channel.queue_declare(queue=settings.CELERY_TASK_DEFAULT_QUEUE, passive=True)
        except ChannelError:  # no such queue yet (Redis drops an empty list): nothing waiting
            return 0
        return int(declared.message_count)
