"""Lead returns: a buyer gives back a lead it bought, within its contract's return window.

The flow (DESIGN.md §1, §6, §9):

* the buyer asks (:func:`return_request`, from the portal or ``POST /api/v1/purchases/{id}/return``)
  with a reason code from :class:`Return.Reason` and a note, while the sale is ``sold``, not a
  test, and ``sold_at + contract.return_window_hours`` has not passed. The window is enforced
  there, at request time: a request after it is refused (``return_window_closed``), so nothing
  has to be "closed" in the database when a window runs out;
* the request is approved at once when the buyer's :class:`ReturnPolicy` allows it (its return
  rate over the last 30 days, this return included, stays at or under the policy's percent);
  otherwise it waits, ``requested``, for an operator (the admin's approve / deny actions);
* :func:`return_decide` settles it in one transaction: on approval the sale becomes
  ``returned`` and one ledger transaction (kind ``return``, key ``return:<ret id>``) reverses the
  sale — buyer balance +price, seller payable −payout, platform revenue −margin — and the
  seller hears ``lead.returned``; approved or denied, the buyer hears ``return.decided``;
* :func:`return_windows_close` (Celery beat, hourly) denies, with the note ``expired``, the
  requests an operator left undecided for ``GAVEL_RETURN_EXPIRY_DAYS`` (14) days, so a request
  never hangs forever and the buyer is told.

Decisions worth knowing: a return does not give back cap or budget counts (the lead was
delivered and counted); a denial is final (a second request for the same sale is a 409
``return_exists``); the seller's payable may go below zero when the seller was already paid —
the claw-back is then netted from its next earnings; the lead's own ``payout`` column (the
``leads`` app's) is left as sold, the ledger and the sale's ``returned`` status are the record.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Membership, Organization, User
from accounts.portal import role_allows
from accounts.tenancy import market_scope
from billing.services import sale_refund_book
from core.audit import audit_record
from core.errors import ExchangeError, Invalid, NotFound
from core.hooks import event_emit
from core.money import ZERO, money_str
from exchange.models import Sale
from exchange.returns.models import NOTE_MAX_LENGTH, Return, ReturnPolicy
from exchange.returns.selectors import auto_approve_rate, expiry_days, return_deadline

logger = logging.getLogger(__name__)

EXPIRED_NOTE = "expired"
EXPIRY_BATCH = 500


# --- errors (mapped to the API error format by exchange.api.errors) ----------------------------


class ReturnError(ExchangeError):
    """A return that cannot be made or decided."""

    code = "validation_error"
    status = 422


class ReturnNotAllowed(ReturnError):
    """The sale cannot be returned: a test sale, or one that is not (or no longer) sold."""

    code = "return_not_allowed"
    status = 422


class ReturnWindowClosed(ReturnError):
    code = "return_window_closed"
    status = 422


class ReturnExists(ReturnError):
    """The sale already has a return (requested, approved, or denied: a denial is final)."""

    code = "return_exists"
    status = 409


class ReturnForbidden(ReturnError):
    """The person asking may only read (an analyst): returning a lead is a change."""

    code = "forbidden"
    status = 403


class ReturnAlreadyDecided(ReturnError):
    code = "return_already_decided"
    status = 409


# --- services ---------------------------------------------------------------------------------


def _request_validate(reason: str, note: str) -> None:
    fields: dict[str, list[str]] = {}
    if reason not in Return.Reason.values:
        fields["reason"] = [f"Choose one of: {', '.join(Return.Reason.values)}."]
    if len(note) > NOTE_MAX_LENGTH:
        fields["note"] = [f"At most {NOTE_MAX_LENGTH} characters."]
    elif reason == Return.Reason.OTHER and not note:
        fields["note"] = ["Say what is wrong with the lead when the reason is 'other'."]
    if fields:
        raise Invalid("The return is not valid.", fields=fields)


def return_request(
    *,
    buyer: Organization,
    sale_public_id: str,
    reason: str,
    note: str = "",
    user: User | None = None,
    now: datetime | None = None,
) -> Return:
    """Ask to return one of the buyer's purchases; returns the Return (``requested`` or ``approved``).

    Guarantees: another buyer's sale is answered as a missing one (NotFound); the reason is one
    of :class:`Return.Reason` (else ``validation_error``); the sale is a real (not test) sale in
    status ``sold`` (else ``return_not_allowed``), its window is open (else
    ``return_window_closed``), and it has no return yet (else ``return_exists``, 409; a denial
    is final); a person (``user``) asking must be the buyer's owner or manager, not an analyst
    (else ``forbidden``, 403; an API key with the purchases scope has no person). Refused requests
    create nothing. When the buyer's policy allows it the return is
    approved in the same transaction (``auto``), refund and claw-back included; requests of one
    buyer are serialized on its policy row so two at once cannot both slip under the rate.
    """
    note = (note or "").strip()
    now = now or timezone.now()
    membership = Membership.objects.filter(user=user, organization=buyer).first() if user is not None else None
    if user is not None and not role_allows(membership, "manager"):
        raise ReturnForbidden("Only owners and managers return leads; analysts read.")
    with market_scope():
        sale = (
            Sale.objects.filter(organization=buyer, public_id=sale_public_id).select_related("contract", "lead").first()
        )
        if sale is None:
            raise NotFound("No such purchase.")
        _request_validate(reason, note)
        existing = Return.objects.filter(sale=sale).order_by("-pk").first()
        if existing is not None:
            raise ReturnExists(f"This sale already has a return ({existing.public_id}, {existing.status}).")
        if sale.test:
            raise ReturnNotAllowed("A test sale cannot be returned.")
        deadline = return_deadline(sale)
        if sale.status != Sale.Status.SOLD or deadline is None:
            raise ReturnNotAllowed(f"Only a sold lead can be returned; this sale is {sale.status}.")
        if now >= deadline:
            raise ReturnWindowClosed(
                f"The return window of this sale closed at {deadline.isoformat()} "
                f"({sale.contract.return_window_hours} h after the sale)."
            )
        with transaction.atomic():
            policy = ReturnPolicy.objects.select_for_update().filter(organization=buyer).first()
            try:
                with transaction.atomic():
                    ret = Return.objects.create(
                        organization=buyer,
                        seller_id=sale.seller_id,
                        sale=sale,
                        reason=reason,
                        note=note,
                        requested_by=user,
                        created_at=now,
                    )
            except IntegrityError as exc:  # a concurrent request for the same sale won
                raise ReturnExists("This sale already has a return.") from exc
            limit = policy.auto_approve_rate_percent if policy is not None else None
            if limit is not None:
                rate = auto_approve_rate(buyer=buyer, sale=sale, now=now)
                if rate <= limit:
                    ret, _ = _decide(
                        ret=ret,
                        approve=True,
                        user=None,
                        note=f"Auto-approved: return rate {rate}% (30 days, this one included) ≤ {limit}%.",
                        auto=True,
                    )
    return ret


def _decide(*, ret: Return, approve: bool, user: User | None, note: str, auto: bool) -> tuple[Return, bool]:
    """:func:`return_decide`, also saying whether this call made the decision."""
    wanted = Return.Status.APPROVED if approve else Return.Status.DENIED
    now = timezone.now()
    with market_scope(), transaction.atomic():
        decided = Return.objects.filter(pk=ret.pk, status=Return.Status.REQUESTED).update(
            status=wanted, decided_by=user, decided_at=now, decision_note=note[:500], auto=auto
        )
        current = Return.objects.select_related("sale", "sale__lead").get(pk=ret.pk)
        if not decided:
            if current.status == wanted:
                return current, False
            raise ReturnAlreadyDecided(f"Return {current.public_id} is already {current.status}.")
        sale = current.sale
        if approve:
            returned = Sale.objects.filter(pk=sale.pk, status=Sale.Status.SOLD, test=False).update(
                status=Sale.Status.RETURNED
            )
            if returned != 1:
                # Rolls the decision back too: the return stays requested.
                raise ReturnNotAllowed(f"Sale {sale.public_id} is no longer sold; it cannot be returned.")
            sale.status = Sale.Status.RETURNED
            booked = sale_refund_book(
                return_public_id=current.public_id,
                buyer_id=sale.organization_id,
                seller_id=sale.seller_id,
                price=sale.price,
                payout=sale.payout,
                memo=f"Return {current.public_id} of sale {sale.public_id} ({current.reason})",
            )
            Return.objects.filter(pk=current.pk).update(ledger_transaction=booked)
            current.ledger_transaction = booked
            event_emit(
                organization_id=sale.seller_id,
                type="lead.returned",
                data={
                    "lead_id": sale.lead.public_id,
                    "sale_id": sale.public_id,
                    "return_id": current.public_id,
                    "reason": current.reason,
                    "payout": money_str(sale.payout),  # clawed back from the seller's payable
                    "returned_at": now,
                },
            )
        audit_record(
            current,
            changes={
                "status": (Return.Status.REQUESTED, current.status),
                "refund": (None, money_str(sale.price if approve else ZERO)),
                "decision_note": ("", current.decision_note),
                "auto": (False, current.auto),
            },
        )
        event_emit(
            organization_id=current.organization_id,
            type="return.decided",
            data={
                "return_id": current.public_id,
                "sale_id": sale.public_id,
                "lead_id": sale.lead.public_id,
                "status": current.status,
                "reason": current.reason,
                "auto": current.auto,
                "refund": money_str(sale.price if approve else ZERO),
                "decision_note": current.decision_note or None,
                "decided_at": now,
            },
        )
    return current, True


def return_decide(*, ret: Return, approve: bool, user: User | None, note: str = "") -> Return:
    """Approve or deny a requested return; returns it as decided.

    Guarantees: the decision is a compare-and-set from ``requested``, so of two concurrent or
    repeated decisions one wins. Approval, in ONE transaction: the sale goes ``sold`` →
    ``returned``, the ledger books the reversal once (key ``return:<ret id>``; the entries sum to
    zero, cached balances move with them), the seller gets ``lead.returned`` and the buyer
    ``return.decided`` (events in the same transaction, sent after commit). Denial moves no
    money and tells the buyer. Deciding again the same way is a no-op; the other way is
    ``return_already_decided`` (409).
    """
    decided, _ = _decide(ret=ret, approve=approve, user=user, note=note, auto=False)
    return decided


def return_windows_close(*, now: datetime | None = None) -> int:
    """The hourly sweep; returns how many requests it closed.

    Return windows need no closing in the database: :func:`return_request` refuses a request
    after its window, which is the enforcement. What the sweep does close are requests an
    operator left ``requested`` for ``GAVEL_RETURN_EXPIRY_DAYS`` (default 14) days: each is
    denied with the note ``expired`` through :func:`return_decide` (the buyer is told by
    ``return.decided``; no money moves). Safe to run at any time and concurrently: each denial
    is a compare-and-set, so a request an operator decides meanwhile keeps the operator's decision.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=expiry_days())
    with market_scope():
        stale = list(
            Return.objects.filter(status=Return.Status.REQUESTED, created_at__lt=cutoff).order_by("pk")[:EXPIRY_BATCH]
        )
    closed = 0
    for ret in stale:
        try:
            _, changed = _decide(ret=ret, approve=False, user=None, note=EXPIRED_NOTE, auto=False)
        except ReturnAlreadyDecided:
            continue
        closed += int(changed)
    return closed
