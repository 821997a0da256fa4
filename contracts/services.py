"""Writes for campaigns and contracts. Each validates like a form and owns its transaction."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils.text import slugify

from accounts.models import Organization
from accounts.tenancy import market_scope
from contracts.models import PERIODS, BuyerContract, Campaign, CapCounter
from contracts.sql import cap_counters_count
from contracts.terms import (
    BREAKER_ONLY,
    CampaignTermsInput,
    ContractCreateInput,
    ContractTermsInput,
    campaign_term_name,
    contract_term_name,
)
from core.audit import audit_record
from core.hooks import event_emit, market_changed

MAX_TRIPS = 32767  # the column's limit; the cool-down stopped growing long before


def _market_changed() -> None:
    market_changed()  # the contract book compiles what this app owns


def _full_clean(instance: BuyerContract | Campaign, term_name: Callable[[str], str]) -> None:
    """The model's own checks, the last before a save; a refusal names the term as written."""
    try:
        instance.full_clean()
    except ValidationError as exc:
        if not hasattr(exc, "error_dict"):
            raise
        raise ValidationError({term_name(field): messages for field, messages in exc.message_dict.items()}) from exc


def _contract_apply(contract: BuyerContract, values: dict[str, Any]) -> str | None:
    """Put ``values`` (columns, from :class:`ContractTermsInput`) on ``contract``; the event its
    hold's change calls for, if any.

    A hold in ``values`` is a person's (the operator's, by the admin or the market file): they may
    hold a contract or lift any hold, the circuit breaker's included, which then lets go of it (no
    automatic retry, a clean count). Only the breaker itself holds a contract as the breaker."""
    held_before = contract.hold
    for key, value in values.items():
        setattr(contract, key, value)
    if "hold" not in values:
        return None
    if contract.hold not in (None, BuyerContract.Hold.OPERATOR):
        raise ValidationError({"hold": BREAKER_ONLY})
    contract.breaker_retry_at = None
    contract.breaker_trips = 0
    if contract.hold is None:
        contract.hold_reason = ""
        return "contract.resumed" if held_before is not None else None
    return "contract.paused" if held_before != contract.hold else None


def _contract_saved(contract: BuyerContract, event: str | None) -> None:
    _full_clean(contract, contract_term_name)
    contract.save()
    _market_changed()
    if event is not None:
        _contract_event(contract_id=contract.pk, type=event, reason=contract.hold_reason or "Released by the operator")


@transaction.atomic
def contract_upsert(
    *,
    organization: Organization,
    offer: Any,
    slug: str,
    terms: object,
    operator: bool = False,
    blocked_sellers: Iterable[Organization] | None = None,
    public_id: str | None = None,
) -> tuple[BuyerContract, bool]:
    """Create or update the buyer contract with this slug from a whole declaration of its terms
    (:class:`contracts.terms.ContractTermsInput`: a group left out is none; ``operator`` lets the
    operator's terms in). Filters, modifiers, schedule and delivery are checked against the offer;
    a ``ValidationError`` names the term as written (``caps.day``, ``filters``). The values go
    onto the row read locked, as in :func:`contract_update`."""
    values = ContractTermsInput(data=terms, operator=operator).columns()
    contract = BuyerContract.objects.select_for_update().filter(slug=slug).first()
    created = contract is None
    if contract is None:
        contract = BuyerContract(slug=slug, organization=organization, offer=offer)
    elif contract.organization_id != organization.pk:
        raise ValidationError({"slug": f"'{slug}' is already used by another organization."})
    contract.offer = offer
    if public_id:
        contract.public_id = public_id
    event = _contract_apply(contract, values)
    _contract_saved(contract, event)
    if blocked_sellers is not None:
        contract.blocked_sellers.set(blocked_sellers)
    return contract, created


@transaction.atomic
def contract_create(*, organization: Organization, terms: object) -> BuyerContract:
    """A new contract of the buyer ``organization`` from its whole declaration
    (:class:`contracts.terms.ContractCreateInput`: ``offer`` by slug, ``name``, and the buyer's
    terms; a group left out is none; the operator's terms are refused by name). Checked like every
    other write (:func:`contract_upsert`); a ``ValidationError`` names the term as written and
    nothing is created. The contract book is told (it bids from the next ping on).

    Its slug (the market file's name for it) is made from its name and a random suffix."""
    values = ContractCreateInput(data=terms).columns()
    offer = values.pop("offer")
    slug = f"{slugify(values.get('name', ''))[:48].strip('-') or 'contract'}-{secrets.token_hex(4)}"
    contract = BuyerContract(slug=slug, organization=organization, offer=offer)
    _contract_saved(contract, _contract_apply(contract, values))
    return contract


