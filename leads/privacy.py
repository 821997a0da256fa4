"""Privacy requests: a consumer's deletion or access request, from receipt to answer (DESIGN.md §6.1).

Life: ``received`` → ``confirmed`` → ``completed``, or ``rejected`` (with a note) before completion.

* Filed by an organization through the API: confirmed at once — the organization vouches for the
  consumer (it is the one who collected their details and heard the request), and a deletion must
  not wait on an email the exchange cannot send to a consumer it never met.
* Filed on the public page ``/privacy/``: received, and an email with a one-time link (valid
  :data:`TOKEN_TTL`) goes to the address given; only following it confirms. The address is the
  only thing the link proves, so an access request from the page is matched on the email alone; a
  deletion may add a phone (as the public opt-out already suppresses by phone unverified).
* Filed by an operator in admin: received; the operator confirms it once they verified the person.

Confirming queues :func:`privacy_request_process` (the Celery task ``leads.privacy_request_process``),
which completes it within minutes:

* a **deletion** blanks the consumer's PII wherever the exchange holds it — each lead's encrypted
  PII, the consent record's IP, user agent and page URL query (:func:`consent_erase`, the consent
  record's one permitted change), tracking values that carry the email or phone — and asks every
  app above (``core.hooks.consumer_erase``: pings, delivery logs, idempotent answers, webhook logs)
  to do the same and to tell the buyers (``lead.erased``); then suppresses the email and phone
  hashes exchange-wide. Sales, the ledger and every count stay. The request itself then keeps only
  the hashes (proof of what was erased) and the counts.
* an **access** request stores a JSON export (:func:`privacy_export`), encrypted like lead PII.

Deadlines: confirm within 10 business days of receipt (Monday to Friday in ``settings.TIME_ZONE``;
public holidays are *not* skipped, so the deadline is never later than the law's), answer within
45 calendar days of receipt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from celery import signature
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiKey, Organization, User
from accounts.tenancy import market_scope
from core import hooks
from core.erasure import consumer_pattern, consumer_probes, scrub
from core.errors import Invalid, NotFound
from core.pii import PiiInvalid, consumer_hash, email_normalize, phone_normalize
from leads.crypto import PiiKeyError, pii_decrypt, pii_encrypt
from leads.models import ConsentRecord, Lead, PrivacyRequest, Suppression
from leads.services import suppression_add

logger = logging.getLogger(__name__)

CONFIRM_BUSINESS_DAYS = 10
ANSWER_DAYS = 45
TOKEN_TTL = dt.timedelta(hours=48)
PROCESS_TASK = "leads.privacy_request_process"
SOLD_STATUSES = ("sold", "returned")  # a sale's states in which its buyer received the lead


# --- deadlines ---------------------------------------------------------------------------------


def business_days_after(start: dt.datetime, days: int) -> dt.datetime:
    """``days`` business days (Monday to Friday) after ``start``, at the same local time.

    Received on a Saturday, the first business day counted is Monday. Public holidays count as
    business days (documented: the deadline is then never later than a holiday-aware one)."""
    local = timezone.localtime(start)
    current = local.date()
    remaining = days
    while remaining:
        current += dt.timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    naive = dt.datetime.combine(current, local.time().replace(tzinfo=None))
    return timezone.make_aware(naive, local.tzinfo)  # type: ignore[arg-type]


def deadlines(received_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(confirm by, answer by) for a request received at ``received_at``."""
    return (
        business_days_after(received_at, CONFIRM_BUSINESS_DAYS),
        received_at + dt.timedelta(days=ANSWER_DAYS),
    )


# --- filing ------------------------------------------------------------------------------------


def consumer_identify(*, email: str | None, phone: str | None) -> tuple[str, str]:
    """(normalized email, E.164 phone), either may be empty; Invalid when both are missing or one
    is malformed."""
    errors: dict[str, list[str]] = {}
    email_norm = phone_norm = ""
    if email not in (None, ""):
        try:
            email_norm = email_normalize(email)  # type: ignore[arg-type]
        except PiiInvalid as exc:
            errors["email"] = [str(exc)]
    if phone not in (None, ""):
        try:
            phone_norm = phone_normalize(phone)  # type: ignore[arg-type]
        except PiiInvalid as exc:
            errors["phone"] = [str(exc)]
    if errors:
        raise Invalid("The request is not valid.", fields=errors)
    if not email_norm and not phone_norm:
        raise Invalid("Give the consumer's email or phone.", fields={"email": ["Give an email or a phone."]})
    return email_norm, phone_norm


