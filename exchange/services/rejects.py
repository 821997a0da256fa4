"""The delivery-reject watch: a buyer that turns leads down has still seen them.

A delivery carries the whole lead, so a buyer whose endpoint answers "rejected" has received the
consumer's contact details and pays nothing. The exchange cannot take back what it sent; it
limits how often it sends: each contract's share of rejected deliveries over a rolling window
(``GAVEL_REJECT_RATE_WINDOW_HOURS``) is shown to the operator, and once a contract has made
``GAVEL_REJECT_RATE_MIN_DELIVERIES`` deliveries in the window with the offer's
``reject_rate_hold_percent`` or more of them not accepted (rejected, timed out or failed), it is
held (``hold: operator``, reason ``reject_rate: …``) and its buyer told by ``contract.paused``.
Only the operator lifts that hold. Test leads do not count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q

from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from contracts.services import contract_hold
from exchange.models import DeliveryAttempt, Offer

REJECT_RATE_REASON = "reject_rate"


@dataclass(frozen=True)
class RejectRate:
    deliveries: int
    rejected: int

    @property
    def percent(self) -> float:
        return 100.0 * self.rejected / self.deliveries if self.deliveries else 0.0


def reject_window() -> timedelta:
    return timedelta(hours=int(settings.GAVEL_REJECT_RATE_WINDOW_HOURS))


def reject_rates(*, contract_ids: Iterable[int], now: datetime) -> dict[int, RejectRate]:
    """Each contract's real (not test) deliveries and how many were not accepted, over the
    window up to ``now``; a contract with none is left out. One query."""
    with market_scope():
        rows = (
            DeliveryAttempt.objects.filter(
                contract_id__in=list(contract_ids), created_at__gt=now - reject_window(), sale__test=False
            )
            .values("contract_id")
            .annotate(deliveries=Count("pk"), rejected=Count("pk", filter=~Q(outcome=DeliveryAttempt.Outcome.ACCEPTED)))
        )
        return {row["contract_id"]: RejectRate(row["deliveries"], row["rejected"]) for row in rows}


def reject_watch(*, contract_id: int, offer_id: int, now: datetime) -> bool:
    """After a contract's delivery was turned down: hold it if its reject rate is now past the
    offer's threshold. True when this call held it (a contract already held by the operator is
    left alone)."""
    threshold = Offer.objects.filter(pk=offer_id).values_list("reject_rate_hold_percent", flat=True).first()
    if threshold is None:
        return False
    rate = reject_rates(contract_ids=[contract_id], now=now).get(contract_id)
    minimum = int(settings.GAVEL_REJECT_RATE_MIN_DELIVERIES)
    if rate is None or rate.deliveries < minimum or rate.rejected * 100 < threshold * rate.deliveries:
        return False
    hours = int(settings.GAVEL_REJECT_RATE_WINDOW_HOURS)
    reason = (
        f"{REJECT_RATE_REASON}: {rate.rejected} of {rate.deliveries} deliveries turned down in {hours} h "
        f"(the offer holds at {threshold}%)"
    )
    return contract_hold(contract_id=contract_id, hold=BuyerContract.Hold.OPERATOR, reason=reason)
