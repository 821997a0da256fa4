"""Writes for leads: store a lead with its PII encrypted and its consent, keep the opt-out list."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.ids import public_id_new
from core.pii import PiiInvalid
from core.schema import FieldSpec
from core.sql import model_insert, sql_rows
from leads.crypto import pii_encrypt
from leads.models import CONSENT_PII_FIELDS, ConsentRecord, Lead, Suppression, SuppressionUpload
from leads.sql import lead_outcome
from leads.suppressions import consumer_guess, consumer_of


def json_value(value: object) -> Any:
    """A validated field value in its JSON form (dates ISO, decimals as strings)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def lead_split(values: Mapping[str, object], fields: Mapping[str, FieldSpec]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(non-PII fields, PII fields) of a validated lead, in JSON form."""
    plain = {k: json_value(v) for k, v in values.items() if not fields[k].pii}
    pii = {k: json_value(v) for k, v in values.items() if fields[k].pii}
    return plain, pii


def lead_store(
    *,
    seller_id: int,
    campaign_id: int,
    offer_id: int,
    ping_id: int | None,
    values: Mapping[str, object],
    fields: Mapping[str, FieldSpec],
    consent: Mapping[str, Any],
    tracking: Mapping[str, Any],
    email_hash: str,
    phone_hash: str,
    quality_score: int,
    test: bool,
    keep_pii: bool = True,
    quality_signals: Mapping[str, int] | None = None,
) -> Lead:
    """Store a lead and its consent record (one transaction: the caller's, when it has one, with no
    savepoint of its own). PII is encrypted before it is written; ``keep_pii=False`` (a suppressed
    consumer) keeps none of it."""
    plain, pii = lead_split(values, fields)
    with transaction.atomic(savepoint=False):
        lead = Lead(
            organization_id=seller_id,
            campaign_id=campaign_id,
            offer_id=offer_id,
            ping_id=ping_id,
            data=plain,
            pii_encrypted=pii_encrypt(pii if keep_pii else {}),
            email_hash=email_hash,
            phone_hash=phone_hash,
            tracking=dict(tracking),
            quality_score=quality_score,
            quality_signals=dict(quality_signals or {}),
            test=test,
        )
        model_insert(lead)
        consent_record = ConsentRecord(
            lead=lead,
            organization_id=seller_id,
            text=consent.get("text", ""),
            captured_at=consent["captured_at"],
            ip=consent.get("ip") or None,
            user_agent=consent.get("user_agent", ""),
            page_url=consent.get("page_url", ""),
            trusted_form_cert_url=consent.get("trusted_form_cert_url", ""),
            jornaya_leadid=consent.get("jornaya_leadid", ""),
            raw={k: json_value(v) for k, v in consent.items()},
        )
        model_insert(consent_record)
    return lead


def lead_outcome_set(*, lead: Lead, status: str, reason: str = "", payout: Decimal | None = None) -> None:
    """Record where a lead stands (sold, unsold, pending, rejected), its reason and, when given, what
    its seller earns; ``lead`` is updated to match. Call inside the caller's transaction."""
    now = timezone.now()
    sql_rows(*lead_outcome(lead.pk, status=status, reason=reason, payout=payout, now=now))
    lead.status, lead.reason, lead.updated_at = status, reason, now
    if payout is not None:
        lead.payout = payout


def lead_reauction_claim(*, lead: Lead, cycle: int) -> bool:
    """Claim re-auction ``cycle`` of a pending lead, once: a compare-and-set on its last cycle, so a
    task delivered twice runs the cycle once. False when the lead is no longer pending or the
    cycle was claimed already."""
    claimed = Lead.objects.filter(pk=lead.pk, status=Lead.Status.PENDING, reauction_cycle__lt=cycle).update(
        reauction_cycle=cycle, updated_at=timezone.now()
    )
    if claimed:
        lead.reauction_cycle = cycle
    return bool(claimed)


def suppression_add(
    *,
    consumer_hash: str,
    reason: str = "",
    kind: str = "",
    scope: str = Suppression.Scope.EXCHANGE,
    organization_id: int | None = None,
    source: str = Suppression.Source.OPERATOR,
) -> Suppression:
    """Suppress a consumer (idempotent: the same consumer, scope and filer again is the existing
    row, unchanged)."""
    return suppression_file(
        consumer_hash=consumer_hash,
        reason=reason,
        kind=kind,
        scope=scope,
        organization_id=organization_id,
        source=source,
    )[0]


def suppression_file(
    *,
    consumer_hash: str,
    reason: str = "",
    kind: str = "",
    scope: str = Suppression.Scope.EXCHANGE,
    organization_id: int | None = None,
    source: str = Suppression.Source.OPERATOR,
) -> tuple[Suppression, bool]:
    """:func:`suppression_add`, and whether the row is new. An organization-scope suppression
    needs its organization."""
    if scope == Suppression.Scope.ORGANIZATION and organization_id is None:
        raise ValueError("An organization's own suppression needs the organization.")
    filer: dict[str, Any] = (
        {"organization__isnull": True} if organization_id is None else {"organization_id": organization_id}
    )
    return Suppression.objects.get_or_create(
        consumer_hash=consumer_hash,
        scope=scope,
        **filer,
        defaults={"reason": reason[:200], "kind": kind, "source": source, "organization_id": organization_id},
    )


def suppressions_add_many(
    *,
    organization_id: int,
    scope: str,
    consumers: Sequence[tuple[str, str]],
    reason: str,
    source: str = Suppression.Source.UPLOAD,
) -> int:
    """File a batch of ``(kind, consumer hash)`` for one organization; the number added (those it
    had filed already in this scope, or that repeat within the batch, are not). One transaction."""
    wanted: dict[str, str] = {}
    for kind, consumer_hash in consumers:
        wanted.setdefault(consumer_hash, kind)
    with transaction.atomic():
        existing = set(
            Suppression.objects.filter(
                organization_id=organization_id, scope=scope, consumer_hash__in=list(wanted)
            ).values_list("consumer_hash", flat=True)
        )
        now = timezone.now()
        rows = [
            Suppression(
                consumer_hash=consumer_hash,
                kind=kind,
                scope=scope,
                organization_id=organization_id,
                source=source,
                reason=reason[:200],
                created_at=now,
            )
            for consumer_hash, kind in wanted.items()
            if consumer_hash not in existing
        ]
        for row in rows:
            row.public_id = public_id_new("sup_")
        # A concurrent filing of the same consumer loses quietly (the constraint keeps one).
        Suppression.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def suppression_remove(*, organization_id: int, public_id: str) -> bool:
    """Remove one of an organization's own (organization-scope) suppressions; False if there is
    no such row. An exchange-wide opt-out is the consumer's and is never removed here."""
    deleted, _ = Suppression.objects.filter(
        organization_id=organization_id, scope=Suppression.Scope.ORGANIZATION, public_id=public_id
    ).delete()
    return bool(deleted)


def leads_pii_purge(*, lead_ids: Sequence[int], now: dt.datetime | None = None) -> int:
    """Clear the personal data of these leads (:data:`leads.models.LEAD_PII_FIELDS`) and of their
    consent records (:data:`leads.models.CONSENT_PII_FIELDS`, in ``raw`` too) and mark them purged;
    the number of leads purged now. Idempotent: a purged lead is skipped. Call inside the caller's
    transaction (the exchange's purge clears its own copies in the same one)."""
    when = now or timezone.now()
    ids = list(Lead.objects.filter(pk__in=list(lead_ids), pii_purged_at__isnull=True).values_list("pk", flat=True))
    if not ids:
        return 0
    for consent in ConsentRecord.objects.filter(lead_id__in=ids).only("pk", "raw"):
        # ConsentRecord refuses save(): the purge is the one change it takes, as an UPDATE.
        raw = {k: v for k, v in consent.raw.items() if k not in CONSENT_PII_FIELDS}
        ConsentRecord.objects.filter(pk=consent.pk).update(ip=None, user_agent="", raw=raw)
    Lead.objects.filter(pk__in=ids).update(
        pii_encrypted=pii_encrypt({}), email_hash="", phone_hash="", pii_purged_at=when, updated_at=when
    )
    return len(ids)


UPLOAD_BATCH = 1000
HEADER_NAMES = ("email", "phone", "email_sha256", "phone_sha256")


def _upload_rows(content: str) -> Iterator[tuple[int, str, str]]:
    """``(row number, column, value)`` of each consumer in an uploaded CSV: with a header row that
    names ``email``, ``phone``, ``email_sha256`` or ``phone_sha256``, the first such non-empty cell
    of each row; without one, each row's first cell (``column`` ``""``: guessed). Blank rows are
    skipped; row numbers are the file's lines, as a spreadsheet shows them."""
    reader = csv.reader(io.StringIO(content))
    columns: list[tuple[int, str]] | None = None
    for row in reader:
        cells = [cell.strip() for cell in row]
        if columns is None and reader.line_num == 1:
            named = [(i, c.lower()) for i, c in enumerate(cells) if c.lower() in HEADER_NAMES]
            if named:
                columns = named
                continue
            columns = []
        if not any(cells):
            continue
        if columns:
            picked = next(((name, cells[i]) for i, name in columns if i < len(cells) and cells[i]), None)
            yield (reader.line_num, *picked) if picked else (reader.line_num, "", "")
        else:
            yield reader.line_num, "", cells[0]


def suppression_upload_rows(content: str) -> int:
    """How many consumers an uploaded CSV names (its progress bar's total)."""
    return sum(1 for _ in _upload_rows(content))


def suppression_upload_process(*, upload_id: int, batch: int = UPLOAD_BATCH) -> str:
    """Read an upload's CSV and file each consumer (scope, reason and organization of the upload),
    ``batch`` rows per transaction, recording progress after each; then forget the file. A row
    that names no usable email, phone or hash is an error (row, value, why); a consumer already on
    the list, or twice in the file, is a duplicate. Idempotent: a finished upload is skipped, an
    interrupted one starts over (filing again only finds duplicates)."""
    upload = SuppressionUpload.objects.filter(pk=upload_id).first()
    if upload is None or upload.status == SuppressionUpload.Status.DONE:
        return "skipped"
    upload.status, upload.done, upload.added, upload.duplicates = SuppressionUpload.Status.RUNNING, 0, 0, 0
    upload.errors, upload.error_count = [], 0
    upload.save(update_fields=["status", "done", "added", "duplicates", "errors", "error_count"])
    seen: set[str] = set()
    rows = list(_upload_rows(upload.content))
    for start in range(0, len(rows), batch):
        consumers: list[tuple[str, str]] = []
        for line, column, value in rows[start : start + batch]:
            try:
                if not value:
                    raise PiiInvalid("No email or phone on this row.")
                consumer = consumer_of(column, value) if column else consumer_guess(value)
            except PiiInvalid as exc:
                upload.errors.append([line, value[:200], str(exc)])
                continue
            if consumer.hash in seen:
                upload.duplicates += 1
                continue
            seen.add(consumer.hash)
            consumers.append((consumer.kind, consumer.hash))
        added = suppressions_add_many(
            organization_id=upload.organization_id, scope=upload.scope, consumers=consumers, reason=upload.reason
        )
        upload.added += added
        upload.duplicates += len(consumers) - added
        upload.done = min(start + batch, len(rows))
        upload.error_count = len(upload.errors)
        upload.save(update_fields=["done", "added", "duplicates", "errors", "error_count"])
    upload.status, upload.content, upload.finished_at = SuppressionUpload.Status.DONE, "", timezone.now()
    upload.total = len(rows)
    upload.save(update_fields=["status", "content", "finished_at", "total"])
    return upload.status
