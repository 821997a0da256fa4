"""Thin API views for buyers: their purchases (full lead and consent) and their returns.

Every view runs in the API key's tenant scope and reads the buyer's own ``Sale`` rows only; the
lead and its consent (the seller's rows) are reached through them, as in the portal
(``exchange.portal``). PII is decrypted only for sales the buyer bought and kept (not returned).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericAPIView
from accounts.models import Organization
from core.errors import NotFound
from core.money import ZERO, money_str
from exchange.api.idempotency import IdempotentPostMixin
from exchange.api.purchases.filters import PurchaseFilter
from exchange.api.purchases.serializers import PurchaseOutput, ReturnInput, ReturnOutput
from exchange.api.views import IDEMPOTENCY_HEADER
from exchange.models import Sale
from exchange.portal import BOUGHT, purchase_get, purchases_of
from exchange.returns.models import Return
from exchange.returns.selectors import return_deadline, return_get, returns_of
from exchange.returns.services import return_request
from leads.crypto import PiiKeyError, pii_decrypt
from leads.views import ordered_fields

logger = logging.getLogger(__name__)

ERRORS = {
    401: {"description": "authentication_failed"},
    403: {"description": "permission_denied (the key lacks the `purchases` scope, or the organization does not buy)"},
}
NOT_FOUND = {404: {"description": "not_found: no such purchase (or not yours)"}}


class BuyerView(TenantGenericAPIView):
    required_scope: ClassVar[str | None] = "purchases"
    required_role: ClassVar[str | None] = "buyer"


# --- shaping ------------------------------------------------------------------------------------


def _return_summary(ret: Return | None) -> dict[str, Any] | None:
    if ret is None:
        return None
    return {
        "return_id": ret.public_id,
        "status": ret.status,
        "reason": ret.reason,
        "created_at": ret.created_at,
        "decided_at": ret.decided_at,
    }


def return_data(ret: Return) -> dict[str, Any]:
    """A return as the buyer sees it."""
    sale = ret.sale
    return {
        **(_return_summary(ret) or {}),
        "sale_id": sale.public_id,
        "lead_id": sale.lead.public_id,
        "note": ret.note,
        "auto": ret.auto,
        "decision_note": ret.decision_note or None,
        "refund": money_str(sale.price if ret.status != Return.Status.DENIED else ZERO),
    }


def purchase_data(sale: Sale) -> dict[str, Any]:
    """A sold (or returned) sale with its lead: the contact details and consent only while the
    buyer keeps it (:attr:`Sale.contact_details_shown`). Needs ``lead__consent``, ``contract``,
    ``offer`` and ``campaign`` selected and ``returns`` prefetched, newest first."""
    lead = sale.lead
    data: dict[str, Any] = dict(lead.data)
    erased = lead.erased_at is not None
    pii_available = sale.contact_details_shown and not erased
    if pii_available:
        try:
            data.update(pii_decrypt(lead.pii_encrypted))
        except PiiKeyError:
            pii_available = False
            logger.error("PII of lead %s cannot be decrypted (purchase %s)", lead.public_id, sale.public_id)
    consent = getattr(lead, "consent", None) if sale.contact_details_shown else None
    returns = list(sale.returns.all())
    return {
        "sale_id": sale.public_id,
        "lead_id": lead.public_id,
        "offer": sale.offer.slug,
        "contract": sale.contract.public_id,
        "price": money_str(sale.price),
        "status": sale.status,
        "test": sale.test,
        "sold_at": sale.sold_at,
        "returnable_until": return_deadline(sale),
        "quality_score": lead.quality_score,
        "source": sale.campaign.source_token,
        "lead": dict(ordered_fields(data, sale.offer.fields)),
        "pii_available": pii_available,
        "erased": erased,
        "consent": None
        if consent is None
        else {
            "text": consent.text,
            "captured_at": consent.captured_at,
            "ip": consent.ip,
            "user_agent": consent.user_agent,
            "page_url": consent.page_url,
            "trusted_form_cert_url": consent.trusted_form_cert_url,
            "jornaya_leadid": consent.jornaya_leadid,
        },
        "return": _return_summary(returns[0] if returns else None),
    }


def _with_details(sales: QuerySet[Sale]) -> QuerySet[Sale]:
    return sales.select_related("lead__consent", "campaign").prefetch_related(
        Prefetch("returns", queryset=Return.objects.order_by("-created_at", "-pk"))
    )


def _purchase(buyer: Organization, sale_id: str) -> Sale:
    """The buyer's bought sale, or not_found (a reserved or released sale is not a purchase)."""
    sale = purchase_get(buyer=buyer, public_id=sale_id)
    if sale.status not in BOUGHT:
        raise NotFound("No such purchase.")
    return sale