@transaction.atomic
def contract_update(*, contract: BuyerContract, terms: object, operator: bool = False) -> BuyerContract:
    """Change a contract's terms; all or nothing. ``terms`` (the shape of
    :class:`contracts.terms.ContractTermsInput`) holds only what the caller changes: the buyer's
    terms from its API, or whatever the operator changed in the admin (``operator``: ``hold``
    among them, see :func:`_contract_apply`). A ``ValidationError`` names the term as written.

    The values go onto the row as it is now, locked (``contract`` may have been read before the
    circuit breaker held it), so a change never undoes a hold or a status it did not name."""
    values = ContractTermsInput(data=terms, operator=operator, partial=True).columns()
    contract = BuyerContract.objects.select_for_update().get(pk=contract.pk)
    event = _contract_apply(contract, values)
    _contract_saved(contract, event)
    return contract


def _campaign_saved(campaign: Campaign, values: dict[str, Any]) -> None:
    blocked = values.pop("blocked_buyers", None)
    for key, value in values.items():
        setattr(campaign, key, value)
    _full_clean(campaign, campaign_term_name)
    campaign.save()
    if blocked is not None:
        campaign.blocked_buyers.set(blocked)
    _market_changed()


@transaction.atomic
def campaign_upsert(
    *,
    organization: Organization,
    offer: Any,
    slug: str,
    terms: object,
    blocked_buyers: Iterable[Organization] | None = None,
    public_id: str | None = None,
) -> tuple[Campaign, bool]:
    """Create or update the seller campaign with this slug from a whole declaration of its terms
    (:class:`contracts.terms.CampaignTermsInput`: no ``direct_route``, no direct route); a
    ``ValidationError`` names the term as written (``direct_route.price``)."""
    values = CampaignTermsInput(data=terms, context={"seller": organization}).columns()
    campaign = Campaign.objects.select_for_update().filter(slug=slug).first()
    created = campaign is None
    if campaign is None:
        campaign = Campaign(slug=slug, organization=organization, offer=offer)
    elif campaign.organization_id != organization.pk:
        raise ValidationError({"slug": f"'{slug}' is already used by another organization."})
    campaign.offer = offer
    if public_id:
        campaign.public_id = public_id
    _campaign_saved(campaign, values)
    if blocked_buyers is not None:
        campaign.blocked_buyers.set(blocked_buyers)
    return campaign, created


@transaction.atomic
def campaign_update(*, campaign: Campaign, terms: object) -> Campaign:
    """Change a campaign's terms; all or nothing. ``terms`` holds only what the caller changes
    (the operator's changed fields in the admin; the seller's floor and blocked buyers, named by
    their tokens, from the campaign page), onto the row as it is now, locked."""
    values = CampaignTermsInput(data=terms, partial=True, context={"seller": campaign.organization}).columns()
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    _campaign_saved(campaign, values)
    return campaign


def campaign_rates_set(*, rates: Mapping[int, tuple[float, int, float, int]]) -> int:
    """Record each campaign's recent return rate, sale count, delivery-reject rate and delivery
    count (``{campaign id: (return_rate, sales, reject_rate, deliveries)}``; a campaign left out
    has none: zeros), for the quality score's source signals. Writes only the rows that change and
    tells the contract book once if any did; returns how many changed."""
    changed = 0
    with market_scope(), transaction.atomic():
        for campaign in Campaign.objects.only("pk", "return_rate", "rate_sales", "reject_rate", "rate_deliveries"):
            new = rates.get(campaign.pk, (0.0, 0, 0.0, 0))
            old = (campaign.return_rate, campaign.rate_sales, campaign.reject_rate, campaign.rate_deliveries)
            if tuple(new) == old:
                continue
            Campaign.objects.filter(pk=campaign.pk).update(
                return_rate=new[0], rate_sales=new[1], reject_rate=new[2], rate_deliveries=new[3]
            )
            changed += 1
        if changed:
            _market_changed()
    return changed


