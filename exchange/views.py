"""Error pages: JSON for the API, HTML for people."""

from __future__ import annotations

import sys

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import loader

from exchange.api.errors import DATABASE_UNAVAILABLE, RETRY_AFTER_S, api_not_found, api_server_error


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return api_not_found(request, exception)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this while it handles the exception: the exception is the one being handled.
    exc = sys.exc_info()[1]
    if request.path.startswith("/api/"):
        return api_server_error(request, exc)
    if isinstance(exc, DATABASE_UNAVAILABLE):  # a moment's fault: say so, and when to come back
        # Rendered without the request: a context processor must not ask the database again.
        response = HttpResponse(loader.render_to_string("503.html"), status=503)
        response["Retry-After"] = RETRY_AFTER_S
        return response
    return render(request, "500.html", status=500)
