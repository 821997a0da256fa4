"""Thin API views for buyers: report a conversion on a purchase, list the conversions reported.

``POST /api/v1/conversions`` answers 201 with the new conversion, or 200 with the first one when
the same purchase and event were reported before (never a second: a conversion is counted and
told to the seller once). ``Idempotency-Key`` is honoured as on every POST.
"""

from __future__ import annotations

from typing import ClassVar

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from exchange.api.idempotency import IdempotentPostMixin
from exchange.api.purchases.filters import StrictFilterSet
from exchange.api.purchases.views import ERRORS, BuyerView
from exchange.api.views import IDEMPOTENCY_HEADER
from reporting.api.serializers import ConversionInput, ConversionOutput
from reporting.models import Conversion
from reporting.selectors import conversions_of
from reporting.services import conversion_record


class ConversionFilter(StrictFilterSet):
    sale_id = django_filters.CharFilter(field_name="sale__public_id", help_text="One of your purchases, `sal_…`.")

    class Meta:
        model = Conversion
        fields: ClassVar[list[str]] = []


CONVERSION_EXAMPLE = {"sale_id": "sal_b4hpdhmvcosfd54rszfz", "event": "sale", "value": "120.00"}


class ConversionCollectionView(IdempotentPostMixin, BuyerView):
    serializer_class = ConversionOutput
    filterset_class = ConversionFilter
    queryset = Conversion.objects.none()

    @extend_schema(
        summary="List the conversions you reported",
        tags=["buyers"],
        operation_id="conversions_list",
        responses={200: ConversionOutput(many=True), **ERRORS, 422: {"description": "validation_error"}},
    )
    def get(self, request: Request) -> Response:
        conversions: QuerySet[Conversion] = self.filter_queryset(conversions_of(buyer=self.organization))
        page = self.paginate_queryset(conversions)
        assert page is not None  # the API always paginates
        return self.get_paginated_response([ConversionOutput.render(c) for c in page])

    @extend_schema(
        summary="Report that a lead you bought converted",
        tags=["buyers"],
        operation_id="conversions_create",
        request=ConversionInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: ConversionOutput,
            200: ConversionOutput,
            **ERRORS,
            404: {"description": "not_found: no such purchase (or not yours)"},
            422: {"description": "validation_error"},
        },
        examples=[OpenApiExample("A sale worth 120.00", request_only=True, value=CONVERSION_EXAMPLE)],
    )
    def post(self, request: Request) -> Response:
        data = ConversionInput(data=request.data)
        data.is_valid(raise_exception=True)
        recorded = conversion_record(
            buyer=self.organization,
            sale_public_id=data.validated_data["sale_id"],
            event=data.validated_data["event"],
            value=data.validated_data["value"],
            occurred_at=data.validated_data.get("occurred_at"),
        )
        return Response(
            ConversionOutput.render(recorded.conversion),
            status=status.HTTP_201_CREATED if recorded.created else status.HTTP_200_OK,
        )
