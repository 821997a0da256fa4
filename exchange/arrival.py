"""When a request arrived: a seller's deadline counts from there, not from when its view ran.

Between a request's arrival and its view lie Django's handler, the middleware, authentication
and parsing, and, on a busy or just-started worker, the wait for a free thread. A ping's
``ping_timeout_ms`` is the seller's whole wait, so the auction's clock starts when the WSGI
server hands the request over (:class:`ArrivalStamp`, outermost around the application).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from django.http import HttpRequest

ARRIVED = "gavel.arrived"  # the WSGI environ's key: time.perf_counter() at arrival

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ArrivalStamp:
    """WSGI middleware: stamps each request with ``time.perf_counter()`` before anything else runs."""

    def __init__(self, application: WsgiApp) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[ARRIVED] = time.perf_counter()
        return self.application(environ, start_response)


def request_arrival(request: HttpRequest) -> float:
    """``time.perf_counter()`` when the request arrived; now for one that came in unstamped (the
    test client, a server that does not load ``exchange.wsgi``)."""
    arrived = request.META.get(ARRIVED)
    return arrived if isinstance(arrived, float) else time.perf_counter()
