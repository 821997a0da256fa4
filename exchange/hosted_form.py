"""Hosted forms: ``/f/<campaign id>``, a public page that sells a consumer's lead (DESIGN.md §6.1).

The page is built from the offer's field schema (core.schema.FieldSpec: type, choices, required),
with the campaign's consent text and a checkbox, and for an offer that requires one-to-one consent
the buyers it names. ``POST`` sells through the path of ``POST /api/v1/leads``
(:func:`exchange.services.lead_receive`) as the campaign's seller, with the IP, user agent, time
and page URL as the consent record and ``sub_id1``… and ``click_id`` from the page's query string.
Then the buyer's redirect (a ``redirect_url`` in the winning buyer's delivery answer) or the
campaign's thank-you page, or the exchange's own.

Against bots: a honeypot field a person never sees nor fills, and a signed timestamp in the form
(a submission within ``GAVEL_FORM_MIN_SECONDS`` of the page, or with a forged or day-old stamp, is
refused). Errors are shown by their field, and every value typed comes back.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.models import Organization
from accounts.tenancy import market_scope
from contracts.models import Campaign
from core.errors import Invalid
from core.schema import US_STATE_CODES, FieldSpec, LeadInvalid, lead_validate
from exchange.auction.book import CompiledCampaign, OfferBook, book_current
from exchange.models import DeliveryAttempt
from exchange.services import lead_receive
from exchange.services.pings import LeadRequest
from leads.models import Lead

HONEYPOT = "website"
STAMP = "form_stamp"
CONSENT = "consent_agreed"
TRACKING_KEYS = ("sub_id1", "sub_id2", "sub_id3", "sub_id4", "sub_id5", "click_id")
STAMP_MAX_AGE_S = 24 * 3600
_SALT = "gavel.hosted-form"

_INPUT_TYPES = {"integer": "number", "decimal": "number", "date": "date", "email": "email", "phone": "tel"}
_AUTOCOMPLETE = {
    "email": "email",
    "phone": "tel",
    "zip": "postal-code",
    "state": "address-level1",
    "first_name": "given-name",
    "last_name": "family-name",
    "address": "street-address",
    "city": "address-level2",
}


@dataclass(frozen=True)
class FormField:
    """One input of the page, from the offer's FieldSpec."""

    name: str
    label: str
    kind: str  # input | select | checkbox-like select
    input_type: str
    required: bool
    choices: tuple[tuple[str, str], ...]
    autocomplete: str
    inputmode: str
    value: str
    errors: tuple[str, ...]
    min: str
    max: str
    step: str


def _label(name: str) -> str:
    words = name.replace("_", " ").strip()
    return {"zip": "ZIP code", "state": "State", "email": "Email", "phone": "Phone"}.get(name, words.capitalize())


def _form_fields(fields: dict[str, FieldSpec], values: dict[str, str], errors: dict[str, list[str]]) -> list[FormField]:
    out = []
    for name, spec in fields.items():
        choices: tuple[tuple[str, str], ...] = ()
        kind, input_type, inputmode, step = "input", _INPUT_TYPES.get(spec.type, "text"), "", ""
        if spec.type == "choice":
            kind, choices = "select", tuple((c, c.replace("_", " ").capitalize()) for c in spec.choices)
        elif spec.type == "boolean":
            kind, choices = "select", (("true", "Yes"), ("false", "No"))
        elif spec.type == "state":
            kind, choices = "select", tuple((c, c) for c in sorted(US_STATE_CODES))
        elif spec.type == "zip":
            inputmode = "numeric"
        elif spec.type == "integer":
            inputmode, step = "numeric", "1"
        elif spec.type == "decimal":
            inputmode, step = "decimal", "any"
        out.append(
            FormField(
                name=name,
                label=_label(name),
                kind=kind,
                input_type=input_type,
                required=spec.required or spec.ping == "required",
                choices=choices,
                autocomplete=_AUTOCOMPLETE.get(name, _AUTOCOMPLETE.get(spec.type, "off")),
                inputmode=inputmode,
                value=values.get(name, ""),
                errors=tuple(errors.get(name, ())),
                min="" if spec.min is None else str(spec.min),
                max="" if spec.max is None else str(spec.max),
                step=step,
            )
        )
    return out


def _campaign(campaign_id: str) -> tuple[CompiledCampaign, OfferBook, Campaign]:
    found = book_current().campaigns.get(campaign_id)
    if found is None:
        raise Http404("No such form.")
    compiled, offer_id = found
    offer = book_current().offers[offer_id]
    with market_scope():
        row = Campaign.objects.select_related("organization", "offer").get(pk=compiled.id)
    return compiled, offer, row


def named_buyers(offer: OfferBook) -> list[Organization]:
    """The buyers a one-to-one consent on this offer's form names: every organization with an
    active contract on the offer (their public names are shown; their slugs go in the record)."""
    ids = {c.organization_id for c in offer.contracts if c.active and c.organization_active}
    return list(Organization.objects.filter(pk__in=ids).order_by("name"))


def _stamp() -> str:
    return signing.TimestampSigner(salt=_SALT).sign(str(time.time()))


