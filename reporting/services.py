"""Reporting's writes: buyers' conversions, and the seller postbacks they and sales set off.

**Postbacks** (DESIGN.md §6.1, docs/decisions.md): a campaign's ``postback_url`` is called with
``GET`` when one of its leads sells (event ``sold``: ``{value}`` and ``{payout}`` are what the
seller earns) and when a buyer reports a conversion on it (the buyer's event, e.g. ``sale``, with
its ``{value}``; ``{payout}`` is still the seller's earning on that sale). A postback row is written
in the transaction of the sale (through the ``lead.sold`` event, :func:`lead_sold_heard`) or of the
conversion, and its first attempt queued only once that commits. Each attempt goes through the one
guarded outbound client, signed by the Standard Webhooks spec with the seller's signing secret over
the URL as sent (a GET has no body), and is logged; a failure is retried with exponential backoff
until a 2xx or ``max_attempts``.

Settings (all optional), in ``GAVEL_POSTBACKS``: ``max_attempts`` (6), ``retry_base_seconds`` (60),
``retry_factor`` (4), ``retry_cap_seconds`` (21600), ``retry_jitter`` (0.1), ``timeout_seconds``
(10), ``sweep_batch`` (200). With the defaults the retries come 1, 4, 16 and 64 minutes and about
4 hours apart.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from celery import signature
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Membership, Organization
from accounts.roles import role_require
from accounts.tenancy import market_scope
from contracts.postbacks import postback_url_fill
from core.errors import Invalid, NotFound
from core.money import MoneyError, money_str, to_money
from core.outbound import REFUSED, TIMEOUT, OutboundRequest, http_send
from core.retry import backoff_delay
from exchange.auction.book import book_held
from exchange.models import Sale
from exchange.signing import signed_headers
from leads.models import Lead
from reporting.models import Conversion, Postback, PostbackAttempt

logger = logging.getLogger(__name__)

EVENT = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_VALUE = Decimal("1000000.00")
# A conversion's time may run a little ahead of ours (the buyer's clock), never further.
CLOCK_SKEW = timedelta(minutes=5)
# Sales a buyer can report a conversion on: bought (a returned lead may still have converted).
CONVERTIBLE = (Sale.Status.SOLD, Sale.Status.RETURNED)
# The postback event of a lead that sold: the exchange's own, so no buyer may report it.
SOLD_EVENT = "sold"

POSTBACK_TASK = "reporting.postback_send"
RESPONSE_LIMIT = 1024
ERROR_LIMIT = 500
DEFAULTS: dict[str, float] = {
    "max_attempts": 6,
    "retry_base_seconds": 60,
    "retry_factor": 4,
    "retry_cap_seconds": 6 * 3600,
    "retry_jitter": 0.1,
    "timeout_seconds": 10,
    "sweep_batch": 200,
}


def postback_setting(name: str) -> float:
    """One postback setting: ``settings.GAVEL_POSTBACKS[name]`` or its default."""
    return float({**DEFAULTS, **getattr(settings, "GAVEL_POSTBACKS", {})}[name])


# --- conversions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    conversion: Conversion
    created: bool


def conversion_record(
    *,
    buyer: Organization,
    sale_public_id: str,
    event: str,
    value: object,
    occurred_at: datetime | None = None,
    actor: Membership | None = None,
) -> Recorded:
    """Record that the buyer's purchase converted, and queue the seller's postback (if its campaign
    has one) for when this commits. The same sale and event again answers the first conversion
    (``created`` False), whatever its value: a conversion is reported once, and told once.

    Refused, with nothing written: another buyer's or an unknown sale (NotFound), a sale not bought
    (released or still reserved), an event not ``[a-z][a-z0-9_]*`` (at most 32) or ``sold`` (the
    exchange's own postback event), a value that is not an amount from 0.00 to 1 000 000.00, a time
    before the sale or ahead of now. ``actor``: the portal's member, a manager or owner (the API's
    key acts without one).
    """
    if actor is not None:
        role_require(actor, "manager", organization_id=buyer.pk)
    now = timezone.now()
    occurred_at = occurred_at or now
    fields: dict[str, list[str]] = {}
    if not isinstance(event, str) or not EVENT.match(event):
        fields["event"] = ["Use a lower-case name: letters, digits and _, starting with a letter, at most 32."]
    elif event == SOLD_EVENT:
        fields["event"] = ["'sold' is the exchange's own event (the lead sold): name your conversion otherwise."]
    try:
        amount = to_money(value)
        if not Decimal(0) <= amount <= MAX_VALUE:
            raise MoneyError("out of range")
    except MoneyError:
        fields["value"] = [f'An amount from 0.00 to {MAX_VALUE:,.2f}, as a string such as "120.00".']
        amount = Decimal(0)
    if occurred_at > now + CLOCK_SKEW:
        fields["occurred_at"] = ["A conversion cannot happen in the future."]
    with market_scope():
        sale = Sale.objects.filter(organization=buyer, public_id=sale_public_id).select_related("lead").first()
        if sale is None:
            raise NotFound("No such purchase.")
        existing = Conversion.objects.filter(sale=sale, event=event).first() if not fields else None
        if existing is not None:
            return Recorded(existing, created=False)
        if sale.status not in CONVERTIBLE:
            fields.setdefault("sale_id", []).append(f"Only a bought lead converts; this sale is {sale.status}.")
        if sale.sold_at is not None and occurred_at < sale.sold_at:
            fields.setdefault("occurred_at", []).append("A conversion cannot happen before the sale.")
        if fields:
            raise Invalid("The conversion is not valid.", fields=fields)
        try:
            with transaction.atomic():
                conversion = Conversion.objects.create(
                    organization=buyer,
                    seller_id=sale.seller_id,
                    sale=sale,
                    campaign_id=sale.campaign_id,
                    contract_id=sale.contract_id,
                    event=event,
                    value=amount,
                    test=sale.test,
                    occurred_at=occurred_at,
                )
                _postback_queue(
                    lead=sale.lead,
                    conversion=conversion,
                    event=event,
                    value=money_str(amount),
                    payout=money_str(sale.payout),
                )
        except IntegrityError:  # the same conversion, reported at the same moment: the first one stands
            return Recorded(Conversion.objects.get(sale=sale, event=event), created=False)
    return Recorded(conversion, created=True)


# --- postbacks: queueing ----------------------------------------------------------------------------


def _postback_queue(*, lead: Lead, conversion: Conversion | None, event: str, value: str, payout: str) -> None:
    """Write the postback of ``lead``'s campaign (none if it has no ``postback_url``) in the caller's
    transaction, and queue its first attempt for when that commits. Market scope."""
    campaign = lead.campaign
    if not campaign.postback_url:
        return
    tracking = lead.tracking or {}
    values: dict[str, object] = {
        "lead_id": lead.public_id,
        "event": event,
        "value": value,
        "payout": payout,
        "test": "1" if lead.test else "0",
        **{key: tracking.get(key) for key in ("sub_id1", "sub_id2", "sub_id3", "sub_id4", "sub_id5", "click_id")},
    }
    now = timezone.now()
    try:
        # A savepoint: a replayed event must not break the sale's own transaction.
        with transaction.atomic():
            postback = Postback.objects.create(
                organization_id=lead.organization_id,
                campaign=campaign,
                lead=lead,
                conversion=conversion,
                event=event,
                url=postback_url_fill(campaign.postback_url, values),
                test=lead.test,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError:
        return  # told already
    kwargs = {"postback_id": postback.pk, "organization_id": postback.organization_id}
    # robust: a broker outage must not fail what already committed; the sweeper sends it.
    transaction.on_commit(lambda: signature(POSTBACK_TASK, kwargs=kwargs).apply_async(), robust=True)


def lead_sold_heard(*, organization_id: int, type: str, data: dict[str, Any]) -> None:
    """The ``lead.sold`` event (``core.hooks.event_subscribe``): the seller's ``sold`` postback, with
    the lead's whole payout (the sum over its buyers), once per lead. A seller none of whose
    campaigns has a postback URL costs no query: the contract book knows, as the post, full lead,
    re-auction or sweep that sold the lead had it checked (the cache is not asked again)."""
    if organization_id not in book_held().postback_sellers:
        return
    with market_scope():
        lead = Lead.objects.select_related("campaign").filter(public_id=data["lead_id"]).first()
        if lead is None:
            return
        payout = money_str(lead.payout)
        _postback_queue(lead=lead, conversion=None, event=SOLD_EVENT, value=payout, payout=payout)


# --- postbacks: sending -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PostbackOutcome:
    """What :func:`postback_attempt` did: ``sent`` is False when there was nothing to do."""

    postback_id: int
    status: str
    sent: bool = False
    status_code: int | None = None
    retry_in: float | None = None  # seconds until the next attempt, when one is scheduled


def postback_retry_delay(*, attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): ``base × factor^(attempt-1)``,
    capped, with jitter so that postbacks that failed together do not come back together."""
    return backoff_delay(
        attempt=attempt,
        base=postback_setting("retry_base_seconds"),
        factor=postback_setting("retry_factor"),
        cap=postback_setting("retry_cap_seconds"),
        jitter=postback_setting("retry_jitter"),
    )


