"""An open-loop HTTP load generator (asyncio + aiohttp, one process, one event loop).

Request i is due at ``t0 + i / rate`` whatever happened to the earlier ones: the generator never
waits for an answer before sending the next request, so a slow server meets the same offered
load as a fast one (unlike a closed loop of N clients, which slows down with the server and
hides its queueing: "coordinated omission"). Latency is measured from the *scheduled* send time
to the end of the answer, so time a request spent waiting — in the generator, the connection
pool, the kernel's accept queue or gunicorn — is counted.

At most ``max_in_flight`` requests are outstanding; a request due while that many are is not
sent and is counted as dropped (an error). After the last request is due, the generator waits at
most ``request_timeout`` for the stragglers; every request has that total time limit.

Requests due in the first ``warmup`` seconds (connections being opened, each gunicorn worker
building its contract book) are sent but left out of the statistics.

:func:`answers` is not a load: it gets the answers a follow-up scenario needs (the pings a ``post``
posts), a few requests at a time, before the measured run.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.bench.scenarios import Scenario

SAMPLES = 3  # answers kept per scenario, for a look at what the server said


@dataclass(frozen=True)
class LoadSpec:
    rate: float  # requests per second, offered
    seconds: float  # measured duration
    warmup: float = 2.0
    max_in_flight: int = 2000
    connections: int = 256
    request_timeout: float = 10.0


@dataclass
class Outcome:
    scheduled: float  # seconds after t0
    lag: float  # seconds the send started after its scheduled time (generator lateness)
    latency: float | None = None  # completion - scheduled, when an answer came
    status: int | None = None
    error: str | None = None  # transport failure: timeout, dropped, connection error…
    bad: str | None = None  # a 200 whose body the scenario did not expect
    tally: str | None = None  # the scenario's label for a good answer (who won, say)
    key: str | None = None  # the scenario's name for a good answer (Scenario.answer_key)


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def request_count(spec: LoadSpec) -> int:
    return math.ceil(spec.rate * (spec.warmup + spec.seconds))


async def answers(base_url: str, scenario: Scenario, count: int, *, concurrency: int = 8) -> list[tuple[int, bytes]]:
    """The status and body of the answers to ``scenario``'s first ``count`` requests, in order:
    ``concurrency`` requests at a time, each sent when one before it has been answered."""
    headers = {"Content-Type": "application/json", **scenario.headers}
    found: list[tuple[int, bytes]] = [(0, b"")] * count
    queue = iter(range(count))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker() -> None:
            for i in queue:
                async with session.post(base_url + scenario.path, data=scenario.body(i), headers=headers) as response:
                    found[i] = (response.status, await response.read())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return found


async def run(
    base_url: str, scenario: Scenario, spec: LoadSpec, *, bodies: list[bytes] | None = None
) -> dict[str, Any]:
    """Offer ``spec.rate`` requests/s of ``scenario`` to ``base_url``; return the statistics.
    ``bodies``: the requests to send, when the scenario's own ``body`` does not make them."""
    total = request_count(spec)
    if bodies is None:
        bodies = [scenario.body(i) for i in range(total)]  # built beforehand: the send loop stays tight
    headers = {"Content-Type": "application/json", **scenario.headers}
    url = base_url + scenario.path
    outcomes: list[Outcome | None] = [None] * total
    samples: list[dict[str, Any]] = []
    warmup_count = math.ceil(spec.rate * spec.warmup)
    loop = asyncio.get_running_loop()
    in_flight = 0

    # gunicorn closes a connection idle for --keep-alive (5 s) seconds; the client retires its own
    # idle connections sooner, so it never reuses one the server is closing at the same moment.
    connector = aiohttp.TCPConnector(limit=spec.connections, keepalive_timeout=2.0)
    timeout = aiohttp.ClientTimeout(total=spec.request_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:

        async def one(i: int, due: float, t0: float) -> None:
            nonlocal in_flight
            outcome = Outcome(scheduled=due - t0, lag=time.perf_counter() - due)
            outcomes[i] = outcome
            try:
                async with session.post(url, data=bodies[i], headers=headers) as response:
                    payload = await response.read()
                    outcome.latency = time.perf_counter() - due
                    outcome.status = response.status
                outcome.bad = scenario.check(response.status, payload)
                if scenario.tally is not None and response.status == 200 and outcome.bad is None:
                    outcome.tally = scenario.tally(payload)
                if scenario.answer_key is not None and response.status == 200 and outcome.bad is None:
                    outcome.key = scenario.answer_key(payload)
                if i >= warmup_count and len(samples) < SAMPLES:
                    samples.append(
                        {"request": bodies[i].decode(), "status": response.status, "answer": payload[:1000].decode()}
                    )
            except TimeoutError:
                outcome.error = "timeout"
            except aiohttp.ClientError as exc:
                outcome.error = type(exc).__name__
            finally:
                in_flight -= 1

        tasks: set[asyncio.Task[None]] = set()
        t0 = time.perf_counter() + 0.05
        for i in range(total):
            due = t0 + i / spec.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= spec.max_in_flight:
                outcomes[i] = Outcome(scheduled=due - t0, lag=time.perf_counter() - due, error="dropped")
                continue
            in_flight += 1
            task = loop.create_task(one(i, due, t0))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            _, pending = await asyncio.wait(set(tasks), timeout=spec.request_timeout + 1)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        for outcome in outcomes:
            if outcome is not None and outcome.latency is None and outcome.error is None:
                outcome.error = "unfinished"

    measured = [o for o in outcomes[warmup_count:] if o is not None]
    stats = _stats(scenario, spec, measured, samples)
    if scenario.answer_key is not None:
        # Every good answer's name and latency, the warmup's included (flagged): the server stored them all.
        stats["keyed"] = [
            [o.key, _ms(o.latency), i >= warmup_count]
            for i, o in enumerate(outcomes)
            if o is not None and o.key is not None
        ]
    return stats


def _stats(
    scenario: Scenario, spec: LoadSpec, measured: list[Outcome], samples: list[dict[str, Any]]
) -> dict[str, Any]:
    answered = [o for o in measured if o.latency is not None]
    ok = [o for o in answered if o.status == 200 and o.bad is None]
    latencies = sorted(o.latency for o in answered if o.latency is not None)
    lags = sorted(o.lag for o in measured)
    # Achieved throughput: good answers over the time from the first measured request's due time
    # to the last measured answer (longer than the offered window when the server falls behind).
    start = spec.warmup
    end = max((o.scheduled + (o.latency or 0.0) for o in answered), default=start)
    window = max(end - start, spec.seconds)
    return {
        "scenario": scenario.name,
        "path": scenario.path,
        "description": scenario.description,
        "offered_rate": spec.rate,
        "measured_seconds": spec.seconds,
        "warmup_seconds": spec.warmup,
        "requests": len(measured),
        "ok": len(ok),
        "throughput": round(len(ok) / window, 1),
        "latency_ms": {
            "p50": _ms(percentile(latencies, 50)),
            "p90": _ms(percentile(latencies, 90)),
            "p99": _ms(percentile(latencies, 99)),
            "max": _ms(latencies[-1] if latencies else None),
            "mean": _ms(sum(latencies) / len(latencies) if latencies else None),
        },
        "errors": sum(1 for o in measured if o.error is not None),
        "non_200": sum(1 for o in answered if o.status != 200),
        "bad_answers": sum(1 for o in answered if o.status == 200 and o.bad is not None),
        "status_codes": {str(k): v for k, v in sorted(Counter(o.status for o in answered).items())},
        "error_kinds": dict(Counter(o.error for o in measured if o.error is not None)),
        "bad_kinds": dict(Counter(o.bad for o in answered if o.bad is not None)),
        "tallies": dict(Counter(o.tally for o in ok if o.tally is not None)),
        "send_lag_ms": {
            "p50": _ms(percentile(lags, 50)),
            "p99": _ms(percentile(lags, 99)),
            "max": _ms(lags[-1] if lags else None),
        },
        # Past what the box sustains: the queue grows through the run, and the latencies measure
        # its length at the end (so the run's duration), not the service time.
        "saturated": len(ok) < 0.95 * spec.rate * spec.seconds or len(ok) / window < 0.95 * spec.rate,
        "samples": samples,
    }
