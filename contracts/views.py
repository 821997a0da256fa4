"""Portal pages for buyers' contracts and sellers' campaigns.

A buyer's manager creates and edits a contract on the editor page (:mod:`contracts.editor` reads
what it posts), which saves through the one write path of the terms (:mod:`contracts.services`),
and pauses or resumes it in one click; an analyst reads."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from accounts.portal import portal_page, role_allows
from contracts.delivery_preview import delivery_preview
from contracts.editor import (
    HOURS,
    EditorState,
    Modifier,
    Node,
    delivery_words,
    errors_place,
    field_options,
    modifiers_words,
    rule_words,
    schedule_words,
    state_from_contract,
    state_from_post,
    terms_build,
)
from contracts.models import PERIODS, BuyerContract
from contracts.posting import ENDPOINTS, posting_guide
from contracts.selectors import (
    campaign_get,
    campaigns_of,
    contract_get,
    contract_usage,
    contracts_of,
    offers_open,
)
from contracts.services import contract_update, contract_upsert
from contracts.terms import ContractTermsInput

PERIOD_LABELS = {"day": "Today", "week": "This week", "month": "This month", "total": "All time"}


@portal_page(side="buyer")
def contract_list(request: HttpRequest) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    return render(
        request,
        "contracts/contract_list.html",
        {
            "contracts": contracts_of(organization=organization),
            "can_edit": role_allows(request.membership, "manager"),  # type: ignore[attr-defined]
        },
    )


@portal_page(side="buyer")
def contract_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    contract = contract_get(organization=organization, public_id=public_id)
    options = {o.name: o for o in field_options(contract.offer.field_specs)}
    usage = contract_usage(organization=organization, contract=contract, now=timezone.now())
    limits = [
        (PERIOD_LABELS[p], contract.cap(p), contract.budget(p), usage.get(p))
        for p in PERIODS
        if contract.cap(p) is not None or contract.budget(p) is not None
    ]
    return render(
        request,
        "contracts/contract_detail.html",
        {
            "contract": contract,
            "filters_text": rule_words(contract.filters, options),
            "modifiers_text": modifiers_words(contract.modifiers, options),
            "schedule_text": schedule_words(contract.schedule, organization.timezone),
            "delivery_text": delivery_words(contract.delivery or {}),
            "delivery_preview": delivery_preview(contract),
            "limits": limits,
            "can_edit": role_allows(request.membership, "manager"),  # type: ignore[attr-defined]
        },
    )


def _usage_rows(state: EditorState, contract: BuyerContract | None, organization: Any) -> list[dict[str, Any]]:
    usage = {} if contract is None else contract_usage(organization=organization, contract=contract, now=timezone.now())
    rows = []
    for period in PERIODS:
        counter = usage.get(period)
        rows.append(
            {
                "period": period,
                "label": PERIOD_LABELS[period],
                "cap": state.values.get(f"cap_{period}", ""),
                "budget": state.values.get(f"budget_{period}", ""),
                "count": counter.count if counter else 0,
                "spend": counter.spend if counter else None,
                "cap_error": state.errors.get(f"caps.{period}"),
                "budget_error": state.errors.get(f"budget.{period}"),
            }
        )
    return rows


def _editor(
    request: HttpRequest, state: EditorState, *, contract: BuyerContract | None, offer: Any, status: int = 200
) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    return render(
        request,
        "contracts/contract_edit.html",
        {
            "contract": contract,
            "offer": offer,
            "offers": offers_open() if contract is None else [],
            "state": state,
            "v": state.values,
            "errors": state.errors,
            "limits": _usage_rows(state, contract, organization),
            "hours": HOURS,
            "options": state.options,
            "blank_leaves": [Node("__ID__", "leaf", o, o.ops[0][0]) for o in state.options],
            "blank_group": Node("__ID__", "all"),
            "blank_mod": Modifier("__ID__", when=Node("__ID__", "all")),
        },
        status=status,
    )


def _save(request: HttpRequest, *, contract: BuyerContract | None, offer: Any) -> HttpResponse:
    """Save what the page posted through the service, or show it again with the refusals by field."""
    organization = request.organization  # type: ignore[attr-defined]
    state = state_from_post(request.POST, request.FILES, offer.field_specs)
    built = terms_build(state)
    refused: dict[str, list[str]] = {}
    if built.errors:
        # Not saved: the input's own checks still run, so every refusal shows at once.
        try:
            ContractTermsInput(data=built.terms).columns()
        except ValidationError as exc:
            refused = exc.message_dict
    else:
        try:
            if contract is None:
                slug = f"{slugify(built.terms['name'])[:40] or 'contract'}-{get_random_string(8).lower()}"
                contract, _ = contract_upsert(organization=organization, offer=offer, slug=slug, terms=built.terms)
                messages.success(request, "Contract created. It bids on the next ping that fits its terms.")
            else:
                contract = contract_update(contract=contract, terms=built.terms)
                messages.success(request, "Contract saved. The next ping sees the new terms.")
        except ValidationError as exc:
            refused = exc.message_dict
        else:
            return redirect("contracts:contract_detail", public_id=contract.public_id)
    errors_place(state, built, refused)
    return _editor(request, state, contract=contract, offer=offer, status=422)


@portal_page(side="buyer", role="manager")
def contract_new(request: HttpRequest) -> HttpResponse:
    offers = offers_open()
    slug = request.POST.get("offer") or request.GET.get("offer")
    offer = offers.filter(slug=slug).first() if slug else offers.first()
    if offer is None:
        if slug:
            raise Http404("No such offer.")
        return render(request, "contracts/contract_edit.html", {"offers": [], "state": None})
    if request.method == "POST":
        return _save(request, contract=None, offer=offer)
    return _editor(request, state_from_contract(None, offer.field_specs), contract=None, offer=offer)


@portal_page(side="buyer", role="manager")
def contract_edit(request: HttpRequest, public_id: str) -> HttpResponse:
    contract = contract_get(organization=request.organization, public_id=public_id)  # type: ignore[attr-defined]
    if request.method == "POST":
        return _save(request, contract=contract, offer=contract.offer)
    state = state_from_contract(contract, contract.offer.field_specs)
    return _editor(request, state, contract=contract, offer=contract.offer)


@require_POST
@portal_page(side="buyer", role="manager")
def contract_status(request: HttpRequest, public_id: str) -> HttpResponse:
    """Pause or resume: the buyer's own switch. A hold is the exchange's and stays as it is."""
    contract = contract_get(organization=request.organization, public_id=public_id)  # type: ignore[attr-defined]
    action = request.POST.get("action")
    if action not in ("pause", "resume"):
        messages.warning(request, "Choose pause or resume.")
        return redirect("contracts:contract_detail", public_id=public_id)
    status = BuyerContract.Status.PAUSED if action == "pause" else BuyerContract.Status.ACTIVE
    try:
        contract = contract_update(contract=contract, terms={"status": status})
    except ValidationError as exc:
        # The saved terms no longer fit the offer (its fields changed): such a contract does not
        # bid; the buyer fixes its terms on the editor, where each refusal is shown by its field.
        messages.warning(
            request,
            "Nothing changed: this contract's saved terms no longer fit the offer ("
            + "; ".join(f"{name}: {' '.join(m)}" for name, m in exc.message_dict.items())
            + "). It does not bid until you edit and save them.",
        )
        return redirect("contracts:contract_detail", public_id=public_id)
    if action == "pause":
        messages.success(request, "Paused: the contract no longer bids.")
    elif contract.hold:
        messages.warning(
            request,
            "Resumed on your side, but the exchange holds this contract: it does not bid until the exchange "
            "lifts the hold.",
        )
    else:
        messages.success(request, "Resumed: the contract bids on the next ping that fits its terms.")
    return redirect("contracts:contract_detail", public_id=public_id)


@portal_page(side="seller")
def campaign_list(request: HttpRequest) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    return render(request, "contracts/campaign_list.html", {"campaigns": campaigns_of(organization=organization)})


@portal_page(side="seller")
def campaign_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    """The campaign's posting instructions (endpoints, fields, examples generated from the offer's
    schema), its test console and its floor and blocked buyers (both served by the exchange)."""
    campaign = campaign_get(organization=request.organization, public_id=public_id)  # type: ignore[attr-defined]
    guide = posting_guide(campaign=campaign)
    base_url = request.build_absolute_uri("/").rstrip("/")
    examples = [
        {
            "kind": kind,
            "title": title,
            "what": what,
            "endpoint": f"{base_url}{ENDPOINTS[kind]}",
            "json": guide.json(kind),
            "curl": guide.curl(kind, base_url=base_url),
        }
        for kind, title, what in (
            ("ping", "Ping", "Offer the lead without contact details; the answer says what buyers pay."),
            ("post", "Post", "Sell the pinged lead: the whole lead and the consumer's consent, with the ping's id."),
            ("lead", "Full lead", "Ping and post in one call, if you do not ping first."),
        )
    ]
    context = {
        "campaign": campaign,
        "guide": guide,
        "examples": examples,
        "base_url": base_url,
        "can_test": role_allows(request.membership, "manager"),  # type: ignore[attr-defined]
    }
    return render(request, "contracts/campaign_detail.html", context)