# --- views --------------------------------------------------------------------------------------


class PurchaseListView(BuyerView):
    serializer_class = PurchaseOutput
    # Applied by the default DjangoFilterBackend (a bad or unknown filter is a 422); the schema's
    # query parameters are generated from it too, which is why the view names its model here.
    filterset_class = PurchaseFilter
    queryset = Sale.objects.none()

    @extend_schema(
        summary="List your purchases: the leads you bought, with full data and consent",
        description=(
            "Newest first, cursor-paginated (`limit` up to 500). A bad filter value is a 422 "
            "`validation_error` naming the parameter; unknown parameters are refused the same way."
        ),
        tags=["buyers"],
        operation_id="purchases_list",
        responses={200: PurchaseOutput(many=True), **ERRORS, 422: {"description": "validation_error"}},
    )
    def get(self, request: Request) -> Response:
        sales = self.filter_queryset(purchases_of(buyer=self.organization).filter(status__in=BOUGHT))
        page = self.paginate_queryset(_with_details(sales))
        assert page is not None  # the API always paginates
        return self.get_paginated_response([purchase_data(sale) for sale in page])


class PurchaseDetailView(BuyerView):
    serializer_class = PurchaseOutput

    @extend_schema(
        summary="Get one of your purchases",
        tags=["buyers"],
        operation_id="purchases_get",
        responses={200: PurchaseOutput, **ERRORS, **NOT_FOUND},
    )
    def get(self, request: Request, sale_id: str) -> Response:
        sale = _with_details(purchases_of(buyer=self.organization).filter(public_id=sale_id, status__in=BOUGHT)).first()
        if sale is None:
            raise NotFound("No such purchase.")
        return Response(purchase_data(sale))


class PurchaseReturnView(IdempotentPostMixin, BuyerView):
    serializer_class = ReturnOutput

    @extend_schema(
        summary="Return a purchased lead",
        description=(
            "Within the contract's return window (`returnable_until`), with a reason code. The return "
            "is `approved` at once when your return policy allows it, else `requested` until the "
            "operator decides (you hear `return.decided`)."
        ),
        tags=["buyers"],
        operation_id="purchases_return",
        request=ReturnInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: ReturnOutput,
            **ERRORS,
            **NOT_FOUND,
            409: {"description": "return_exists: the sale already has a return (a denial is final)"},
            422: {
                "description": "validation_error, return_window_closed, or return_not_allowed (a test sale, "
                "or one that is not sold)"
            },
        },
        examples=[
            OpenApiExample("A return", request_only=True, value={"reason": "bad_phone", "note": "Number disconnected."})
        ],
    )
    def post(self, request: Request, sale_id: str) -> Response:
        _purchase(self.organization, sale_id)  # another buyer's sale: 404 before anything else
        data = ReturnInput(data=request.data)
        data.is_valid(raise_exception=True)
        ret = return_request(
            buyer=self.organization,
            sale_public_id=sale_id,
            reason=data.validated_data["reason"],
            note=data.validated_data["note"],
        )
        return Response(return_data(ret), status=status.HTTP_201_CREATED)


class ReturnListView(BuyerView):
    serializer_class = ReturnOutput
    queryset = Return.objects.none()  # the schema generator's model: the list has no filters

    @extend_schema(
        summary="List your returns",
        tags=["buyers"],
        operation_id="returns_list",
        responses={200: ReturnOutput(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(returns_of(buyer=self.organization))
        assert page is not None
        return self.get_paginated_response([return_data(ret) for ret in page])


class ReturnDetailView(BuyerView):
    serializer_class = ReturnOutput

    @extend_schema(
        summary="Get one of your returns",
        tags=["buyers"],
        operation_id="returns_get",
        responses={200: ReturnOutput, **ERRORS, 404: {"description": "not_found"}},
    )
    def get(self, request: Request, return_id: str) -> Response:
        return Response(return_data(return_get(buyer=self.organization, public_id=return_id)))
