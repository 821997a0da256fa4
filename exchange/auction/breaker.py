"""The RTB circuit breaker: a buyer endpoint that fails N times in a row is paused and told."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache

from exchange.auction.book import CompiledContract
from exchange.auction.rtb import RtbAnswer

logger = logging.getLogger(__name__)


def _key(contract_id: int) -> str:
    return f"gavel:rtb-failures:{contract_id}"


def breaker_record(answers: list[RtbAnswer], contracts: dict[int, CompiledContract]) -> None:
    """Count consecutive failures per contract (in the shared cache, across processes); a bid or a
    pass resets the count; the N-th failure in a row pauses the contract."""
    threshold = int(getattr(settings, "GAVEL_RTB_BREAKER_FAILURES", 5))
    healthy = [_key(a.contract_id) for a in answers if not a.failed]
    if healthy:
        cache.delete_many(healthy)
    for answer in answers:
        if not answer.failed:
            continue
        failures = _count_failure(_key(answer.contract_id))
        if failures >= threshold:
            from contracts.services import contract_pause

            contract = contracts[answer.contract_id]
            reason = f"Circuit breaker: {failures} RTB failures in a row (last: {answer.reason})"
            if contract_pause(contract_id=contract.id, reason=reason):
                logger.warning("paused contract %s: %s", contract.public_id, reason)
            cache.delete(_key(answer.contract_id))


def _count_failure(key: str) -> int:
    """Add one failure; never raises, though another ping may reset or create the key meanwhile."""
    for _ in range(3):
        try:
            return int(cache.incr(key))
        except ValueError:  # no such key (yet, or any more: a success just reset it)
            if cache.add(key, 1, timeout=86400):
                return 1
    return 1
