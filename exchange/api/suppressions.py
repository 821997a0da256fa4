"""``POST /api/v1/suppressions`` with ``Idempotency-Key``.

The suppressions are the leads app's (leads/api/views.py); the idempotency mixin is the
exchange's, and the leads app sits below the exchange, so the routed view is composed here, as
``POST /api/v1/contracts`` is (exchange/api/contracts.py).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from exchange.api.idempotency import IdempotentPostMixin
from exchange.api.views import IDEMPOTENCY_HEADER
from leads.api import views as leads_api
from leads.api.serializers import SuppressionInput, SuppressionOutput


class SuppressionCollectionView(IdempotentPostMixin, leads_api.SuppressionCollectionView):
    @extend_schema(
        summary="Suppress a consumer: an opt-out, or your own do-not-contact list",
        tags=["suppressions"],
        operation_id="suppressions_create",
        request=SuppressionInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: SuppressionOutput,
            200: SuppressionOutput,
            409: {"description": "idempotency_in_progress"},
            422: {"description": "validation_error"},
        },
        examples=[
            OpenApiExample(
                "An opt-out by email",
                request_only=True,
                value={"email": "jane.doe@example.com", "scope": "exchange", "reason": "asked by phone"},
            ),
            OpenApiExample(
                "Your own do-not-contact list, by phone hash",
                request_only=True,
                value={
                    "phone_sha256": "6d5ed8a8d0fb7e1a6a1ba4a5e3a8c2a7e0f0a4bd48c1ef35f5d7e9c3b3a1f2e4",
                    "scope": "organization",
                    "reason": "existing customer",
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        return super().post(request)