def privacy_request_create(
    *,
    kind: str,
    email: str | None,
    phone: str | None,
    source: str,
    organization: Organization | None = None,
    api_key: ApiKey | None = None,
    user: User | None = None,
    now: dt.datetime | None = None,
) -> PrivacyRequest:
    """File a request (``received``); an API request (``source="api"``) is confirmed at once."""
    if kind not in PrivacyRequest.Kind.values:
        raise Invalid("The request is not valid.", fields={"kind": ["Must be 'delete' or 'access'."]})
    if source not in PrivacyRequest.Source.values:
        raise ValueError(f"Unknown source {source!r}")
    email_norm, phone_norm = consumer_identify(email=email, phone=phone)
    now = now or timezone.now()
    confirm_due, answer_due = deadlines(now)
    with transaction.atomic():
        request = PrivacyRequest.objects.create(
            kind=kind,
            source=source,
            email_hash=consumer_hash(email_norm) if email_norm else "",
            phone_hash=consumer_hash(phone_norm) if phone_norm else "",
            contact_encrypted=pii_encrypt({"email": email_norm, "phone": phone_norm}),
            organization=organization,
            api_key=api_key,
            filed_by=user,
            received_at=now,
            confirm_due_at=confirm_due,
            answer_due_at=answer_due,
        )
        if source == PrivacyRequest.Source.API:
            privacy_request_confirm(request=request, now=now)
    return request


def privacy_request_contact(request: PrivacyRequest) -> dict[str, str]:
    """The email and phone the request was filed with ({} once a deletion dropped them)."""
    if not request.contact_encrypted:
        return {}
    return {k: str(v) for k, v in pii_decrypt(request.contact_encrypted).items() if v}


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def privacy_request_file_public(
    *, kind: str, email: str, phone: str = "", link: Callable[[str], str], now: dt.datetime | None = None
) -> PrivacyRequest:
    """A consumer files on the public page: the request is received and a one-time confirmation
    link (``link(token)`` builds its URL) is emailed to them. An email is required (it is where
    the link goes); an access request is matched on it alone."""
    if not email:
        raise Invalid("Give your email address: the confirmation link is sent there.", fields={"email": ["Required."]})
    now = now or timezone.now()
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        request = privacy_request_create(
            kind=kind, email=email, phone=phone if kind == PrivacyRequest.Kind.DELETE else "", source="public", now=now
        )
        PrivacyRequest.objects.filter(pk=request.pk).update(
            token_hash=_token_digest(token), token_expires_at=now + TOKEN_TTL
        )
    what = "delete the personal data" if kind == PrivacyRequest.Kind.DELETE else "send you a copy of the personal data"
    send_mail(
        subject="Confirm your privacy request",
        message=(
            f"We received a request to {what} the Gavel exchange holds about you (request {request.public_id}).\n\n"
            f"To confirm it, open this link within {int(TOKEN_TTL.total_seconds() // 3600)} hours:\n\n{link(token)}\n\n"
            "If you did not ask for this, ignore this email: nothing happens without your confirmation."
        ),
        from_email=None,
        recipient_list=[email_normalize(email)],
    )
    return request


def privacy_request_confirm_token(*, token: str, now: dt.datetime | None = None) -> PrivacyRequest:
    """Confirm the request whose emailed link carried ``token``: once, before it expires."""
    now = now or timezone.now()
    with transaction.atomic():
        request = (
            PrivacyRequest.objects.select_for_update().filter(token_hash=_token_digest(token)).first()
            if token
            else None
        )
        if request is None:
            raise NotFound("This confirmation link is not valid.")
        if request.status != PrivacyRequest.Status.RECEIVED:
            raise Invalid("This confirmation link was already used.")
        if request.token_expires_at is None or request.token_expires_at < now:
            raise Invalid("This confirmation link has expired: please file your request again.")
        privacy_request_confirm(request=request, now=now)
    return request


