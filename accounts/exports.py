"""Streamed CSV downloads of the portal's lists: rows are written as they are read, so an export
of a long list neither waits for nor holds the whole list in memory."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from django.http import StreamingHttpResponse

from accounts.models import Organization
from accounts.tenancy import market_scope, tenant_scope

# A cell a spreadsheet would run as a formula (CSV injection); a signed number (a phone such as
# +12015550101, an amount such as -24.00) is left as it is.
_FORMULA = re.compile(r"^[=@\t\r]|^[+-](?![\d .()-]*$)")


class _Echo:
    """A file whose ``write`` hands the line back, for csv.writer to feed a streaming response."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and _FORMULA.match(value):
        return "'" + value
    return value


def csv_stream(
    *,
    organization: Organization | None,
    filename: str,
    header: Sequence[str],
    rows: Callable[[], Iterable[Sequence[Any]]],
) -> StreamingHttpResponse:
    """A CSV download of ``header`` then ``rows()``.

    ``rows`` is called while the response is sent — after the view returned and the request's
    tenant scope closed — so it runs here in ``organization``'s scope again (the market's, for
    an operator's export: ``organization`` None).
    """
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        with tenant_scope(organization) if organization is not None else market_scope():
            for row in rows():
                yield writer.writerow([csv_cell(v) for v in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
