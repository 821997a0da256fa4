"""Retention: raw pings age out (the rollups keep their figures, the ping table stays bounded), and
the personal data of old leads is purged (``GAVEL_PII_RETENTION_DAYS``) while their money, counts
and statuses stay."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.tenancy import market_scope
from exchange.models import Bid, DeliveryAttempt, Ping, Sale
from leads.models import CONSENT_PII_FIELDS, Lead
from leads.selectors import leads_pii_expired
from leads.services import leads_pii_purge

PRUNE_BATCH = 5000
PII_PURGE_BATCH = 1000

# The personal data the exchange keeps of a lead, in one place, per model: what a retention purge
# (or a consumer's erasure) must clear. Pings' and sales' hashes drive dedup, which never looks
# back further than a contract's dedup window.
PII_FIELDS: dict[type, tuple[str, ...]] = {
    Ping: ("email_hash", "phone_hash", "consent"),  # consent: its CONSENT_PII_FIELDS keys
    Sale: ("email_hash", "phone_hash"),
    DeliveryAttempt: ("request", "response"),
}


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


def leads_pii_purge_older(*, before: datetime, batch: int = PII_PURGE_BATCH, max_batches: int | None = None) -> int:
    """Purge the personal data of every lead created before ``before``: the leads app's part (lead
    data, consent IP and user agent: :func:`leads.services.leads_pii_purge`) and the exchange's
    copies (:data:`PII_FIELDS`: the sales' and posted pings' hashes, the delivery attempts' request
    and response logs), a batch of ``batch`` leads per transaction, oldest first; the number of
    leads purged. Non-personal data stays: the lead's ping fields, statuses, prices, payouts,
    ledger and counts. Idempotent (a purged lead is marked and skipped)."""
    purged = 0
    done = 0
    with market_scope():
        while max_batches is None or done < max_batches:
            ids = leads_pii_expired(before=before, limit=batch)
            if not ids:
                break
            with transaction.atomic():
                DeliveryAttempt.objects.filter(sale__lead_id__in=ids).update(request={}, response="")
                Sale.objects.filter(lead_id__in=ids).update(email_hash="", phone_hash="")
                for ping in Ping.objects.filter(posted_lead__in=ids).only("pk", "consent"):
                    consent = {k: v for k, v in ping.consent.items() if k not in CONSENT_PII_FIELDS}
                    Ping.objects.filter(pk=ping.pk).update(email_hash="", phone_hash="", consent=consent)
                purged += leads_pii_purge(lead_ids=ids, now=timezone.now())
            done += 1
    return purged
