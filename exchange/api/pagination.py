from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Stable pages over fast-growing tables: newest first, by row id."""

    ordering = "-id"
    page_size_query_param = "limit"
    max_page_size = 500