def privacy_request_confirm(*, request: PrivacyRequest, now: dt.datetime | None = None) -> PrivacyRequest:
    """Received → confirmed (verified); queues its processing once the transaction commits."""
    now = now or timezone.now()
    with transaction.atomic():
        updated = PrivacyRequest.objects.filter(pk=request.pk, status=PrivacyRequest.Status.RECEIVED).update(
            status=PrivacyRequest.Status.CONFIRMED,
            confirmed_at=now,
            token_hash="",  # nosec B106  # clears the hash
        )
        if not updated:
            raise Invalid(f"Request {request.public_id} is {request.get_status_display().lower()}: not confirmable.")
        request.status, request.confirmed_at, request.token_hash = PrivacyRequest.Status.CONFIRMED, now, ""
        request_id = request.pk
        # robust: with the broker down the confirmation still stands; leads.work_due picks it up.
        transaction.on_commit(
            lambda: signature(PROCESS_TASK, kwargs={"request_id": request_id}).apply_async(), robust=True
        )
    return request


def privacy_request_reject(*, request: PrivacyRequest, note: str) -> PrivacyRequest:
    """Received or confirmed → rejected, with the reason (e.g. the identity could not be verified)."""
    if not note.strip():
        raise Invalid("Say why the request is rejected.", fields={"note": ["Required."]})
    updated = PrivacyRequest.objects.filter(
        pk=request.pk, status__in=[PrivacyRequest.Status.RECEIVED, PrivacyRequest.Status.CONFIRMED]
    ).update(status=PrivacyRequest.Status.REJECTED, note=note.strip(), token_hash="")  # nosec B106  # clears the hash
    if not updated:
        raise Invalid(f"Request {request.public_id} is {request.get_status_display().lower()}: it cannot be rejected.")
    request.refresh_from_db()
    return request


# --- processing --------------------------------------------------------------------------------


def _consumer_leads(request: PrivacyRequest) -> list[Lead]:
    hashes = [h for h in (request.email_hash, request.phone_hash) if h]
    with market_scope():
        return list(
            Lead.objects.filter(Q(email_hash__in=hashes) | Q(phone_hash__in=hashes)).order_by("created_at", "pk")
        )


def privacy_request_process(*, request_id: int, now: dt.datetime | None = None) -> str:
    """Complete a confirmed request (the task's body; running it twice does the work once)."""
    now = now or timezone.now()
    with transaction.atomic():
        request = PrivacyRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None or request.status != PrivacyRequest.Status.CONFIRMED:
            return "skipped"
        if request.kind == PrivacyRequest.Kind.DELETE:
            result = privacy_erase(request=request, now=now)
            PrivacyRequest.objects.filter(pk=request.pk).update(
                status=PrivacyRequest.Status.COMPLETED, completed_at=now, result=result, contact_encrypted=""
            )
        else:
            export = privacy_export(request=request, now=now)
            PrivacyRequest.objects.filter(pk=request.pk).update(
                status=PrivacyRequest.Status.COMPLETED,
                completed_at=now,
                result={"leads": len(export["leads"])},
                export_encrypted=pii_encrypt(export),
            )
    logger.info("Privacy request %s (%s) completed", request.public_id, request.kind)
    return "completed"


def consent_erase(*, consent: ConsentRecord, now: dt.datetime) -> None:
    """The consent record's one permitted change: blank its IP, user agent and the page URL's query
    (where a form may have put the email), in ``raw`` too; the text, time and certificates stay."""
    raw = dict(consent.raw)
    for key in ("ip", "user_agent"):
        if key in raw:
            raw[key] = None if key == "ip" else ""
    page_url = _without_query(consent.page_url)
    if "page_url" in raw:
        raw["page_url"] = page_url
    ConsentRecord.objects.filter(pk=consent.pk).update(
        ip=None, user_agent="", page_url=page_url, raw=raw, erased_at=now
    )


