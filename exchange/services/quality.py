"""The source signals of the quality score: each campaign's recent return and delivery-reject rates.

Computed here, where the sales and delivery attempts are (reporting's rollups sit above this app),
by a periodic task (``exchange.campaign_rates_refresh``, every 15 minutes), and written onto the
campaign (contracts.services.campaign_rates_set), which the contract book carries: a ping reads its
campaign's rates from memory, never from the database.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from accounts.tenancy import market_scope
from contracts.services import campaign_rates_set
from exchange.models import DeliveryAttempt, Sale

RATES_WINDOW = timedelta(days=30)


def campaign_rates_refresh(*, window: timedelta = RATES_WINDOW) -> int:
    """Work out every campaign's return rate (returned / sold-or-returned sales) and delivery-reject
    rate (rejected / answered delivery attempts) over ``window``, test traffic left out, and record
    them. Two grouped queries over the window (``created_at`` indexes); returns the campaigns changed."""
    since = timezone.now() - window
    with market_scope():
        sales = (
            Sale.objects.filter(created_at__gte=since, test=False, status__in=[Sale.Status.SOLD, Sale.Status.RETURNED])
            .values("campaign_id")
            .annotate(total=Count("id"), returned=Count("id", filter=Q(status=Sale.Status.RETURNED)))
        )
        deliveries = (
            DeliveryAttempt.objects.filter(
                created_at__gte=since,
                sale__test=False,
                outcome__in=[DeliveryAttempt.Outcome.ACCEPTED, DeliveryAttempt.Outcome.REJECTED],
            )
            .values("sale__campaign_id")
            .annotate(total=Count("id"), rejected=Count("id", filter=Q(outcome=DeliveryAttempt.Outcome.REJECTED)))
        )
        rates: dict[int, list[float | int]] = {}
        for row in sales:
            rates.setdefault(row["campaign_id"], [0.0, 0, 0.0, 0])[:2] = [row["returned"] / row["total"], row["total"]]
        for attempt in deliveries:
            rates.setdefault(attempt["sale__campaign_id"], [0.0, 0, 0.0, 0])[2:] = [
                attempt["rejected"] / attempt["total"],
                attempt["total"],
            ]
    return campaign_rates_set(rates={k: (float(v[0]), int(v[1]), float(v[2]), int(v[3])) for k, v in rates.items()})
