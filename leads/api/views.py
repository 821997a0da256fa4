"""The leads app's API views.

``GET``/``POST /api/v1/suppressions``: an organization's opt-outs and do-not-contact list.

Any key with the ``leads`` (sellers) or ``purchases`` (buyers) scope may file and list: a seller
files the opt-outs its consumers send it, a buyer its own list. Filing the same consumer in the
same scope again answers the existing suppression (200), so a retry never files twice; the
exchange's view adds ``Idempotency-Key`` (exchange/api/suppressions.py).

``/api/v1/privacy-requests``: an organization files a consumer's deletion or access request and
follows it (DESIGN.md §6.1; the life of a request is :mod:`leads.privacy`).

A request filed here is confirmed at once — the organization vouches for the consumer — and is
completed by a background task within minutes. Only the organization that filed a request sees it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import HasKeyScope, TenantGenericAPIView
from accounts.models import ApiKey
from core.errors import Invalid, NotFound
from leads.api.serializers import PrivacyRequestInput, PrivacyRequestOutput, SuppressionInput, SuppressionOutput
from leads.models import PrivacyRequest, Suppression
from leads.privacy import privacy_request_create
from leads.selectors import suppressions_of
from leads.services import suppression_file
from leads.suppressions import HASH_RE

KEY_SCOPES = frozenset({"leads", "purchases"})
LIST_PARAMETERS = frozenset({"scope", "consumer_sha256", "cursor", "limit"})


class HasSuppressionScope(HasKeyScope):
    """The key has the ``leads`` or the ``purchases`` scope."""

    message = "This API key needs the `leads` or the `purchases` scope to manage suppressions."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        return isinstance(key, ApiKey) and bool(KEY_SCOPES & set(key.scopes))


class SuppressionCollectionView(TenantGenericAPIView):
    """``GET``: the suppressions the organization filed; ``POST``: file one."""

    permission_classes = [HasSuppressionScope]
    serializer_class = SuppressionOutput
    queryset = Suppression.objects.none()

    @extend_schema(
        summary="List the suppressions you filed",
        tags=["suppressions"],
        operation_id="suppressions_list",
        parameters=[
            OpenApiParameter("scope", str, enum=Suppression.Scope.values, description="Only this scope."),
            OpenApiParameter("consumer_sha256", str, description="Only this consumer's (a SHA-256 hex)."),
        ],
        responses={200: SuppressionOutput(many=True), 422: {"description": "validation_error"}},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        problems = {name: ["Unknown filter."] for name in sorted(set(params) - LIST_PARAMETERS)}
        scope = params.get("scope") or None
        if scope is not None and scope not in Suppression.Scope.values:
            problems["scope"] = ["Must be exchange or organization."]
        consumer = (params.get("consumer_sha256") or "").strip().lower()
        if consumer and not HASH_RE.match(consumer):
            problems["consumer_sha256"] = ["Must be a SHA-256 hex digest (64 hexadecimal characters)."]
        if problems:
            raise Invalid("The filters are not valid.", fields=problems)
        rows = suppressions_of(
            organization=self.organization, scope=scope, consumer_hashes=[consumer] if consumer else ()
        )
        page = self.paginate_queryset(rows)
        assert page is not None  # the API always paginates
        return self.get_paginated_response([SuppressionOutput.render(s) for s in page])

    @extend_schema(
        summary="Suppress a consumer: an opt-out, or your own do-not-contact list",
        tags=["suppressions"],
        operation_id="suppressions_create",
        request=SuppressionInput,
        responses={201: SuppressionOutput, 200: SuppressionOutput, 422: {"description": "validation_error"}},
    )
    def post(self, request: Request) -> Response:
        data = SuppressionInput(data=request.data)
        data.is_valid(raise_exception=True)
        scope = data.validated_data["scope"]
        if scope == Suppression.Scope.ORGANIZATION and not self.organization.is_buyer:
            raise Invalid(
                "The suppression is not valid.",
                fields={"scope": ["Only a buying organization keeps its own list; send exchange for an opt-out."]},
            )
        consumer = data.validated_data["consumer"]
        suppression, created = suppression_file(
            consumer_hash=consumer.hash,
            kind=consumer.kind,
            scope=scope,
            organization_id=self.organization.pk,
            reason=data.validated_data["reason"],
            source=Suppression.Source.API,
        )
        return Response(
            SuppressionOutput.render(suppression), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class PrivacyRequestCreateView(TenantGenericAPIView):
    required_scope = "leads"
    serializer_class = PrivacyRequestOutput

    @extend_schema(
        summary="File a consumer's deletion or access request",
        tags=["privacy"],
        operation_id="privacy_requests_create",
        request=PrivacyRequestInput,
        responses={201: PrivacyRequestOutput},
    )
    def post(self, request: Request) -> Response:
        given = PrivacyRequestInput(data=request.data)
        if not given.is_valid():
            raise Invalid("The request is not valid.", fields=given.errors)
        filed = privacy_request_create(
            kind=given.validated_data["kind"],
            email=given.validated_data.get("email"),
            phone=given.validated_data.get("phone"),
            source=PrivacyRequest.Source.API,
            organization=self.organization,
            api_key=request.auth,  # type: ignore[arg-type]
        )
        return Response(PrivacyRequestOutput(filed).data, status=status.HTTP_201_CREATED)


class PrivacyRequestDetailView(TenantGenericAPIView):
    required_scope = "leads"
    serializer_class = PrivacyRequestOutput

    @extend_schema(
        summary="Follow a privacy request you filed",
        tags=["privacy"],
        operation_id="privacy_requests_get",
        responses={200: PrivacyRequestOutput},
    )
    def get(self, request: Request, request_id: str) -> Response:
        found = PrivacyRequest.objects.filter(organization=self.organization, public_id=request_id).first()
        if found is None:
            raise NotFound("No such privacy request.")
        return Response(PrivacyRequestOutput(found).data)
