"""The exchange's URLs plus the baseline: a DRF hello-world at ``POST /bench/hello``.

The baseline runs on the same server, through the same middleware and framework, with no
authentication and no business logic, so the ping's figures can be read against it. It lives
outside ``/api/``: the API's catch-all answers every unknown ``/api/v1/`` path with a JSON 404.
"""

from typing import Any

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange.urls import handler404, handler500
from exchange.urls import urlpatterns as exchange_urlpatterns

__all__ = ["handler404", "handler500", "urlpatterns"]


class HelloView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        return Response({"hello": "world"})


urlpatterns = [path("bench/hello", HelloView.as_view(), name="bench-hello"), *exchange_urlpatterns]
