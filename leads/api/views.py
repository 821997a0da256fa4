"""``/api/v1/privacy-requests``: an organization files a consumer's deletion or access request and
follows it (DESIGN.md §6.1; the life of a request is :mod:`leads.privacy`).

A request filed here is confirmed at once — the organization vouches for the consumer — and is
completed by a background task within minutes. Only the organization that filed a request sees it.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericAPIView
from core.errors import Invalid, NotFound
from leads.api.serializers import PrivacyRequestInput, PrivacyRequestOutput
from leads.models import PrivacyRequest
from leads.privacy import privacy_request_create


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
