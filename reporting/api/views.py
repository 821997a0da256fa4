"""Reporting's API views.

``GET /api/v1/reports``: an organization's figures from the hourly rollups, as JSON or CSV.

``POST /api/v1/conversions`` answers 201 with the new conversion, or 200 with the first one when
the same purchase and event were reported before (never a second: a conversion is counted and
told to the seller once). ``Idempotency-Key`` is honoured as on every POST.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any, ClassVar

import django_filters
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantAPIView
from exchange.api.idempotency import IdempotentPostMixin
from exchange.api.purchases.filters import StrictFilterSet
from exchange.api.purchases.views import ERRORS, BuyerView
from exchange.api.views import IDEMPOTENCY_HEADER
from reporting.api.serializers import ConversionInput, ConversionOutput, ReportOutput, ReportQuery
from reporting.models import Conversion
from reporting.reports import FIGURES, Report, report_of
from reporting.selectors import conversions_of
from reporting.services import conversion_record


class JsonAnswers(BaseContentNegotiation):
    """Always the JSON renderer: ``format=csv`` is the report's own parameter (answered as a CSV
    file by the view), not DRF's format override, so a bad ``format`` is a 422 like any other."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return None


def report_csv(report: Report) -> str:
    """The report's rows as CSV: the dimensions, then the figures, a header line first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns = [*report.group_by, *FIGURES[report.side]]
    writer.writerow(columns)
    for row in report.rows:
        writer.writerow([row[column] for column in columns])
    return out.getvalue()


class ReportView(TenantAPIView):
    required_scope = "reports"
    content_negotiation_class = JsonAnswers

    @extend_schema(
        summary="Your figures over a range of days, grouped",
        tags=["reports"],
        operation_id="reports_get",
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, required=True, description="First day, inclusive."),
            OpenApiParameter("to", OpenApiTypes.DATE, required=True, description="Last day, inclusive."),
            OpenApiParameter("group_by", str, description="Comma-separated dimensions (default `day`)."),
            OpenApiParameter("side", str, enum=["seller", "buyer"], description="Default: seller if you sell."),
            OpenApiParameter("format", str, enum=["json", "csv"], description="`csv`: the rows as a CSV file."),
            OpenApiParameter("test", str, enum=["true", "false"], description="`true`: your test traffic's figures."),
        ],
        responses={
            (200, "application/json"): ReportOutput,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="With `format=csv`: the rows."),
            401: {"description": "authentication_failed"},
            403: {"description": "permission_denied (the key lacks the `reports` scope)"},
            422: {"description": "validation_error"},
        },
    )
    def get(self, request: Request) -> Response | HttpResponse:
        query = ReportQuery(data=request.query_params.dict(), context={"organization": self.organization})
        query.is_valid(raise_exception=True)
        params = query.validated_data
        report = report_of(
            organization=self.organization,
            side=params["side"],
            start=params["from"],
            end=params["to"],
            group_by=params["group_by"],
            test=params["test"],
        )
        if params["format"] == "csv":
            response = HttpResponse(report_csv(report), content_type="text/csv; charset=utf-8")
            name = f"gavel-{report.side}-report-{report.start}-{report.end}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        return Response(
            {
                "from": report.start.isoformat(),
                "to": report.end.isoformat(),
                "timezone": report.timezone,
                "side": report.side,
                "group_by": report.group_by,
                "rows": report.rows,
                "totals": report.totals,
            }
        )


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
