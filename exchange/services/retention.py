"""Raw pings age out: the rollups (``reporting``) keep their figures, the ping table stays bounded."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef

from accounts.tenancy import market_scope
from exchange.models import Bid, Ping, Sale
from leads.models import Lead

PRUNE_BATCH = 5000


def pings_prune(*, before: datetime, batch: int = PRUNE_BATCH, max_batches: int | None = None) -> int:
    """Delete the pings created before ``before`` that nothing refers to, with their bids; the
    number of pings deleted.

    Kept, whatever their age: a ping that was posted (its lead refers to it, PROTECT) and a ping
    one of whose bids was sold (the sale refers to the bid, PROTECT) — they are the record of a
    lead and a sale. Deleted in batches of ``batch``, each its own short transaction, oldest
    first, so a large backlog never holds long locks; safe to run while pings arrive.
    """
    deleted = 0
    done = 0
    with market_scope():
        while max_batches is None or done < max_batches:
            ids = list(
                Ping.objects.filter(created_at__lt=before)
                .exclude(Exists(Lead.objects.filter(ping=OuterRef("pk"))))
                .exclude(Exists(Sale.objects.filter(bid__ping=OuterRef("pk"))))
                .order_by("created_at", "pk")
                .values_list("pk", flat=True)[:batch]
            )
            if not ids:
                break
            with transaction.atomic():
                Bid.objects.filter(ping_id__in=ids).delete()
                count, _ = Ping.objects.filter(pk__in=ids).delete()
            deleted += len(ids) if count else 0
            done += 1
    return deleted