def _stamp_problem(stamp: str) -> str | None:
    """Why the form's timestamp refuses the submission, if it does."""
    try:
        issued = float(signing.TimestampSigner(salt=_SALT).unsign(stamp, max_age=STAMP_MAX_AGE_S))
    except (signing.BadSignature, ValueError):
        return "This form has expired. Please check your details and send it again."
    if time.time() - issued < settings.GAVEL_FORM_MIN_SECONDS:
        return "That was quicker than a person can fill in this form. Please check your details and send it again."
    return None


def _page_url(request: HttpRequest) -> str:
    return request.build_absolute_uri()


def buyer_redirect(lead_public_id: str) -> str:
    """The redirect the winning buyer's delivery answer carries (``{"redirect_url": "https://…"}``), or ""."""
    with market_scope():
        answers = DeliveryAttempt.objects.filter(
            sale__lead__public_id=lead_public_id, outcome=DeliveryAttempt.Outcome.ACCEPTED
        ).values_list("response", flat=True)
        for response in answers:
            try:
                url = json.loads(response).get("redirect_url")
            except (ValueError, AttributeError):
                continue
            if isinstance(url, str) and url.startswith(("https://", "http://")):
                return url
    return ""


def _render(
    request: HttpRequest,
    *,
    campaign: Campaign,
    offer: OfferBook,
    values: dict[str, str],
    errors: dict[str, list[str]],
    tracking: dict[str, str],
    page_url: str,
    agreed: bool = False,
    problem: str = "",
    status: int = 200,
) -> HttpResponse:
    buyers = named_buyers(offer) if offer.one_to_one_consent else []
    return render(
        request,
        "exchange/hosted_form.html",
        {
            "campaign": campaign,
            "fields": _form_fields(offer.fields, values, errors),
            "consent_text": campaign.consent_text or "I agree to be contacted about my request.",
            "consent_errors": errors.get(CONSENT, []),
            "named_buyers": buyers,
            "agreed": agreed,
            "tracking": tracking,
            "page_url": page_url,
            "stamp": _stamp(),
            "honeypot": HONEYPOT,
            "problem": problem,
            "error_count": sum(len(v) for v in errors.values()),
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
def hosted_form(request: HttpRequest, campaign_id: str) -> HttpResponse:
    compiled, offer, campaign = _campaign(campaign_id)
    if not (compiled.active and offer.active):
        return render(request, "exchange/hosted_form_closed.html", {"campaign": campaign}, status=404)
    if request.method == "GET":
        tracking = {k: request.GET[k][:255] for k in TRACKING_KEYS if request.GET.get(k)}
        return _render(
            request,
            campaign=campaign,
            offer=offer,
            values={},
            errors={},
            tracking=tracking,
            page_url=_page_url(request),
        )
    post = request.POST
    values = {name: post.get(name, "").strip() for name in offer.fields}
    tracking = {k: post[k][:255] for k in TRACKING_KEYS if post.get(k)}
    page_url = post.get("page_url", "")[:2000] or _page_url(request)
    agreed = post.get(CONSENT) == "yes"

    def again(errors: dict[str, list[str]], problem: str = "", status: int = 422) -> HttpResponse:
        """The page again with what was typed, each error by its field."""
        return _render(
            request,
            campaign=campaign,
            offer=offer,
            values=values,
            errors=errors,
            tracking=tracking,
            page_url=page_url,
            agreed=agreed,
            problem=problem,
            status=status,
        )

    if post.get(HONEYPOT):
        # A bot filled the field no person sees: nothing is sold, nothing is said of why.
        return again({}, "Your request could not be sent.", 400)
    errors: dict[str, list[str]] = {}
    if not agreed:
        errors[CONSENT] = ["Tick the box to agree, or we cannot pass on your request."]
    try:
        lead_validate({k: v for k, v in values.items() if v}, offer.fields, stage="post")
    except LeadInvalid as exc:
        errors.update(exc.errors)  # every field's problem at once, with the consent box's
    for name, field in offer.fields.items():
        if (field.required or field.ping == "required") and not values[name]:
            errors[name] = ["This field is required."]
    if errors:
        return again(errors)
    problem = _stamp_problem(post.get(STAMP, ""))
    if problem is not None:
        return again({}, problem, 400)
    buyers = named_buyers(offer) if offer.one_to_one_consent else []
    consent: dict[str, Any] = {
        "text": campaign.consent_text or "I agree to be contacted about my request.",
        "captured_at": timezone.now(),
        "ip": request.META.get("REMOTE_ADDR") or None,
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:1000],
        "page_url": page_url,
    }
    if offer.one_to_one_consent:
        consent["named_buyers"] = [b.slug for b in buyers]
        consent["text"] += " Named buyers: " + ", ".join(b.name for b in buyers) + "."
    try:
        answer = lead_receive(
            seller=campaign.organization,
            request=LeadRequest(
                campaign=campaign.public_id,
                lead={k: v for k, v in values.items() if v},
                consent=consent,
                tracking=tracking,
            ),
        )
    except Invalid as exc:
        errors = {k.removeprefix("lead."): v for k, v in (exc.fields or {}).items()}
        return again(errors)
    if answer.status == Lead.Status.SOLD:
        redirect = buyer_redirect(answer.lead_id)
        if redirect:
            return HttpResponseRedirect(redirect)
    if campaign.thank_you_url:
        return HttpResponseRedirect(campaign.thank_you_url)
    return render(request, "exchange/hosted_form_thanks.html", {"campaign": campaign})
