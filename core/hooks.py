"""What a lower app tells the exchange above it without importing it (docs/decisions.md 42).

The contract book compiles organizations, contracts and campaigns, and every side's events go out
through the exchange's webhook outbox; the apps that own those rows sit below the exchange and may
not import it. They call :func:`market_changed` and :func:`event_emit` here instead, and the exchange
registers what they do when it is ready (``exchange.apps.ExchangeConfig.ready``). An app above
may also *subscribe* to an event type (:func:`event_subscribe`): ``reporting`` hears ``lead.sold``
to fire the seller's postback, without the exchange knowing reporting exists. The one question
a lower app asks the exchange: :func:`holds_expected`, what each buyer's held funds should be (the
prices of its sales still being delivered), for the ledger's reconciliation. And one order a lower app
gives every app above it: :func:`consumer_erase`, a privacy deletion (``leads.privacy``) — each
receiver blanks the consumer's PII in its own tables (the exchange: pings, delivery logs, stored
idempotent answers, webhook logs) and tells the buyers (``lead.erased``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_market_changed: list[Callable[[], None]] = []
_event_emit: list[Callable[..., Any]] = []
_holds_expected: list[Callable[[], Any]] = []
_event_subscribers: dict[str, list[Callable[..., Any]]] = {}
_consumer_erase: list[Callable[..., dict[str, int]]] = []


def market_changed_connect(receiver: Callable[[], None]) -> None:
    if receiver not in _market_changed:
        _market_changed.append(receiver)


def event_emit_connect(receiver: Callable[..., Any]) -> None:
    if receiver not in _event_emit:
        _event_emit.append(receiver)


def event_subscribe(type: str, receiver: Callable[..., Any]) -> None:
    """Call ``receiver(organization_id=, type=, data=)`` for every event of ``type``, after the outbox
    recorded it, in the emitter's transaction: a receiver writes its own rows there (an outbox of its
    own) and queues any network call with ``transaction.on_commit``, never sending inline."""
    receivers = _event_subscribers.setdefault(type, [])
    if receiver not in receivers:
        receivers.append(receiver)


def market_changed() -> None:
    """Something the contract book compiles was written (call inside the writer's transaction)."""
    for receiver in _market_changed:
        receiver()


def event_emit(*, organization_id: int, type: str, data: dict[str, Any]) -> None:
    """An event for the organization's webhook endpoints, sent once the caller's transaction commits."""
    if not _event_emit:
        raise RuntimeError("No event outbox is connected (the exchange app is not ready).")
    for receiver in _event_emit:
        receiver(organization_id=organization_id, type=type, data=data)
    for subscriber in _event_subscribers.get(type, ()):
        subscriber(organization_id=organization_id, type=type, data=data)


def holds_expected_connect(provider: Callable[[], Any]) -> None:
    _holds_expected[:] = [provider]


def holds_expected() -> Any:
    """A subquery of the sum each buyer (``OuterRef("organization")``) should have held."""
    if not _holds_expected:
        raise RuntimeError("No hold provider is connected (the exchange app is not ready).")
    return _holds_expected[0]()


def consumer_erase_connect(receiver: Callable[..., dict[str, int]]) -> None:
    """Register ``receiver(lead_ids=, email_hashes=, phone_hashes=, pattern=, probes=)`` for privacy deletions."""
    if receiver not in _consumer_erase:
        _consumer_erase.append(receiver)


def consumer_erase(
    *, lead_ids: list[int], email_hashes: list[str], phone_hashes: list[str], pattern: Any, probes: list[str]
) -> dict[str, int]:
    """Erase one consumer everywhere above the leads app, in the caller's transaction.

    ``lead_ids`` are the consumer's leads (their ``Lead`` rows are erased by the caller); the hashes
    find rows not tied to a lead (pings never posted); ``pattern`` (:func:`core.erasure.consumer_pattern`)
    finds the email and phone in free text, and ``probes`` (:func:`core.erasure.consumer_probes`)
    narrow a database scan of a large log to the rows that may hold them. Every receiver blanks its
    own tables and returns counts of what it erased, ``{"delivery_attempts": 2, …}``; the counts of
    all receivers are added up.
    """
    if not _consumer_erase:
        raise RuntimeError("No consumer erase receiver is connected (the exchange app is not ready).")
    counts: dict[str, int] = {}
    for receiver in _consumer_erase:
        for name, count in receiver(
            lead_ids=lead_ids, email_hashes=email_hashes, phone_hashes=phone_hashes, pattern=pattern, probes=probes
        ).items():
            counts[name] = counts.get(name, 0) + count
    return counts
