from rest_framework import pagination
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from core.errors import Invalid

BAD_CURSOR = "This cursor is not valid: follow a page's `next` or `previous` link as it is."


class CursorPagination(pagination.CursorPagination):
    """Stable pages over fast-growing tables: newest first, by row id. A cursor that is not one of
    ours is a 422 ``validation_error`` naming ``cursor`` (DRF's own answer is a 404, which would say
    the list itself is not there)."""

    ordering = "-id"
    page_size_query_param = "limit"
    max_page_size = 500

    def decode_cursor(self, request: Request) -> pagination.Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            cursor = None
            valid = False
        else:
            # The position is a row id (``ordering``): anything else would reach the database.
            valid = cursor is None or cursor.position is None or str(cursor.position).isdigit()
        if not valid:
            raise Invalid("The request is not valid.", fields={self.cursor_query_param: [BAD_CURSOR]})
        return cursor