class CapRefused(Exception):
    """A contract cannot take one more lead: ``reason`` is its waterfall reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def cap_reserve(
    *,
    contract_id: int,
    organization_id: int,
    keys: Mapping[str, str],
    caps: dict[str, int],
    budgets: dict[str, Decimal],
    price: Decimal,
) -> None:
    """Count one lead at ``price`` in every limited period, or raise :class:`CapRefused` (then some
    periods may have counted it: the caller rolls its transaction back).

    One conditional upsert of the periods' counters (:func:`contracts.sql.cap_counters_count`:
    ``count < cap AND spend + price <= budget``), in a fixed period order, so concurrent posts never
    oversell and never deadlock. Call inside a transaction.
    """
    periods = [p for p in PERIODS if p in keys]
    for period in periods:  # limits no lead could fit in: refused without asking the database
        if caps.get(period, 1) < 1:
            raise CapRefused(f"cap_reached:{period}")
        if budgets.get(period, price) < price:
            raise CapRefused("budget_reached")
    if not periods:
        return  # a contract with no cap and no budget counts nothing
    statement, params = cap_counters_count(
        contract_id=contract_id, organization_id=organization_id, keys=keys, caps=caps, budgets=budgets, price=price
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        counted = {row[0] for row in cursor.fetchall()}
    refused = next((period for period in periods if period not in counted), None)
    if refused is not None:
        with market_scope():
            count = CapCounter.objects.get(contract_id=contract_id, period_key=keys[refused]).count
        capped = refused in caps and count >= caps[refused]
        raise CapRefused(f"cap_reached:{refused}" if capped else "budget_reached")


def cap_release(*, contract_id: int, keys: list[str], price: Decimal) -> None:
    """Hand back one lead at ``price`` in the given periods (a rejected or returned sale)."""
    with market_scope():
        CapCounter.objects.filter(contract_id=contract_id, period_key__in=keys).update(
            count=F("count") - 1, spend=F("spend") - price
        )


def contract_hold(*, contract_id: int, hold: str, reason: str, retry_at: datetime | None = None) -> bool:
    """Hold a contract for the exchange and tell its organization (``contract.paused``); its
    buyer's status is left as it is.

    ``hold`` is ``breaker`` (the RTB circuit breaker: ``retry_at`` is when a ping may ask the buyer
    again, see :func:`contract_breaker_resume` and :func:`contract_breaker_retry`) or ``operator``
    (the operator's watch, e.g. the delivery-reject rate): an operator hold stays until a person
    lifts it, and takes over a breaker hold. Compare-and-set: the breaker holds only a contract
    that bids and no one holds; a contract already held so changes nothing and answers False.
    """
    with market_scope(), transaction.atomic():
        before = BuyerContract.objects.select_for_update().filter(pk=contract_id).first()
        contracts = BuyerContract.objects.filter(pk=contract_id)
        if hold == BuyerContract.Hold.BREAKER:
            contracts = contracts.filter(status=BuyerContract.Status.ACTIVE, hold__isnull=True)
        else:
            contracts = contracts.exclude(hold=BuyerContract.Hold.OPERATOR)
        updated = contracts.update(
            hold=hold,
            hold_reason=reason[:200],
            breaker_retry_at=retry_at if hold == BuyerContract.Hold.BREAKER else None,
            breaker_trips=1 if hold == BuyerContract.Hold.BREAKER else 0,
        )
        if not updated or before is None:
            return False
        _hold_audit(before)
        _market_changed()
        _contract_event(contract_id=contract_id, type="contract.paused", reason=reason)
    return True


def _hold_audit(before: BuyerContract) -> None:
    """Record a hold's change (a queryset update, which auditlog does not see)."""
    after = BuyerContract.objects.get(pk=before.pk)
    fields = ("hold", "hold_reason", "breaker_retry_at", "breaker_trips")
    changes = {f: (getattr(before, f), getattr(after, f)) for f in fields if getattr(before, f) != getattr(after, f)}
    audit_record(after, changes=changes)


def contract_breaker_retry(*, contract_id: int, seen_trips: int, retry_at: datetime, reason: str) -> bool:
    """The circuit breaker's retry of a contract it holds failed: the hold stays, one more trip in
    a row, until ``retry_at``. No event (its organization was told of the hold).

    Compare-and-set on the trips the retry saw (``seen_trips``) and on the breaker still holding
    the contract: when a person or another retry got there first, nothing changes and the answer
    is False.
    """
    with market_scope(), transaction.atomic():
        updated = BuyerContract.objects.filter(
            pk=contract_id, hold=BuyerContract.Hold.BREAKER, breaker_trips=seen_trips
        ).update(breaker_trips=min(seen_trips + 1, MAX_TRIPS), breaker_retry_at=retry_at, hold_reason=reason[:200])
        if not updated:
            return False
        _market_changed()
    return True


def contract_breaker_resume(*, contract_id: int, reason: str) -> bool:
    """Lift the circuit breaker's hold, its retry having been answered, and tell the contract's
    organization (``contract.resumed``).

    Compare-and-set: only while the breaker still holds it, so a contract the operator held
    meanwhile stays held and the answer is False.
    """
    with market_scope(), transaction.atomic():
        before = BuyerContract.objects.select_for_update().filter(pk=contract_id).first()
        updated = BuyerContract.objects.filter(pk=contract_id, hold=BuyerContract.Hold.BREAKER).update(
            hold=None, hold_reason="", breaker_retry_at=None, breaker_trips=0
        )
        if not updated or before is None:
            return False
        _hold_audit(before)
        _market_changed()
        _contract_event(contract_id=contract_id, type="contract.resumed", reason=reason)
    return True


def _contract_event(*, contract_id: int, type: str, reason: str) -> None:
    contract = BuyerContract.objects.select_related("offer").get(pk=contract_id)
    event_emit(
        organization_id=contract.organization_id,
        type=type,
        data={"contract": contract.public_id, "name": contract.name, "offer": contract.offer.slug, "reason": reason},
    )
