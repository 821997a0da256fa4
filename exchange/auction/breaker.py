"""The RTB circuit breaker: a buyer endpoint that fails N times in a row is held and its buyer
told, and asked again after a cool-down.

Closed → open → half-open, with no scheduler: a tripped contract gets the hold ``breaker`` with a
retry time (``BuyerContract.breaker_retry_at``). Once that time has passed, the auction treats it as
eligible for one call at a time (a retry slot in the shared cache, :func:`breaker_retry_take`); a
healthy answer (a bid or a pass) lifts the hold and tells its organization, a failure keeps it for
a doubled cool-down. The hold is apart from the buyer's status: a buyer who pauses and resumes its
contract neither lifts the hold nor is overruled by it; an operator who lifts or replaces the hold
takes the contract out of the breaker's hands.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache

from contracts.services import contract_breaker_resume, contract_breaker_retry, contract_hold
from exchange.auction.book import CompiledContract
from exchange.auction.rtb import RtbAnswer
from exchange.deferred import after_response

logger = logging.getLogger(__name__)

# Longer than any ping: a retry whose ping died before its answer was recorded frees the slot then.
RETRY_SLOT_SECONDS = 30


def _key(contract_id: int) -> str:
    return f"gavel:rtb-failures:{contract_id}"


def _retry_key(contract_id: int) -> str:
    return f"gavel:rtb-probe:{contract_id}"


def breaker_cooldown(trips: int) -> timedelta:
    """How long a contract the breaker paused ``trips`` times in a row waits before it is asked
    again: the base cool-down, doubled on each trip after the first, up to the maximum."""
    base = int(getattr(settings, "GAVEL_RTB_BREAKER_COOLDOWN_SECONDS", 60))
    most = int(getattr(settings, "GAVEL_RTB_BREAKER_COOLDOWN_MAX_SECONDS", 3600))
    return timedelta(seconds=min(base * 2 ** min(max(trips, 1) - 1, 32), most))


def breaker_retry_take(contract_id: int) -> bool:
    """Take the one retry slot of a contract that is due a retry, for every process at once
    (an atomic add in the shared cache); False while another ping's retry is in flight."""
    return bool(cache.add(_retry_key(contract_id), 1, timeout=RETRY_SLOT_SECONDS))


def breaker_record(answers: list[RtbAnswer], contracts: dict[int, CompiledContract], *, now: datetime) -> None:
    """Count consecutive failures per contract (in the shared cache, across processes); a bid or a
    pass resets the count; the N-th failure in a row pauses the contract until ``now`` plus the
    cool-down. The answer of a retry (a contract the breaker paused) resumes it or pauses it again.
    A timeout the exchange cut short (it called too late to give the buyer its whole
    ``rtb_timeout_ms``) is neither: an overloaded exchange must not pause healthy buyers.

    The counts the healthy answers reset are deleted once the ping's answer has gone out (one
    cache call, off the answer's path).
    """
    threshold = int(getattr(settings, "GAVEL_RTB_BREAKER_FAILURES", 5))
    for answer in answers:
        contract = contracts[answer.contract_id]
        if not contract.active:
            _retry_settle(contract, answer, now)
            continue
        if not answer.failed:
            continue
        failures = _count_failure(_key(answer.contract_id))
        if failures >= threshold:
            reason = f"Circuit breaker: {failures} RTB failures in a row (last: {answer.reason})"
            if contract_hold(
                contract_id=contract.id, hold="breaker", reason=reason, retry_at=now + breaker_cooldown(1)
            ):
                logger.warning("held contract %s: %s", contract.public_id, reason)
            cache.delete(_key(answer.contract_id))
    healthy = [_key(a.contract_id) for a in answers if a.healthy]
    if healthy:
        after_response(functools.partial(_counts_reset, healthy))


def _counts_reset(keys: list[str]) -> None:
    cache.delete_many(keys)


def _retry_settle(contract: CompiledContract, answer: RtbAnswer, now: datetime) -> None:
    if not answer.healthy and not answer.failed:
        pass  # a timeout the exchange cut short: no verdict, the next ping retries
    elif answer.failed:
        trips = contract.breaker_trips + 1
        cooldown = breaker_cooldown(trips)
        reason = f"Circuit breaker: {trips} trips in a row (last: {answer.reason})"
        if contract_breaker_retry(
            contract_id=contract.id, seen_trips=contract.breaker_trips, retry_at=now + cooldown, reason=reason
        ):
            logger.warning("kept contract %s paused for %s: %s", contract.public_id, cooldown, reason)
    else:
        reason = f"Circuit breaker: the RTB endpoint answered again ({answer.reason or 'a bid'})"
        if contract_breaker_resume(contract_id=contract.id, reason=reason):
            logger.warning("resumed contract %s: %s", contract.public_id, reason)
    # The outcome is written (and the book told), so the slot can go: the next retry is due only
    # at the new retry time, or never (resumed).
    cache.delete(_retry_key(contract.id))


def _count_failure(key: str) -> int:
    """Add one failure; never raises, though another ping may reset or create the key meanwhile."""
    count = 1
    for _ in range(3):
        try:
            count = int(cache.incr(key))
            break
        except ValueError:  # no such key (yet, or any more: a success just reset it)
            if cache.add(key, 1, timeout=86400):
                break
    return count