def _without_query(url: str) -> str:
    if not url:
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def privacy_erase(*, request: PrivacyRequest, now: dt.datetime) -> dict[str, int]:
    """Erase the consumer everywhere (in the caller's transaction); counts of what was erased."""
    contact = privacy_request_contact(request)
    emails, phones = {contact.get("email", "")}, {contact.get("phone", "")}
    leads = _consumer_leads(request)
    with market_scope():
        # The PII as each seller sent it: the pattern must find it however it was written.
        for lead in leads:
            try:
                pii = pii_decrypt(lead.pii_encrypted)
            except PiiKeyError:
                logger.error("PII of lead %s cannot be decrypted for erasure; it is blanked", lead.public_id)
                pii = {}
            for value in pii.values():
                if isinstance(value, str) and "@" in value:
                    emails.add(value)
                elif isinstance(value, str) and sum(c.isdigit() for c in value) >= 7:
                    phones.add(value)
        emails, phones = emails - {""}, {p for p in phones if p}
        pattern = consumer_pattern(emails=emails, phones=phones)
        empty = pii_encrypt({})
        consents = 0
        for lead in leads:
            Lead.objects.filter(pk=lead.pk).update(
                pii_encrypted=empty,
                data=scrub(lead.data, pattern),
                tracking=scrub(lead.tracking, pattern),
                erased_at=lead.erased_at or now,
                updated_at=now,
            )
            consent = ConsentRecord.objects.filter(lead=lead).first()
            if consent is not None:
                consent_erase(consent=consent, now=now)
                consents += 1
        counts = {"leads": len(leads), "consent_records": consents}
        # The request's hashes and those of the consumer's leads (a lead found by email carries their
        # phone too): the consumer is never sold again by either.
        hashes = sorted(
            {h for h in (request.email_hash, request.phone_hash) if h}
            | {h for lead in leads for h in (lead.email_hash, lead.phone_hash) if h}
        )
        for consumer in hashes:
            suppression_add(consumer_hash=consumer, reason=f"Privacy deletion {request.public_id}")
        counts["suppressions"] = len(hashes)
        for name, count in hooks.consumer_erase(
            lead_ids=[lead.pk for lead in leads],
            email_hashes=[request.email_hash] if request.email_hash else [],
            phone_hashes=[request.phone_hash] if request.phone_hash else [],
            pattern=pattern,
            probes=consumer_probes(emails=emails, phones=phones),
        ).items():
            counts[name] = counts.get(name, 0) + count
    return counts


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def privacy_export(*, request: PrivacyRequest, now: dt.datetime) -> dict[str, Any]:
    """Everything the exchange holds on the consumer, as JSON.

    Under the CCPA a consumer may learn the categories of third parties their data was sold to, so
    each lead names its seller and the buyers that bought it (organization names; never the
    prices, contracts or the buyers' own settings)."""
    contact = privacy_request_contact(request)
    leads = _consumer_leads(request)
    exported = []
    with market_scope():
        for lead in (
            Lead.objects.filter(pk__in=[lead.pk for lead in leads])
            .select_related("organization", "offer", "consent")
            .order_by("created_at", "pk")
        ):
            try:
                data = {**lead.data, **pii_decrypt(lead.pii_encrypted)}
            except PiiKeyError:
                data = dict(lead.data)
            consent = getattr(lead, "consent", None)
            # The sales are the exchange's rows, reached through the lead (no import of the exchange).
            sold_to = [
                {"buyer": name, "sold_at": _iso(sold_at), "returned": status == "returned"}
                for name, sold_at, status in lead.sales.filter(status__in=SOLD_STATUSES)  # type: ignore[attr-defined]
                .order_by("sold_at", "pk")
                .values_list("organization__name", "sold_at", "status")
            ]
            exported.append(
                {
                    "lead_id": lead.public_id,
                    "received_at": _iso(lead.created_at),
                    "seller": lead.organization.name,
                    "offer": lead.offer.name,
                    "data": dict(sorted(data.items())),
                    "tracking": lead.tracking,
                    "erased": lead.erased_at is not None,
                    "consent": None
                    if consent is None
                    else {
                        "text": consent.text,
                        "captured_at": _iso(consent.captured_at),
                        "ip": consent.ip,
                        "user_agent": consent.user_agent,
                        "page_url": consent.page_url,
                        "trusted_form_cert_url": consent.trusted_form_cert_url,
                        "jornaya_leadid": consent.jornaya_leadid,
                    },
                    "sold_to": sold_to,
                }
            )
        hashes = [h for h in (request.email_hash, request.phone_hash) if h]
        suppressed = Suppression.objects.filter(consumer_hash__in=hashes).exists()
    return {
        "request_id": request.public_id,
        "generated_at": _iso(now),
        "consumer": {"email": contact.get("email") or None, "phone": contact.get("phone") or None},
        "suppressed": suppressed,
        "leads": exported,
    }


def privacy_export_json(request: PrivacyRequest) -> dict[str, Any] | None:
    """The stored export of a completed access request, or None."""
    if not request.export_encrypted:
        return None
    return pii_decrypt(request.export_encrypted)


def export_bytes(export: dict[str, Any]) -> bytes:
    return json.dumps(export, indent=2, sort_keys=False).encode()
