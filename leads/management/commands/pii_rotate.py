"""``manage.py pii_rotate``: re-encrypt every lead's PII under the newest key of GAVEL_PII_KEYS.

Run it after putting a new key first in ``GAVEL_PII_KEYS``; once it reports no failures, the
old keys can be dropped. Safe to re-run and to run while the exchange takes leads.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.tenancy import market_scope
from leads.crypto import PiiKeyError, pii_rotate
from leads.models import Lead

BATCH_SIZE = 500
_FAILED_IDS_SHOWN = 20


class Command(BaseCommand):
    help = "Re-encrypt every lead's PII under the newest key of GAVEL_PII_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = changed = 0
        failed: list[int] = []
        last_id = 0
        # Every organization's leads, so the one cross-tenant scope.
        with market_scope():
            while True:
                # Keyset pagination: stable while rows are added, and no OFFSET scans.
                batch = list(
                    Lead.objects.filter(id__gt=last_id).order_by("id").values_list("id", "pii_encrypted")[:BATCH_SIZE]
                )
                if not batch:
                    break
                for lead_id, old in batch:
                    try:
                        new = pii_rotate(old)
                    except PiiKeyError:
                        # Keep going: one unreadable lead must not leave the rest under the old key.
                        failed.append(lead_id)
                        continue
                    # Compare-and-set: a lead rewritten since we read it keeps its newer token.
                    if Lead.objects.filter(pk=lead_id, pii_encrypted=old).update(pii_encrypted=new):
                        rotated += 1
                    else:
                        changed += 1
                last_id = batch[-1][0]
        self.stdout.write(f"Rotated {rotated} leads; {changed} changed meanwhile and were left as they were.")
        if failed:
            shown = ", ".join(str(lead_id) for lead_id in failed[:_FAILED_IDS_SHOWN])
            more = f" and {len(failed) - _FAILED_IDS_SHOWN} more" if len(failed) > _FAILED_IDS_SHOWN else ""
            raise CommandError(
                f"{len(failed)} leads could not be decrypted with any key in GAVEL_PII_KEYS "
                f"(ids {shown}{more}); keep their old key configured until they are fixed."
            )
