"""Thin API views for sellers: ping, post, full lead, and a lead's status."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantAPIView
from accounts.models import Organization
from exchange.api.idempotency import IdempotentPostMixin
from exchange.api.serializers import (
    LeadDetailOutput,
    LeadInput,
    LeadOutput,
    PingInput,
    PingOutput,
    PostInput,
    ping_input_quick,
)
from exchange.arrival import request_arrival
from exchange.auction.book import book_current
from exchange.selectors import lead_auctions_for_seller, lead_sales_for_seller
from exchange.services import (
    LeadAnswer,
    LeadRequest,
    PingRequest,
    PostRequest,
    lead_receive,
    ping_cache_keys,
    ping_fingerprint,
    ping_receive,
    post_receive,
)
from leads.selectors import lead_get

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    # What exchange.api.idempotency accepts: 1 to 255 printable ASCII characters (not starting or
    # ending with a space, which HTTP would strip).
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]([ -~]*[!-~])?$"},
    OpenApiParameter.HEADER,
    required=False,
    description="Retry safely: a repeat with the same key and body replays the first answer (24 h).",
)
ERRORS = {
    400: {"description": "Malformed JSON"},
    401: {"description": "authentication_failed"},
    403: {"description": "permission_denied (the key lacks the `leads` scope)"},
    422: {"description": "validation_error: `error.fields` names each bad field"},
}


def _raw_body(request: Request) -> bytes | None:
    """The request's body as sent, or None when it is too large to read (parsing it says so)."""
    try:
        return request._request.body
    except RequestDataTooBig:
        return None


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def ping_answer(
    *, seller: Organization, data: object, fingerprint: str = "", arrived: float | None = None
) -> dict[str, Any]:
    """A ping's body checked and run, answered as the API answers it (the campaign page's test
    console sends its pings here too); an invalid one raises the error the API maps."""
    v = ping_input_quick(data)
    if v is None:
        checked = PingInput(data=data)
        checked.is_valid(raise_exception=True)
        v = checked.validated_data
    answer = ping_receive(
        seller=seller,
        request=PingRequest(
            campaign=v["campaign"],
            lead=v["lead"],
            test=v["test"],
            consumer=dict(v.get("consumer") or {}),
            tracking=_compact(dict(v.get("tracking") or {})),
            consent=_compact(dict(v.get("consent") or {})),
            fingerprint=fingerprint,
            arrived=arrived,
        ),
    )
    return PingOutput.render(answer)


def post_answer(*, seller: Organization, data: object, arrived: float | None = None) -> dict[str, Any]:
    """A post's body checked and run, as :func:`ping_answer`."""
    checked = PostInput(data=data)
    checked.is_valid(raise_exception=True)
    v = checked.validated_data
    answer = post_receive(
        seller=seller,
        request=PostRequest(ping_id=v["ping_id"], lead=v["lead"], consent=dict(v["consent"]), arrived=arrived),
    )
    return LeadOutput.render(answer)


class SellerView(TenantAPIView):
    required_scope: ClassVar[str | None] = "leads"
    required_role: ClassVar[str | None] = "seller"


class PingView(IdempotentPostMixin, SellerView):
    fingerprint = ""

    def cache_prefetch_keys(self, request: Request) -> list[str]:
        # What the ping reads from the cache comes with the API key's record.
        keys = super().cache_prefetch_keys(request)
        body = _raw_body(request)
        if self.key_digest is not None and body is not None:
            self.fingerprint = ping_fingerprint(sender=self.key_digest, body=body)
        return [*keys, *ping_cache_keys()]

    @extend_schema(
        summary="Ping: offer a lead without contact details and get bids",
        tags=["sellers"],
        request=PingInput,
        responses={200: PingOutput, **ERRORS},
        parameters=[IDEMPOTENCY_HEADER],
        examples=[
            OpenApiExample(
                "A ping",
                request_only=True,
                value={
                    "campaign": "cmp_leadgen_auto",
                    "lead": {"state": "CA", "zip": "94107", "age": 34},
                    "consumer": {"email_sha256": "5c0b…", "phone_sha256": "9f2e…"},
                    "tracking": {"sub_id1": "fb-123"},
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        return Response(
            ping_answer(
                seller=self.organization,
                data=request.data,
                fingerprint=self.fingerprint,
                arrived=request_arrival(request),
            )
        )


class PostView(IdempotentPostMixin, SellerView):
    @extend_schema(
        summary="Post: sell a pinged lead (full data and consent)",
        tags=["sellers"],
        request=PostInput,
        responses={
            200: LeadOutput,
            **ERRORS,
            404: {"description": "not_found: no such ping (or not yours)"},
            409: {"description": "ping_already_posted"},
            410: {"description": "ping_expired"},
        },
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request: Request) -> Response:
        return Response(post_answer(seller=self.organization, data=request.data, arrived=request_arrival(request)))


class LeadCreateView(IdempotentPostMixin, SellerView):
    @extend_schema(
        summary="Full lead: ping and post in one call (and the campaign's direct route)",
        tags=["sellers"],
        request=LeadInput,
        responses={200: LeadOutput, **ERRORS},
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request: Request) -> Response:
        data = LeadInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        answer = lead_receive(
            seller=self.organization,
            request=LeadRequest(
                campaign=v["campaign"],
                lead=v["lead"],
                consent=dict(v["consent"]),
                test=v["test"],
                tracking=_compact(dict(v.get("tracking") or {})),
                arrived=request_arrival(request),
            ),
        )
        return Response(LeadOutput.render(answer))


class LeadDetailView(SellerView):
    @extend_schema(summary="A lead's status, sales and payout", tags=["sellers"], responses={200: LeadDetailOutput})
    def get(self, request: Request, lead_id: str) -> Response:
        lead = lead_get(seller=self.organization, public_id=lead_id)
        detail = {
            **asdict(LeadAnswer.of(lead, lead.ping, offer=book_current().offers[lead.offer_id])),
            "campaign": lead.campaign.public_id,
            "offer": lead.offer.slug,
            "created_at": lead.created_at,
            "sales": lead_sales_for_seller(seller=self.organization, lead=lead),
            "auctions": lead_auctions_for_seller(seller=self.organization, lead=lead),
        }
        return Response(LeadDetailOutput.render(detail))
