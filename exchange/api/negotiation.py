"""DRF's content negotiation, answered at once for a client that takes anything."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class AnyFirstNegotiation(DefaultContentNegotiation):
    """With no ``Accept`` header or ``Accept: */*``, no format suffix and no query string (nearly
    every API call), DRF picks the view's first renderer; so does this, without parsing the header
    against every renderer (docs/performance.md). Anything else goes through DRF."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        renderers = list(renderers)
        if format_suffix is None and renderers and not request.META.get("QUERY_STRING"):
            if request.META.get("HTTP_ACCEPT", "*/*").strip() == "*/*":
                return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)  # type: ignore[arg-type]
