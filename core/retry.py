"""How long to wait before trying again: one backoff for everything the exchange sends and resends."""

from __future__ import annotations

import random


def backoff_delay(*, attempt: int, base: float, factor: float, cap: float, jitter: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): ``base × factor^(attempt-1)``,
    capped, spread by ±``jitter`` (a fraction) so that what failed together does not come back
    together."""
    delay = min(base * factor ** (attempt - 1), cap)
    if jitter:
        delay *= random.uniform(1 - jitter, 1 + jitter)  # noqa: S311 — spreading load, not security  # nosec B311
    return max(delay, 0.0)