def _due(now: datetime) -> Q:
    """Postbacks whose next attempt may start: pending and due, or sending with a lapsed lease."""
    return Q(status__in=[Postback.Status.PENDING, Postback.Status.SENDING], next_attempt_at__lte=now)


def postback_headers(*, secret: str, url: str, msg_id: str, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of a postback: a GET has no body, so what is signed is the URL
    as sent (``"msg_id.timestamp.url"``): a receiver verifies with any Standard Webhooks library,
    passing the URL it was called at as the payload."""
    headers = signed_headers(secret=secret, body=url.encode(), msg_id=msg_id, now=now)
    headers.pop("content-type", None)
    return headers


def postback_attempt(*, postback_id: int) -> PostbackOutcome:
    """Make the postback's next attempt if one is due, and record it.

    Claimed by compare-and-set (one worker per attempt); the GET happens outside any transaction.
    2xx → ``succeeded``; anything else → ``pending`` with a backoff, or ``given_up`` after
    ``max_attempts``. A redirect is a failed attempt and is never followed. Market scope or the
    seller's.
    """
    now = timezone.now()
    postback = Postback.objects.select_related("organization").filter(pk=postback_id).first()
    if postback is None:
        return PostbackOutcome(postback_id, "missing")
    if postback.status not in (Postback.Status.PENDING, Postback.Status.SENDING):
        return PostbackOutcome(postback_id, postback.status)
    if postback.next_attempt_at is not None and postback.next_attempt_at > now:
        return PostbackOutcome(postback_id, postback.status)
    number = postback.attempts + 1
    timeout = postback_setting("timeout_seconds")
    claimed = Postback.objects.filter(_due(now), pk=postback.pk, attempts=postback.attempts).update(
        status=Postback.Status.SENDING,
        attempts=number,
        next_attempt_at=now + timedelta(seconds=timeout + 60),
        updated_at=now,
    )
    if not claimed:
        return PostbackOutcome(postback_id, "claimed_elsewhere")

    sent_at = timezone.now()
    headers = postback_headers(
        secret=postback.organization.signing_secret, url=postback.url, msg_id=postback.public_id, now=sent_at
    )
    response = http_send(OutboundRequest(postback.url, None, headers, timeout, max_body=RESPONSE_LIMIT))
    status_code: int | None = None
    response_text = error = ""
    if response.status is None:
        if response.error == TIMEOUT:
            error = f"Timed out after {timeout:g} s"
        elif response.error == REFUSED:
            error = f"Refused URL: {response.detail}"
        else:
            error = response.detail or "The connection failed."
    else:
        status_code = response.status
        if response.redirect:
            error = f"Redirect not followed: {response.location or 'no Location'}"
        else:
            response_text = response.body.decode("utf-8", errors="replace")

    finished = timezone.now()
    retry_in: float | None = None
    if status_code is not None and 200 <= status_code < 300 and not error:
        status, next_at = Postback.Status.SUCCEEDED, None
    elif number >= postback_setting("max_attempts"):
        status, next_at = Postback.Status.GIVEN_UP, None
    else:
        retry_in = postback_retry_delay(attempt=number)
        status, next_at = Postback.Status.PENDING, finished + timedelta(seconds=retry_in)
    with transaction.atomic():
        PostbackAttempt.objects.create(
            postback=postback,
            organization_id=postback.organization_id,
            number=number,
            at=sent_at,
            status_code=status_code,
            latency_ms=round(response.latency_ms),
            response=response_text[:RESPONSE_LIMIT],
            error=error[:ERROR_LIMIT],
        )
        # Conditional on our claim: a worker that took over a lapsed lease owns the state.
        Postback.objects.filter(pk=postback.pk, status=Postback.Status.SENDING, attempts=number).update(
            status=status,
            next_attempt_at=next_at,
            last_status_code=status_code,
            last_error=error[:ERROR_LIMIT],
            updated_at=finished,
        )
    return PostbackOutcome(postback_id, status, sent=True, status_code=status_code, retry_in=retry_in)


def postbacks_due(*, limit: int | None = None) -> list[tuple[int, int]]:
    """(postback id, seller id) of the postbacks whose next attempt is due, oldest first."""
    with market_scope():
        due = Postback.objects.filter(_due(timezone.now())).order_by("next_attempt_at", "pk")
        return list(due.values_list("pk", "organization_id")[: int(limit or postback_setting("sweep_batch"))])
